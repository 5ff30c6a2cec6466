import { describe, expect, it } from 'vitest';
import { cupedLiftTest, type LiftEstimate, type LiftResult, liftTest, sequentialRho } from './lift.js';
import type { ArmStats, CupedArmStats } from './moments.js';

// Reference values: the published test vectors of GrowthBook's gbstats (MIT), growthbook/growthbook
// at 8f1db445, packages/stats/tests, rounded as those tests round them. Where noted, a value was
// computed by gbstats itself at that commit for a case its tests do not cover.

/** |actual − expected| within half a unit of the expected value's last decimal place. */
function near(actual: number, expected: number, places: number): void {
  expect(Math.abs(actual - expected), `${actual} vs ${expected}`).toBeLessThanOrEqual(
    0.5 * 10 ** -places + 1e-12,
  );
}
function ok(r: LiftResult): LiftEstimate {
  if (r.status !== 'ok') throw new Error(`expected a result, got ${r.reason}: ${r.message}`);
  return r;
}
const arm = (n: number, sum: number, sumSquares: number): ArmStats => ({ n, sum, sumSquares });
const prop = (n: number, successes: number): ArmStats => ({ n, sum: successes, sumSquares: successes });

const A1 = arm(3407, 1396.87, 52377.9767);
const B1 = arm(3461, 2422.7, 134698.29);
const A7 = arm(3000, 1396.87, 52377.9767);

describe('Welch t-test (gbstats TwoSidedTTest)', () => {
  it('relative lift, delta method: V1', () => {
    const r = ok(liftTest(A1, B1));
    near(r.estimate, 0.70732, 5);
    near(r.ci[0], -0.03526, 5);
    near(r.ci[1], 1.44989, 5);
    near(r.se, 0.37879, 5);
    near(r.pValue, 0.06191, 5);
    near(r.df, 5841.74203209, 6);
  });

  it('absolute lift: V2', () => {
    const r = ok(liftTest(A1, B1, { difference: 'absolute' }));
    near(r.estimate, 0.29, 5);
    near(r.ci[0], 0.04538, 5);
    near(r.ci[1], 0.53462, 5);
    near(r.se, 0.12478, 5);
    near(r.pValue, 0.02016, 5);
  });

  it('a proportion uses p(1 − p): V3', () => {
    const r = ok(liftTest(prop(28, 14), prop(30, 16), { kind: 'proportion' }));
    near(r.estimate, 0.06667, 5);
    near(r.ci[0], -0.47767, 5);
    near(r.ci[1], 0.61101, 5);
    near(r.se, 0.2717, 5);
    near(r.pValue, 0.80707, 5);
    near(r.df, 55.7074491486, 6);
  });

  it('fixed-horizon relative on other sums (computed by gbstats)', () => {
    const r = ok(liftTest(A7, B1));
    near(r.ci[0], -0.150244803983, 9);
    near(r.ci[1], 1.1569669757, 9);
    near(r.pValue, 0.13116525736935492, 9);
    near(r.df, 6087.38254916, 6);
  });

  it('a negative baseline divides by its absolute value (computed by gbstats)', () => {
    const r = ok(liftTest(arm(1000, -10000, 104000), arm(1000, -5000, 29000)));
    near(r.estimate, 0.5, 9);
    near(r.se, 0.007074605999633481, 9);
  });

  it('dimension data of test_gbstats: V13', () => {
    const r = ok(liftTest(arm(100, 270, 848.79), arm(120, 300, 869)));
    near(r.estimate, -0.074074074, 9);
    near(r.pValue, 0.145219005, 9);
    near(r.ci[0], -0.173957185169, 9);
    near(r.ci[1], 0.0258090370205, 9);
    near(r.df, 202.438831268, 6);
  });
});

describe('always-valid intervals (gbstats SequentialTwoSidedTTest)', () => {
  it('ρ from alpha and the tuning', () => {
    near(sequentialRho(0.05, 1000), 0.08908509752892212, 12);
    near(sequentialRho(0.05, 5000), 0.03984006677137368, 12);
  });

  it('V7: tuning 1000', () => {
    const r = ok(liftTest(A7, B1, { sequential: { tuning: 1000 } }));
    near(r.estimate, 0.50336, 5);
    near(r.ci[0], -0.55844, 5);
    near(r.ci[1], 1.56516, 5);
    near(r.se, 0.33341, 5);
    expect(r.pValue).toBe(1);
    expect(r.sequential).toBe(true);
  });

  it('V8: proportions at the default tuning', () => {
    const r = ok(liftTest(prop(3000, 1396), prop(3461, 2422), { kind: 'proportion', sequential: true }));
    near(r.estimate, 0.50386, 5);
    near(r.ci[0], 0.40098, 5);
    near(r.ci[1], 0.60675, 5);
    near(r.se, 0.03386, 5);
    near(r.pValue, 0, 5);
  });

  it('V14: tuning 600 on the dimension data', () => {
    const r = ok(liftTest(arm(100, 270, 848.79), arm(120, 300, 869), { sequential: { tuning: 600 } }));
    near(r.pValue, 0.892332229, 9);
    near(r.ci[0], -0.233322085, 9);
    near(r.ci[1], 0.0851739370216, 9);
  });

  it('is wider than the fixed-horizon interval on the same data (computed by gbstats)', () => {
    const rel = ok(liftTest(A7, B1, { sequential: true }));
    near(rel.ci[0], -0.509717760856, 9);
    near(rel.ci[1], 1.51643993257, 9);
    const abs = ok(liftTest(A7, B1, { sequential: true, difference: 'absolute' }));
    near(abs.ci[0], -0.16011652843, 9);
    near(abs.ci[1], 0.628869861763, 9);
    near(abs.pValue, 0.7601250075467714, 9);
    const fixed = ok(liftTest(A7, B1));
    expect(rel.ci[1] - rel.ci[0]).toBeGreaterThan(fixed.ci[1] - fixed.ci[0]);
  });
});

describe('CUPED (gbstats RegressionAdjustedStatistic)', () => {
  const control: CupedArmStats = {
    n: 3001,
    sum: 300,
    sumSquares: 600,
    covariateSum: 210,
    covariateSumSquares: 415,
    crossProductSum: -20,
  };
  const treatment: CupedArmStats = {
    n: 3000,
    sum: 222,
    sumSquares: 555,
    covariateSum: 120,
    covariateSumSquares: 405,
    crossProductSum: -10,
  };

  it('V11: a mean metric, one θ pooled over both arms', () => {
    const r = ok(cupedLiftTest(control, treatment));
    expect(r.method).toBe('cuped');
    near(r.theta!, -0.0732119403481, 12);
    near(r.estimate, -0.281707154, 9);
    near(r.pValue, 0.003732549, 9);
    near(r.ci[0], -0.472067645692, 9);
    near(r.ci[1], -0.0913466619994, 9);
    near(r.se, 0.0971048764451, 9);
    near(r.df, 5995.24042251, 6);
    near(r.controlMean, 0.099966678, 9);
    near(r.treatmentMean, 0.074, 9);
  });

  it('V11, absolute (computed by gbstats)', () => {
    const r = ok(cupedLiftTest(control, treatment, { difference: 'absolute' }));
    near(r.estimate, -0.0281613282751, 12);
    near(r.ci[0], -0.0498742394421, 12);
    near(r.ci[1], -0.00644841710822, 12);
    near(r.pValue, 0.011029368646, 9);
  });

  it('V12: the same sums as a proportion', () => {
    const r = ok(cupedLiftTest(control, treatment, { kind: 'proportion' }));
    near(r.theta!, -0.188246421186, 12);
    near(r.estimate, -0.31620216, 8);
    near(r.pValue, 0.000000353, 9);
    near(r.ci[0], -0.437775325078, 9);
    near(r.ci[1], -0.194628995255, 9);
    near(r.se, 0.0620155494891, 9);
  });

  it('V9: sequential with CUPED', () => {
    const pre = (n: number, s: number, ss: number) => ({
      covariateSum: s,
      covariateSumSquares: ss,
      crossProductSum: 1,
      n,
    });
    const r = ok(
      cupedLiftTest(
        { ...A7, ...pre(3000, 16.87, 527.9767) },
        { ...B1, ...pre(3461, 22.7, 1348.29) },
        { sequential: true },
      ),
    );
    near(r.theta!, -0.011403222553755095, 12);
    near(r.estimate, 0.50338, 5);
    near(r.ci[0], -0.50969, 5);
    near(r.ci[1], 1.51646, 5);
    near(r.se, 0.33341, 5);
    expect(r.pValue).toBe(1);
  });

  it('V11, sequential (computed by gbstats)', () => {
    const r = ok(cupedLiftTest(control, treatment, { sequential: true }));
    near(r.ci[0], -0.576582479075, 9);
    near(r.ci[1], 0.0131681713831, 9);
    near(r.pValue, 0.07197882787660587, 9);
  });

  it('V17: θ from the four-unit arrays; a constant covariate falls back to the plain test', () => {
    const post = [2, 1, 5, 3];
    const pre = [0.3, 0.5, 0.9, 22];
    const stats = (y: number[], x: number[]): CupedArmStats => ({
      n: y.length,
      sum: y.reduce((a, b) => a + b, 0),
      sumSquares: y.reduce((a, b) => a + b * b, 0),
      covariateSum: x.reduce((a, b) => a + b, 0),
      covariateSumSquares: x.reduce((a, b) => a + b * b, 0),
      crossProductSum: y.reduce((a, b, i) => a + b * x[i]!, 0),
    });
    // Both arms hold the same arrays: θ is defined, though the lift is 0.
    const same = cupedLiftTest(stats(post, pre), stats(post, pre));
    near(same.status === 'ok' ? same.theta! : Number.NaN, 0.01864, 5);
    const flat = ok(cupedLiftTest(stats(post, [0, 0, 0, 0]), stats([2, 1, 5, 4], [0, 0, 0, 0])));
    expect(flat.theta).toBe(0);
    expect(flat.method).toBe('welch');
    const plain = ok(liftTest(stats(post, pre), stats([2, 1, 5, 4], pre)));
    expect(flat.estimate).toBe(plain.estimate);
    expect(flat.ci).toEqual(plain.ci);
  });
});

describe('degenerate inputs give insufficient data, never NaN', () => {
  const cases: [string, ArmStats, ArmStats, string][] = [
    ['V4: a negative variance from bad sums', arm(2, 1396.87, 52377.9767), B1, 'zero_variance'],
    ['V16: an arm of one unit', arm(3, 20, 443), arm(1, 1, 1), 'too_few_units'],
    ['empty arms', arm(0, 0, 0), arm(0, 0, 0), 'too_few_units'],
    ['every unit equal', arm(10, 50, 250), arm(10, 60, 360), 'zero_variance'],
    ['a zero control mean', arm(10, 0, 20), arm(10, 5, 20), 'zero_baseline'],
    ['NaN sums', arm(10, Number.NaN, 1), B1, 'invalid_input'],
  ];
  for (const [name, a, b, reason] of cases) {
    it(name, () => {
      for (const difference of ['relative', 'absolute'] as const) {
        for (const sequential of [false, true]) {
          const r = liftTest(a, b, { difference, sequential });
          expect(r).toMatchObject({ status: 'insufficient_data', reason });
          expect(JSON.stringify(r)).not.toMatch(/NaN|null/);
        }
      }
    });
  }
  it('a proportion arm of all successes has no variance', () => {
    expect(liftTest(prop(20, 20), prop(20, 10), { kind: 'proportion' })).toMatchObject({
      reason: 'zero_variance',
    });
  });
  it('a bad alpha or tuning is refused', () => {
    expect(liftTest(A1, B1, { alpha: 1.5 })).toMatchObject({ reason: 'invalid_input' });
    expect(liftTest(A1, B1, { sequential: { tuning: -1 } })).toMatchObject({ reason: 'invalid_input' });
  });
});
