import { phiInv, studentCdf, studentQuantile } from './distributions.js';
import { type InsufficientData, insufficient } from './moments.js';

/** Wilson's score interval for a proportion: successes of n, at 1 − alpha. */
export function wilsonInterval(
  successes: number,
  n: number,
  alpha = 0.05,
): { status: 'ok'; rate: number; ci: [number, number] } | InsufficientData {
  if (!(n > 0)) return insufficient('too_few_units', 'No samples.');
  if (!(successes >= 0 && successes <= n))
    return insufficient('invalid_input', 'successes must be between 0 and n');
  const p = successes / n;
  const z = phiInv(1 - alpha / 2);
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const center = (p + z2 / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  // At 0 or n successes the bound is exactly 0 or 1; rounding would leave 1e-17.
  const lo = successes === 0 ? 0 : Math.max(0, center - half);
  const hi = successes === n ? 1 : Math.min(1, center + half);
  return { status: 'ok', rate: p, ci: [lo, hi] };
}

/** Sums over points (x, y), as SQL gives them: COUNT, SUM(x), SUM(y), SUM(x*x), SUM(x*y), SUM(y*y). */
export interface TrendStats {
  n: number;
  sumX: number;
  sumY: number;
  sumXX: number;
  sumXY: number;
  sumYY: number;
}

export interface Trend {
  status: 'ok';
  slope: number;
  intercept: number;
  se: number;
  ci: [number, number];
  pValue: number;
  df: number;
}

/** The least-squares slope of y on x, with a t interval (n − 2 df): the direction of a ratio over
 * time, or of log cost per outcome against log volume. */
export function linearTrend(s: TrendStats, alpha = 0.05): Trend | InsufficientData {
  if (s.n < 3) return insufficient('too_few_units', 'A trend needs at least 3 points.');
  const sxx = s.sumXX - (s.sumX * s.sumX) / s.n;
  const sxy = s.sumXY - (s.sumX * s.sumY) / s.n;
  const syy = s.sumYY - (s.sumY * s.sumY) / s.n;
  if (!(sxx > 0)) return insufficient('zero_variance', 'Every point has the same x.');
  const slope = sxy / sxx;
  const intercept = (s.sumY - slope * s.sumX) / s.n;
  const df = s.n - 2;
  const rss = Math.max(0, syy - slope * sxy);
  const se = Math.sqrt(rss / df / sxx);
  if (se === 0)
    return { status: 'ok', slope, intercept, se, ci: [slope, slope], pValue: slope === 0 ? 1 : 0, df };
  const half = studentQuantile(1 - alpha / 2, df) * se;
  const t = slope / se;
  return {
    status: 'ok',
    slope,
    intercept,
    se,
    ci: [slope - half, slope + half],
    pValue: 2 * (1 - studentCdf(Math.abs(t), df)),
    df,
  };
}

/** Sufficient statistics of points, for tests and callers that hold the points. */
export function trendStats(points: readonly (readonly [number, number])[]): TrendStats {
  const s: TrendStats = { n: 0, sumX: 0, sumY: 0, sumXX: 0, sumXY: 0, sumYY: 0 };
  for (const [x, y] of points) {
    s.n++;
    s.sumX += x;
    s.sumY += y;
    s.sumXX += x * x;
    s.sumXY += x * y;
    s.sumYY += y * y;
  }
  return s;
}
