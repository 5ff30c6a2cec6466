import { describe, expect, it } from 'vitest';
import { Slots } from './slots.js';

describe('Slots', () => {
  it('holds items until removed, and reuses freed slots', () => {
    const s = new Slots<{ n: number }>();
    const a = { n: 1 };
    const b = { n: 2 };
    const sa = s.add(a);
    const sb = s.add(b);
    expect(s.size).toBe(2);
    expect(s.values()).toEqual([a, b]);
    s.remove(sa, a);
    expect(s.size).toBe(1);
    expect(s.has(sa, a)).toBe(false);
    const c = { n: 3 };
    expect(s.add(c)).toBe(sa);
    expect(s.values()).toEqual([c, b]);
    expect(s.has(sb, b)).toBe(true);
  });

  it('ignores a second removal, even after another item took the slot', () => {
    const s = new Slots<{ n: number }>();
    const a = { n: 1 };
    const slot = s.add(a);
    s.remove(slot, a);
    const b = { n: 2 };
    expect(s.add(b)).toBe(slot);
    s.remove(slot, a);
    expect(s.size).toBe(1);
    expect(s.values()).toEqual([b]);
  });
});
