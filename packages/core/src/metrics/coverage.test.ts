import { describe, expect, it } from 'vitest';
import { type SimTask, simulateCompany } from '../simulate/company.js';
import { cupedLiftTest, liftTest } from '../stats/lift.js';
import type { ArmStats, CupedArmStats } from '../stats/moments.js';

const END = Date.parse('2026-11-30T00:00:00Z');

function sums(tasks: SimTask[]): CupedArmStats {
  const s: CupedArmStats = {
    n: 0,
    sum: 0,
    sumSquares: 0,
    covariateSum: 0,
    covariateSumSquares: 0,
    crossProductSum: 0,
  };
  for (const t of tasks) {
    const x = t.covariate ?? 0;
    s.n++;
    s.sum += t.handling;
    s.sumSquares += t.handling * t.handling;
    s.covariateSum += x;
    s.covariateSumSquares += x * x;
    s.crossProductSum += t.handling * x;
  }
  return s;
}

/** Over many seeds, how often the 95 % interval of the handling-time lift holds the true effect. */
function coverage(useCase: string, truth: number, seeds: number, cuped: boolean) {
  let covered = 0;
  let significant = 0;
  let widthSum = 0;
  for (let seed = 1; seed <= seeds; seed++) {
    const { tasks } = simulateCompany({ seed, end: END, weeks: 4, scale: 0.25, only: [useCase] });
    const ai = sums(tasks.filter((t) => t.arm === 'ai'));
    const holdout = sums(tasks.filter((t) => t.arm === 'holdout'));
    const r = cuped ? cupedLiftTest(holdout, ai) : liftTest(holdout as ArmStats, ai as ArmStats);
    if (r.status !== 'ok') throw new Error(r.message);
    if (r.ci[0] <= truth && truth <= r.ci[1]) covered++;
    if (r.ci[0] > 0 || r.ci[1] < 0) significant++;
    widthSum += r.ci[1] - r.ci[0];
  }
  return { coverage: covered / seeds, significant: significant / seeds, width: widthSum / seeds };
}

describe('the intervals recover the truth of the simulated company', () => {
  // 200 seeds: a true 95 % coverage lands in [0.91, 0.99] with probability above 0.99.
  it('support triage (−23 %): the Welch and CUPED intervals cover the effect about 95 % of the time', () => {
    const welch = coverage('support-triage', -0.23, 200, false);
    const cuped = coverage('support-triage', -0.23, 200, true);
    expect(welch.coverage).toBeGreaterThanOrEqual(0.91);
    expect(welch.coverage).toBeLessThanOrEqual(0.99);
    expect(cuped.coverage).toBeGreaterThanOrEqual(0.91);
    expect(cuped.coverage).toBeLessThanOrEqual(0.99);
    // The covariate explains part of the variance, so CUPED's intervals are narrower.
    expect(cuped.width).toBeLessThan(welch.width * 0.9);
    expect(cuped.significant).toBeGreaterThan(0.95);
  });

  it('the code-review assistant (no effect): inconclusive about 95 % of the time', () => {
    const r = coverage('code-review', 0, 200, false);
    expect(r.coverage).toBeGreaterThanOrEqual(0.91);
    expect(r.significant).toBeLessThanOrEqual(0.09);
  });
});
