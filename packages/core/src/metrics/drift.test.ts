import { describe, expect, it } from 'vitest';
import { Rng } from '../simulate/random.js';
import { detectDrift } from './drift.js';

describe('drift (EWMA and CUSUM)', () => {
  it('a stable series raises no alarm; a shift in its second half does', () => {
    let falseAlarms = 0;
    let caught = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const rng = new Rng(seed);
      const stable = Array.from({ length: 12 }, () => 0.95 + 0.02 * rng.normal());
      const shifted = stable.map((v, i) => (i >= 8 ? v - 0.08 : v));
      if (detectDrift(stable).drift) falseAlarms++;
      const r = detectDrift(shifted);
      if (r.drift) caught++;
    }
    expect(falseAlarms / 200).toBeLessThan(0.1);
    expect(caught / 200).toBeGreaterThan(0.9);
  });

  it('uses known standard errors when given (a pass rate over n samples)', () => {
    const rates = [0.95, 0.96, 0.94, 0.95, 0.95, 0.96, 0.8, 0.78];
    const se = rates.map(() => Math.sqrt((0.95 * 0.05) / 400));
    const r = detectDrift(rates, se);
    expect(r.drift).toBe(true);
    expect(r.cusumAlarmAt ?? r.ewmaAlarmAt).toBe(6);
  });

  it('too short a series is insufficient data', () => {
    expect(detectDrift([1, 2, 3])).toMatchObject({ status: 'insufficient_data', drift: false });
  });
});
