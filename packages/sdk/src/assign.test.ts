import { describe, expect, it } from 'vitest';
import { assignArm, unitBucket } from './assign.js';

describe('holdout assignment', () => {
  it('is pinned: a change to the hash would move units of every running holdout', () => {
    expect(unitBucket('triage-salt', 'T-1')).toBe(0.19818980945274234);
    expect(unitBucket('triage-salt', 'T-2')).toBe(0.45296179759316146);
    expect(unitBucket('s', 'u')).toBe(0.14772152807563543);
    expect(unitBucket('', '')).toBe(0.02137250336818397);
    expect(unitBucket('ü', '😀')).toBe(0.11175509379245341);
  });

  it('spreads ids evenly over [0, 1), ids that differ by one character included', () => {
    const counts = new Array(20).fill(0);
    const n = 100_000;
    let lo = 1;
    let hi = 0;
    for (let i = 0; i < n; i++) {
      const b = unitBucket('salt-1', `task-${i}`);
      lo = Math.min(lo, b);
      hi = Math.max(hi, b);
      counts[Math.floor(b * 20)]++;
    }
    expect(lo).toBeGreaterThanOrEqual(0);
    expect(hi).toBeLessThan(1);
    // Chi-square with 19 df: its 99.9th percentile is 43.82.
    const e = n / 20;
    const chi = counts.reduce((s, c) => s + (c - e) ** 2 / e, 0);
    expect(chi).toBeLessThan(43.82);
  });

  it('is independent across salts: two use cases hold out different units', () => {
    let both = 0;
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      const a = assignArm({ salt: 'a', holdout_share: 0.2 }, `u${i}`) === 'holdout';
      const b = assignArm({ salt: 'b', holdout_share: 0.2 }, `u${i}`) === 'holdout';
      if (a && b) both++;
    }
    // Independent: 4 % of units in both holdouts (binomial sd ≈ 0.14 %).
    expect(Math.abs(both / n - 0.04)).toBeLessThan(0.006);
  });

  it('changing the share moves only the units between the old and the new share', () => {
    const ids = Array.from({ length: 5000 }, (_, i) => `unit-${i}`);
    const at = (share: number) => ids.map((id) => assignArm({ salt: 'x', holdout_share: share }, id));
    const ten = at(0.1);
    const twenty = at(0.2);
    for (let i = 0; i < ids.length; i++) {
      if (ten[i] === 'holdout') expect(twenty[i]).toBe('holdout');
      const moved = ten[i] !== twenty[i];
      const b = unitBucket('x', ids[i]!);
      expect(moved).toBe(b >= 0.1 && b < 0.2);
    }
    const share = twenty.filter((a) => a === 'holdout').length / ids.length;
    expect(Math.abs(share - 0.2)).toBeLessThan(0.02);
  });

  it('refuses a share outside [0, 1]', () => {
    expect(() => assignArm({ salt: 'x', holdout_share: 1.5 }, 'u')).toThrow(RangeError);
    expect(assignArm({ salt: 'x', holdout_share: 0 }, 'u')).toBe('ai');
    expect(assignArm({ salt: 'x', holdout_share: 1 }, 'u')).toBe('holdout');
  });
});
