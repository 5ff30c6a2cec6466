/**
 * Sufficient statistics, the inputs of every test here: SQL sums them per arm (COUNT, SUM(x),
 * SUM(x*x), ...), and nothing needs the rows themselves. Conventions follow GrowthBook's gbstats,
 * so that results agree with that engine: a mean metric's variance is the sample variance (n - 1);
 * a proportion's is p(1 - p).
 */
export interface ArmStats {
  /** Units in the arm. */
  n: number;
  /** The sum of the metric over the units (successes, for a proportion). */
  sum: number;
  /** The sum of its squares (equal to `sum` for a 0/1 metric). */
  sumSquares: number;
}

/** CUPED: the same metric measured before the experiment (the covariate), per arm. */
export interface CupedArmStats extends ArmStats {
  covariateSum: number;
  covariateSumSquares: number;
  /** The sum over units of metric × covariate. */
  crossProductSum: number;
}

/** `mean`: any numeric metric. `proportion`: a 0/1 metric (success rate, QA pass rate). */
export type MetricKind = 'mean' | 'proportion';

export function mean(n: number, sum: number): number {
  return n > 0 ? sum / n : 0;
}

export function variance(n: number, sum: number, sumSquares: number, kind: MetricKind): number {
  if (kind === 'proportion') {
    if (n <= 0) return 0;
    const p = sum / n;
    return p * (1 - p);
  }
  if (n <= 1) return 0;
  return (sumSquares - (sum * sum) / n) / (n - 1);
}

export function covariance(n: number, sumX: number, sumY: number, sumXY: number, kind: MetricKind): number {
  if (n <= 1) return 0;
  if (kind === 'proportion') return sumXY / n - (sumX * sumY) / (n * n);
  return (sumXY - (sumX * sumY) / n) / (n - 1);
}

/** Why a statistic could not be computed. It is returned, never NaN and never thrown. */
export interface InsufficientData {
  status: 'insufficient_data';
  reason: 'too_few_units' | 'zero_variance' | 'zero_baseline' | 'invalid_input';
  message: string;
}

export function insufficient(reason: InsufficientData['reason'], message: string): InsufficientData {
  return { status: 'insufficient_data', reason, message };
}

/** Rejects sums that cannot come from real data (negative counts, NaN, Infinity). */
export function invalidArm(a: ArmStats): string | null {
  if (!Number.isFinite(a.n) || a.n < 0) return 'n must be a non-negative number';
  if (!Number.isFinite(a.sum) || !Number.isFinite(a.sumSquares)) return 'sum and sumSquares must be finite';
  return null;
}
