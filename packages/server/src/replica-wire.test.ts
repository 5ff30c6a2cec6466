import { describe, expect, it } from 'vitest';
import { callFromWire, callToWire } from './replica-wire.js';
import { sampleCall } from './testing/calls.js';

const call = callToWire(sampleCall());

const ODD: unknown[] = [
  null,
  '',
  'x',
  'x'.repeat(1025),
  -1,
  0,
  1.5,
  2 ** 53,
  '12',
  '-3',
  '1e3',
  {},
  [],
  true,
];

describe('metered calls from the wire', () => {
  it('reads a call by hand exactly as the schema does, for every field and every odd value', () => {
    const wire = JSON.parse(JSON.stringify(call)) as Record<string, unknown>;
    const cases: unknown[] = [wire, null, [], 'call', { ...wire, extra: 1 }];
    for (const k of Object.keys(wire)) {
      const { [k]: _, ...missing } = wire;
      cases.push(missing);
      for (const v of ODD) cases.push({ ...wire, [k]: v });
    }
    const tokens = wire['tokens'] as Record<string, unknown>;
    cases.push({ ...wire, tokens: { ...tokens, extra: 1 } });
    cases.push({ ...wire, tokens: { ...tokens, input: -1 } });
    cases.push({ ...wire, tags: { a: 1 } });
    let accepted = 0;
    for (const c of cases) {
      const fast = callFromWire(c);
      expect(fast, JSON.stringify(c)).toEqual(callFromWire(c, true));
      if (typeof fast !== 'string') accepted++;
    }
    // The valid call, and the odd values some fields allow (null where nullable, and so on).
    expect(accepted).toBeGreaterThan(10);
    expect(accepted).toBeLessThan(cases.length / 2);
  });
});
