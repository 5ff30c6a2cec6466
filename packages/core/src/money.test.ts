import { describe, expect, it } from 'vitest';
import {
  exactToNano,
  exactToUsd,
  formatScaled,
  nanoToUsd,
  parseScaled,
  rateFrom,
  usdToNano,
} from './money.js';

describe('money', () => {
  it('parses decimals and JSON numbers exactly', () => {
    expect(parseScaled('2.5', 6)).toBe(2_500_000n);
    expect(parseScaled(1.25e-7, 9)).toBe(125n);
    expect(parseScaled('1e3', 0)).toBe(1000n);
    expect(parseScaled('-0.5', 1)).toBe(-5n);
    expect(parseScaled('.5', 1)).toBe(5n);
    expect(() => parseScaled('abc', 2)).toThrow(RangeError);
    expect(() => parseScaled('.', 2)).toThrow(RangeError);
    expect(() => parseScaled(Number.NaN, 2)).toThrow(RangeError);
  });

  it('keeps a per-million price exact per token', () => {
    // $0.0375 per million tokens is 3.75e-8 USD per token: not representable as nano-USD per token.
    const rate = rateFrom('0.0375', 1_000_000);
    const cost = rate * 3n;
    expect(exactToUsd(cost)).toBe('0.0000001125');
    expect(exactToNano(cost)).toBe(113n);
  });

  it('formats and rounds', () => {
    expect(formatScaled(0n, 9)).toBe('0');
    expect(formatScaled(-1500n, 3)).toBe('-1.5');
    expect(nanoToUsd(8_229_000n)).toBe('0.008229');
    expect(nanoToUsd(2_000_000_000_000n)).toBe('2000');
    expect(nanoToUsd(-5n)).toBe('-0.000000005');
    expect(formatScaled(7n, 0)).toBe('7');
    expect(usdToNano('12.50')).toBe(12_500_000_000n);
    expect(exactToNano(-rateFrom('0.0000000015'))).toBe(-2n);
  });
});
