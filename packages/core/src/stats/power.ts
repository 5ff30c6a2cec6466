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
