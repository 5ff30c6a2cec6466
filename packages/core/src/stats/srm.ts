import { chiSquareSurvival } from './distributions.js';
import { type InsufficientData, insufficient } from './moments.js';

/** Below this p-value the split is taken as broken (GrowthBook's threshold too). */
export const SRM_THRESHOLD = 0.001;

export interface SrmResult {
  status: 'ok';
  chiSquare: number;
  df: number;
  pValue: number;
  /** p < threshold: the arms' sizes are too far from their weights for chance, so assignment is broken
   * and no comparison of the arms can be trusted. */
  mismatch: boolean;
}

/**
 * Sample-ratio mismatch: Pearson's chi-square of the units seen in each arm against the weights
 * they were assigned with (any scale: [0.9, 0.1] or [9, 1]). Arms of weight 0 are left out, as
 * GrowthBook's server does.
 */
export function srmCheck(
  observed: readonly number[],
  weights: readonly number[],
  threshold = SRM_THRESHOLD,
): SrmResult | InsufficientData {
  if (observed.length !== weights.length)
    return insufficient('invalid_input', 'observed and weights must have one entry per arm');
  if ([...observed, ...weights].some((v) => !Number.isFinite(v) || v < 0))
    return insufficient('invalid_input', 'counts and weights must be non-negative numbers');
  const arms = observed.map((o, i) => ({ o, w: weights[i]! })).filter((a) => a.w > 0);
  const total = arms.reduce((s, a) => s + a.o, 0);
  const weight = arms.reduce((s, a) => s + a.w, 0);
  if (arms.length < 2)
    return insufficient('too_few_units', 'An SRM check needs at least 2 arms with weight.');
  if (total === 0) return insufficient('too_few_units', 'No units have been assigned yet.');
  let chi = 0;
  for (const { o, w } of arms) {
    const e = (w / weight) * total;
    chi += ((o - e) * (o - e)) / e;
  }
  const df = arms.length - 1;
  const pValue = chiSquareSurvival(chi, df);
  return { status: 'ok', chiSquare: chi, df, pValue, mismatch: pValue < threshold };
}
