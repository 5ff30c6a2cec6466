import { cupedLiftTest, type LiftResult, liftTest } from '../stats/lift.js';
import type { InsufficientData } from '../stats/moments.js';
import { mean, variance } from '../stats/moments.js';
import { midExperimentPower, minimumDetectableEffect } from '../stats/power.js';
import { type SrmResult, srmCheck } from '../stats/srm.js';
import type { UseCaseSpec } from '../use-cases/register.js';
import type { UseCaseStats } from './inputs.js';

export interface EvidenceOptions {
  alpha?: number;
  /** Always-valid intervals, for results that are looked at before the pilot ends. */
  sequential?: boolean;
  /** The relative effect the pilot must be able to detect at 80 % power to count as powered. */
  mdeTarget?: number;
}

export interface Lifts {
  srm: SrmResult | InsufficientData;
  /** Relative change of the AI arm against the holdout (CUPED when a covariate was sent). */
  handling: LiftResult;
  /** Absolute change in success rate (percentage points as a fraction). */
  successRate: LiftResult;
  /** Absolute change in QA pass rate. */
  quality: LiftResult;
  /** Relative change in value per completed task. */
  value: LiftResult;
  /** The relative effect on handling time detectable with 80 % power at this sample size. */
  mde: number | null;
  /** The same for the success rate (relative to the holdout's rate). */
  mdeSuccess: number | null;
}

export type Grade = 'A' | 'B' | 'C' | 'D';

export interface Evidence {
  grade: Grade;
  reasons: string[];
  /** The metric the grade is judged on: handling time, else success rate. */
  primary: 'handling' | 'successRate' | null;
  lifts: Lifts | null;
}

const MIN_ARM = 2;

export function computeLifts(s: UseCaseStats, spec: UseCaseSpec, o: EvidenceOptions = {}): Lifts {
  const { ai, holdout } = s.arms;
  const opts = { alpha: o.alpha ?? 0.05, sequential: o.sequential ?? false };
  const share = spec.holdout.share;
  const srm = srmCheck([ai.eligible, holdout.eligible], [1 - share, share]);
  const useCuped = ai.handlingCuped.n >= MIN_ARM && holdout.handlingCuped.n >= MIN_ARM;
  const handling = useCuped
    ? cupedLiftTest(holdout.handlingCuped, ai.handlingCuped, opts)
    : liftTest(holdout.handling, ai.handling, opts);
  const successRate = liftTest(holdout.success, ai.success, {
    ...opts,
    kind: 'proportion',
    difference: 'absolute',
  });
  const qa = (a: typeof ai) => ({ n: a.qaSamples, sum: a.qaPasses, sumSquares: a.qaPasses });
  const quality = liftTest(qa(holdout), qa(ai), { ...opts, kind: 'proportion', difference: 'absolute' });
  const value = liftTest(holdout.value, ai.value, opts);
  const h = holdout.handling;
  const units = ai.handling.n + h.n;
  const m = minimumDetectableEffect({
    mean: mean(h.n, h.sum),
    variance: variance(h.n, h.sum, h.sumSquares, 'mean'),
    units,
    arms: 2,
    alpha: opts.alpha,
    ...(opts.sequential ? { sequentialTuning: 5000 } : {}),
  });
  const p = holdout.completed > 0 ? holdout.successes / holdout.completed : 0;
  const ms = minimumDetectableEffect({
    mean: p,
    variance: p * (1 - p),
    units: ai.completed + holdout.completed,
    arms: 2,
    alpha: opts.alpha,
    ...(opts.sequential ? { sequentialTuning: 5000 } : {}),
  });
  return {
    srm,
    handling,
    successRate,
    quality,
    value,
    mde: m.status === 'ok' ? m.mde : null,
    mdeSuccess: ms.status === 'ok' ? ms.mde : null,
  };
}

const excludesZero = (r: LiftResult) => r.status === 'ok' && (r.ci[0] > 0 || r.ci[1] < 0);

/**
 * A = randomized holdout, SRM passes, enough power, CI excludes 0. B = a holdout, but underpowered
 * or inconclusive. C = before/after against a baseline only (no holdout, or a broken one).
 * D = no baseline.
 */
export function gradeEvidence(s: UseCaseStats, spec: UseCaseSpec, o: EvidenceOptions = {}): Evidence {
  const b = spec.baseline;
  const hasBaseline = b !== null && (b.handling_seconds !== null || b.cost_per_task_usd !== null);
  const hasHoldout =
    spec.holdout.share > 0 && s.arms.holdout.completed >= MIN_ARM && s.arms.ai.completed >= MIN_ARM;
  if (!hasHoldout) {
    return hasBaseline
      ? {
          grade: 'C',
          reasons: ['no randomized holdout: the comparison is before/after against the baseline'],
          primary: null,
          lifts: null,
        }
      : {
          grade: 'D',
          reasons: ['no baseline and no holdout: there is nothing to compare against'],
          primary: null,
          lifts: null,
        };
  }
  const lifts = computeLifts(s, spec, o);
  const reasons: string[] = [];
  if (lifts.srm.status === 'ok' && lifts.srm.mismatch) {
    reasons.push(
      `sample-ratio mismatch (p = ${lifts.srm.pValue.toExponential(2)}): the arms' sizes do not match the ${spec.holdout.share} holdout, so assignment is broken`,
    );
    return { grade: hasBaseline ? 'C' : 'D', reasons, primary: null, lifts };
  }
  const primary =
    lifts.handling.status === 'ok' ? 'handling' : lifts.successRate.status === 'ok' ? 'successRate' : null;
  const result = primary ? lifts[primary] : null;
  const target = o.mdeTarget ?? 0.1;
  const mde = primary === 'handling' ? lifts.mde : lifts.mdeSuccess;
  const powered = mde !== null && mde <= target;
  const significant = result !== null && excludesZero(result);
  if (!powered) {
    reasons.push(
      `underpowered: with ${s.arms.ai.completed + s.arms.holdout.completed} tasks the smallest detectable change is ${mde === null ? 'unknown' : `${(mde * 100).toFixed(1)}%`}, above the ${target * 100}% target`,
    );
  }
  if (!significant)
    reasons.push(
      result ? 'inconclusive: the interval of the lift includes 0' : 'no metric can be compared yet',
    );
  if ((!powered || !significant) && result && result.status === 'ok') {
    // How much longer to run: the units that would detect the target effect with 80 % power.
    const more = midExperimentPower({
      liftVariance: result.se * result.se,
      units: s.arms.ai.completed + s.arms.holdout.completed,
      targetEffect: primary === 'handling' ? target : target * Math.abs(result.controlMean),
      ...(o.sequential ? { sequentialTuning: 5000 } : {}),
    });
    if (more.status === 'ok' && more.additionalUnits > 0) {
      reasons.push(
        `about ${Math.ceil(more.additionalUnits).toLocaleString('en-US')} more completed tasks would detect a ${target * 100}% change with 80% power`,
      );
    }
  }
  if (powered && significant) {
    reasons.push(
      `randomized holdout, SRM passes, powered to ${(mde! * 100).toFixed(1)}%, interval excludes 0`,
    );
    return { grade: 'A', reasons, primary, lifts };
  }
  return { grade: 'B', reasons, primary, lifts };
}
