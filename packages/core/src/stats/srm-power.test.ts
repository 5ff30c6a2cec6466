import { describe, expect, it } from 'vitest';
import { linearTrend, trendStats, wilsonInterval } from './intervals.js';
import { midExperimentPower, minimumDetectableEffect, power } from './power.js';
import { srmCheck } from './srm.js';

// SRM and power vectors: GrowthBook (MIT) at 8f1db445, packages/back-end/test/stats.test.ts (9 dp)
// and packages/shared/test/power.test.ts (5 dp).
function near(actual: number, expected: number, places: number): void {
  expect(Math.abs(actual - expected), `${actual} vs ${expected}`).toBeLessThanOrEqual(
    0.5 * 10 ** -places + 1e-12,
  );
}
function value<T extends { status: string }>(r: T): Exclude<T, { status: 'insufficient_data' }> {
  if (r.status !== 'ok') throw new Error(JSON.stringify(r));
  return r as Exclude<T, { status: 'insufficient_data' }>;
}

describe('sample-ratio mismatch', () => {
  const vectors: [number[], number[], number][] = [
    [[1000, 1200], [0.5, 0.5], 0.000020079],
    [[135, 115], [0.5, 0.5], 0.205903211],
    [[310, 98], [0.75, 0.25], 0.647434186],
    [[0, 10, 10], [0.34, 0.33, 0.33], 0.005790624],
    [[500, 500, 600], [0.34, 0.33, 0.33], 0.000592638],
    [[500, 500], [0.5, 0.5], 1],
    [[1000, 1200, 900], [0.5, 0.5, 0], 0.000020079],
  ];
  for (const [observed, weights, p] of vectors) {
    it(`${observed} against ${weights}`, () => {
      const r = value(srmCheck(observed, weights));
      near(r.pValue, p, 9);
      expect(r.mismatch).toBe(p < 0.001);
    });
  }
  it('weights need not sum to 1', () => {
    near(value(srmCheck([310, 98], [3, 1])).pValue, 0.647434186, 9);
  });
  it('no units, one arm, or mismatched lengths: insufficient data', () => {
    expect(srmCheck([0, 0, 0], [1, 1, 1])).toMatchObject({
      status: 'insufficient_data',
      reason: 'too_few_units',
    });
    expect(srmCheck([1000], [1])).toMatchObject({ reason: 'too_few_units' });
    expect(srmCheck([1000, 900, 800], [1, 0, 0])).toMatchObject({ reason: 'too_few_units' });
    expect(srmCheck([1, 2], [1])).toMatchObject({ reason: 'invalid_input' });
    expect(srmCheck([1, -2], [1, 1])).toMatchObject({ reason: 'invalid_input' });
  });
});

describe('power and minimum detectable effect', () => {
  const metric = { mean: 10, variance: 3909.9997749994377, units: 400_000, arms: 3 };
  it('fixed horizon', () => {
    near(value(power({ ...metric, effect: 0.05 })).power, 0.52144, 5);
    near(value(minimumDetectableEffect({ ...metric, power: 0.8 })).mde, 0.07027, 5);
  });
  it('sequential, tuning 5000', () => {
    near(value(power({ ...metric, effect: 0.05, sequentialTuning: 5000 })).power, 0.20596, 5);
    near(value(minimumDetectableEffect({ ...metric, sequentialTuning: 5000 })).mde, 0.12821, 5);
  });
  it('week by week for a rate and a mean metric', () => {
    const ctr = { mean: 0.1, variance: 0.1 * 0.9, arms: 3 };
    const rev = { mean: 0.1, variance: 0.5, arms: 3 };
    const expected = [
      [0.073, 0.17053, 0.36767, 1.26769],
      [0.0965, 0.29389, 0.24505, 0.71941],
      [0.1204, 0.41122, 0.19525, 0.54299],
      [0.14458, 0.51749, 0.16673, 0.4506],
      [0.16895, 0.61037, 0.14774, 0.39208],
      [0.19342, 0.68938, 0.13394, 0.35099],
      [0.21791, 0.75513, 0.12336, 0.32018],
      [0.24235, 0.80886, 0.11491, 0.29603],
      [0.26666, 0.85213, 0.10796, 0.27647],
    ];
    expected.forEach(([pc, pr, mc, mr], w) => {
      const units = 4500 * (w + 1);
      near(value(power({ ...ctr, units, effect: 0.05 })).power, pc!, 5);
      near(value(power({ ...rev, units, effect: 0.3 })).power, pr!, 5);
      near(value(minimumDetectableEffect({ ...ctr, units })).mde, mc!, 5);
      near(value(minimumDetectableEffect({ ...rev, units })).mde, mr!, 5);
    });
  });
  it('insufficient data rather than NaN', () => {
    expect(power({ mean: 1, variance: 0, units: 100, effect: 0.1 })).toMatchObject({
      reason: 'zero_variance',
    });
    expect(power({ mean: 0, variance: 1, units: 100, effect: 0.1 })).toMatchObject({
      reason: 'zero_baseline',
    });
    expect(minimumDetectableEffect({ mean: 1, variance: 1, units: 3 })).toMatchObject({
      reason: 'too_few_units',
    });
    // So few units that no effect reaches 80 % power.
    expect(minimumDetectableEffect({ mean: 0.1, variance: 0.5, units: 100 })).toMatchObject({
      reason: 'too_few_units',
    });
  });
});

describe('Wilson interval', () => {
  // Reference: R's prop.test(x, n, correct = FALSE)$conf.int, and the closed form by hand.
  it('matches the score interval', () => {
    const r = value(wilsonInterval(81, 263));
    near(r.rate, 81 / 263, 12);
    near(r.ci[0], 0.2553, 4);
    near(r.ci[1], 0.3662, 4);
    const z = 1.959963984540054;
    const p = 0.5;
    const n = 10;
    const c = (p + (z * z) / (2 * n)) / (1 + (z * z) / n);
    const h = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / (1 + (z * z) / n);
    const ten = value(wilsonInterval(5, 10));
    near(ten.ci[0], c - h, 12);
    near(ten.ci[1], c + h, 12);
  });
  it('stays within [0, 1] at the edges, and needs samples', () => {
    const all = value(wilsonInterval(20, 20));
    expect(all.ci[1]).toBe(1);
    expect(all.ci[0]).toBeGreaterThan(0.8);
    expect(value(wilsonInterval(0, 20)).ci[0]).toBe(0);
    expect(wilsonInterval(0, 0)).toMatchObject({ reason: 'too_few_units' });
    expect(wilsonInterval(5, 3)).toMatchObject({ reason: 'invalid_input' });
  });
});

describe('linear trend', () => {
  it('slope and interval of a least-squares fit', () => {
    // y = 2x + 1 with alternating noise ±0.5: slope and its standard error by hand.
    const pts = [0, 1, 2, 3, 4, 5].map((x) => [x, 2 * x + 1 + (x % 2 === 0 ? 0.5 : -0.5)] as const);
    const r = value(linearTrend(trendStats(pts)));
    // Sxx = 17.5; the fitted slope is 2 − 3/17.5·(1/3)... computed directly:
    const xs = pts.map((p) => p[0]);
    const ys = pts.map((p) => p[1]);
    const mx = xs.reduce((a, b) => a + b) / 6;
    const my = ys.reduce((a, b) => a + b) / 6;
    const sxx = xs.reduce((a, x) => a + (x - mx) ** 2, 0);
    const slope = xs.reduce((a, x, i) => a + (x - mx) * (ys[i]! - my), 0) / sxx;
    const rss = xs.reduce((a, x, i) => a + (ys[i]! - (my + slope * (x - mx))) ** 2, 0);
    near(r.slope, slope, 12);
    near(r.se, Math.sqrt(rss / 4 / sxx), 12);
    // t(0.975, 4) = 2.7764451051977987
    near(r.ci[1] - r.slope, 2.7764451051977987 * r.se, 10);
    expect(r.pValue).toBeLessThan(0.001);
  });
  it('too few points or a single x: insufficient data', () => {
    expect(
      linearTrend(
        trendStats([
          [1, 2],
          [2, 3],
        ]),
      ),
    ).toMatchObject({ reason: 'too_few_units' });
    expect(
      linearTrend(
        trendStats([
          [1, 2],
          [1, 3],
          [1, 4],
        ]),
      ),
    ).toMatchObject({ reason: 'zero_variance' });
  });
});

describe('mid-experiment power (gbstats MidExperimentPower, V19)', () => {
  const input = {
    liftVariance: 0.008426853707414856,
    units: 1000,
    targetEffect: 0.05,
    power: 0.8,
    alpha: 0.05,
  };
  it('frequentist, sequential and Bayesian scaling factors', () => {
    const f = value(midExperimentPower(input));
    expect(f.scalingFactor).toBeCloseTo(25.45703125, 8);
    expect(f.additionalUnits).toBeCloseTo(25457.03125, 5);
    expect(Math.abs(f.power - 0.8)).toBeLessThan(1e-4);
    expect(value(midExperimentPower({ ...input, sequentialTuning: 5000 })).scalingFactor).toBeCloseTo(
      55.66796875,
      8,
    );
    expect(
      value(midExperimentPower({ ...input, prior: { mean: 0.05, variance: 0.001 } })).scalingFactor,
    ).toBeCloseTo(13.9404296875, 8);
  });
  it('already powered: no more units; no variance: insufficient data', () => {
    expect(value(midExperimentPower({ ...input, liftVariance: 1e-6 })).scalingFactor).toBe(0);
    expect(midExperimentPower({ ...input, liftVariance: 0 })).toMatchObject({ reason: 'zero_variance' });
  });
});
