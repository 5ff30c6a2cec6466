import { phi, phiInv } from './distributions.js';
import { sequentialRho } from './lift.js';
import { type InsufficientData, insufficient } from './moments.js';

export interface PowerInput {
  /** The metric's mean in the control arm (a rate, for a proportion). */
  mean: number;
  /** Its per-unit variance: sd², or p(1 − p) for a proportion. */
  variance: number;
  /** Units across all arms. */
  units: number;
  /** Arms the units are split over evenly; 2 by default. */
  arms?: number;
  alpha?: number;
  twoSided?: boolean;
  /** For an always-valid (sequential) analysis: its tuning, as in liftTest. */
  sequentialTuning?: number;
}

/** The sequential interval is wider than the fixed one by this factor on the variance. */
function sequentialInflation(perArm: number, alpha: number, tuning: number, z: number): number {
  const N = 2 * perArm;
  const rho = sequentialRho(alpha, tuning);
  const k = N * rho * rho + 1;
  const d = (2 * k * Math.log(Math.sqrt(k) / alpha)) / (N * rho) ** 2;
  return (N * d) / (z * z);
}

function check(i: PowerInput): InsufficientData | null {
  const arms = i.arms ?? 2;
  if (!(i.units >= 2 * arms)) return insufficient('too_few_units', 'Each arm needs at least 2 units.');
  if (!(i.variance > 0)) return insufficient('zero_variance', 'The metric has no variance.');
  if (i.mean === 0) return insufficient('zero_baseline', 'A relative effect needs a non-zero baseline mean.');
  return null;
}

/** The chance of a significant result when the true relative lift is `effect` (a fraction). */
export function power(
  i: PowerInput & { effect: number },
): { status: 'ok'; power: number } | InsufficientData {
  const bad = check(i);
  if (bad) return bad;
  const alpha = i.alpha ?? 0.05;
  const perArm = i.units / (i.arms ?? 2);
  const twoSided = i.twoSided ?? true;
  const z = phiInv(1 - (twoSided ? alpha / 2 : alpha));
  const m = i.mean;
  let se = Math.sqrt(
    i.variance / (m * m * perArm) + (i.variance * (m * (1 + i.effect)) ** 2) / (m ** 4 * perArm),
  );
  if (i.sequentialTuning) se *= Math.sqrt(sequentialInflation(perArm, alpha, i.sequentialTuning, z));
  const shift = i.effect / se;
  const p = 1 - phi(z - shift) + (twoSided ? phi(-z - shift) : 0);
  return { status: 'ok', power: p };
}

/** The smallest relative lift detected with probability `power` (0.8 by default). */
export function minimumDetectableEffect(
  i: PowerInput & { power?: number },
): { status: 'ok'; mde: number } | InsufficientData {
  const bad = check(i);
  if (bad) return bad;
  const alpha = i.alpha ?? 0.05;
  const target = i.power ?? 0.8;
  if (!(target > alpha && target < 1))
    return insufficient('invalid_input', 'power must be between alpha and 1');
  const perArm = i.units / (i.arms ?? 2);
  const zAlpha = phiInv(1 - alpha / 2);
  let v = i.variance;
  if (i.sequentialTuning) v *= sequentialInflation(perArm, alpha, i.sequentialTuning, zAlpha);
  const z = zAlpha - phiInv(1 - target);
  const m = i.mean;
  const s2 = v / perArm;
  if (perArm <= (v * z * z) / (m * m))
    return insufficient('too_few_units', 'Too few units for any effect to reach that power.');
  const a = 1 - (z * z * s2) / (m * m);
  const b = -2 * m;
  const c = m * m - z * z * s2;
  const x = (-b + Math.sqrt(b * b - 4 * a * c)) / (2 * a);
  return { status: 'ok', mde: (x - m) / m };
}

export interface MidExperimentInput {
  /** The variance of the current lift estimate (its standard error squared). */
  liftVariance: number;
  /** Units in the two arms compared so far. */
  units: number;
  /** The effect to be able to detect (in the lift's own scale, e.g. 0.05 for 5 % relative). */
  targetEffect: number;
  power?: number;
  alpha?: number;
  /** Goal metrics and arms, for a corrected threshold when correct is set. */
  goalMetrics?: number;
  variations?: number;
  correct?: boolean;
  sequentialTuning?: number;
  /** A Gaussian prior on the lift, for a Bayesian analysis. */
  prior?: { mean: number; variance: number };
}

/**
 * While a pilot runs: how many more units (as a multiple k of those so far) until the target
 * effect would be detected with the target power. Follows gbstats' MidExperimentPower: doubling,
 * then bisection to within 1e-5 of the power.
 */
export function midExperimentPower(
  i: MidExperimentInput,
): { status: 'ok'; scalingFactor: number; additionalUnits: number; power: number } | InsufficientData {
  if (!(i.liftVariance > 0)) return insufficient('zero_variance', 'The lift has no variance yet.');
  if (!(i.units >= 4)) return insufficient('too_few_units', 'Too few units so far.');
  const alpha = i.alpha ?? 0.05;
  const g = i.goalMetrics ?? 1;
  const tests = i.correct ? ((i.variations ?? 2) - 1) * g : 1;
  const z = phiInv(1 - alpha / (2 * tests));
  const target = (i.power ?? 0.8) ** (1 / g);
  const d = Math.abs(i.targetEffect);
  const N = i.units;
  const at = (k: number): number => {
    const v = i.liftVariance / (1 + k);
    const sd = Math.sqrt(v);
    if (i.prior) {
      const p = 1 / i.prior.variance + 1 / v;
      const a1 = v * Math.sqrt(p) * z;
      const a2 = (v * i.prior.mean) / i.prior.variance;
      return 1 - phi((a1 - a2 - d) / sd) + phi(-(a1 + a2 + d) / sd);
    }
    let hw = z * sd;
    if (i.sequentialTuning) {
      const n = N + k * N;
      const rho = sequentialRho(alpha / tests, i.sequentialTuning);
      const m = n * rho * rho + 1;
      hw =
        Math.sqrt(N * i.liftVariance) *
        Math.sqrt((2 * m * Math.log(Math.sqrt(m) / (alpha / tests))) / (n * rho) ** 2);
    }
    return 1 - phi((hw - d) / sd) + phi(-(hw + d) / sd);
  };
  if (at(0) > target) return { status: 'ok', scalingFactor: 0, additionalUnits: 0, power: at(0) };
  let k = 1;
  let doublings = 0;
  while (at(k) < target) {
    if (++doublings > 27)
      return insufficient('too_few_units', 'No sample size within reach detects that effect.');
    k *= 2;
  }
  let lo = 0;
  let hi = k;
  let diff = at(k) - target;
  for (let step = 0; step < 100 && Math.abs(diff) >= 1e-5; step++) {
    if (diff > 0) hi = k;
    else lo = k;
    k = (lo + hi) / 2;
    diff = at(k) - target;
  }
  return { status: 'ok', scalingFactor: k, additionalUnits: N * k, power: at(k) };
}
