import { describe, expect, it } from 'vitest';
import { uuidv7 } from './ids.js';

describe('uuidv7', () => {
  it('has the version and variant of RFC 9562, and the time in its first 48 bits', () => {
    const now = Date.UTC(2026, 11, 2, 6, 30);
    for (let i = 0; i < 5000; i++) {
      const id = uuidv7(now + i);
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16)).toBe(now + i);
    }
  });

  it('is unique, sorts by time, and spreads its random bits', () => {
    const ids = Array.from({ length: 20_000 }, (_, i) => uuidv7(1_700_000_000_000 + Math.floor(i / 100)));
    expect(new Set(ids).size).toBe(ids.length);
    expect(
      [...ids].sort((a, b) =>
        a.slice(0, 13) < b.slice(0, 13) ? -1 : a.slice(0, 13) > b.slice(0, 13) ? 1 : 0,
      ),
    ).toEqual(ids);
    // Each of the 4 variant digits and the 16 digits of the last group turn up about evenly.
    const variants = new Map<string, number>();
    const digits = new Map<string, number>();
    for (const id of ids) {
      variants.set(id[19]!, (variants.get(id[19]!) ?? 0) + 1);
      for (const c of id.slice(24)) digits.set(c, (digits.get(c) ?? 0) + 1);
    }
    expect(variants.size).toBe(4);
    for (const n of variants.values()) expect(n).toBeGreaterThan(4500);
    expect(digits.size).toBe(16);
    for (const n of digits.values()) expect(n).toBeGreaterThan((20_000 * 12) / 16 - 1000);
  });

  it('grows within a millisecond too, past 4,096 ids in one, and through a clock that steps back a little', () => {
    const ms = Date.UTC(2026, 11, 5, 4);
    const ids = [
      ...Array.from({ length: 10_000 }, () => uuidv7(ms)),
      ...Array.from({ length: 100 }, () => uuidv7(ms - 500)),
      uuidv7(ms + 5),
    ];
    for (let k = 1; k < ids.length; k++)
      expect(ids[k]! > ids[k - 1]!, `${ids[k - 1]} < ${ids[k]}`).toBe(true);
    // Its time part moves on only as the count runs out: 10,000 ids take at most four milliseconds.
    const time = (id: string) => Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
    expect(time(ids[0]!)).toBe(ms);
    expect(time(ids[9_999]!)).toBeLessThanOrEqual(ms + 4);
    expect(time(ids.at(-1)!)).toBe(ms + 5);
    // A clock far behind starts again from it.
    expect(time(uuidv7(ms - 60_000))).toBe(ms - 60_000);
  });
});
