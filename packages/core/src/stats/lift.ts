import { studentCdf, studentQuantile } from './distributions.js';
import {
  type ArmStats,
  type CupedArmStats,
  covariance,
  type InsufficientData,
  insufficient,
  invalidArm,
  type MetricKind,
  mean,
  variance,
} from './moments.js';

export type Difference = 'relative' | 'absolute';

export interface LiftOptions {
  /** relative (treatment − control) / |control|, the default; or absolute, treatment − control. */
  difference?: Difference;
  kind?: MetricKind;
  /** Two-sided significance level; 0.05 by default. */
  alpha?: number;
  /** An always-valid (sequential) interval, safe to peek at: the confidence sequence of
   * Waudby-Smith et al., tuned by `tuning` (the sample size it is tightest at; 5000 by default). */
  sequential?: boolean | { tuning?: number };
}

export interface LiftEstimate {
  status: 'ok';
  method: 'welch' | 'cuped';
  difference: Difference;
  /** The lift: a fraction of the control mean when relative. */
  estimate: number;
  /** Its standard error, by the delta method when relative. */
  se: number;
  ci: [number, number];
  pValue: number;
  /** Welch–Satterthwaite degrees of freedom. */
  df: number;
  sequential: boolean;
  controlMean: number;
  treatmentMean: number;
  /** CUPED's regression coefficient (0 when it fell back to the plain test). */
  theta?: number;
}

export type LiftResult = LiftEstimate | InsufficientData;

interface Moments {
  estimate: number;
  variance: number;
  df: number;
  nTotal: number;
  controlMean: number;
  treatmentMean: number;
}

function welchDf(vA: number, nA: number, vB: number, nB: number): number {
  const a = vA / nA;
  const b = vB / nB;
  return (a + b) ** 2 / ((b * b) / (nB - 1) + (a * a) / (nA - 1));
}

/** Checks shared by both tests, in gbstats' order. */
function degenerate(
  nA: number,
  nB: number,
  vA: number,
  vB: number,
  total: number,
  controlMean: number,
): InsufficientData | null {
  if (nA < 2 || nB < 2) return insufficient('too_few_units', 'Each arm needs at least 2 units.');
  if (controlMean === 0)
    return insufficient('zero_baseline', 'The control mean is 0: there is no baseline to compare with.');
  if (!(vA > 0) || !(vB > 0) || !(total > 0))
    return insufficient('zero_variance', 'An arm has no variance: every unit has the same value.');
  return null;
}

function welchMoments(
  a: ArmStats,
  b: ArmStats,
  kind: MetricKind,
  diff: Difference,
): Moments | InsufficientData {
  const mA = mean(a.n, a.sum);
  const mB = mean(b.n, b.sum);
  const vA = variance(a.n, a.sum, a.sumSquares, kind);
  const vB = variance(b.n, b.sum, b.sumSquares, kind);
  const total =
    diff === 'absolute'
      ? vB / b.n + vA / a.n
      : mA === 0
        ? 0
        : vB / (b.n * mA * mA) + (vA * mB * mB) / (a.n * mA ** 4);
  const bad = degenerate(a.n, b.n, vA, vB, total, mA);
  if (bad) return bad;
  return {
    estimate: diff === 'absolute' ? mB - mA : (mB - mA) / Math.abs(mA),
    variance: total,
    df: welchDf(vA, a.n, vB, b.n),
    nTotal: a.n + b.n,
    controlMean: mA,
    treatmentMean: mB,
  };
}

/** CUPED as regression adjustment: one θ from both arms pooled, each arm's metric adjusted by
 * θ × its covariate. With no usable covariate (θ = 0) it is the plain test. */
function cupedMoments(
  a: CupedArmStats,
  b: CupedArmStats,
  kind: MetricKind,
  diff: Difference,
): { moments: Moments | InsufficientData; theta: number } {
  const n = a.n + b.n;
  const sx = a.covariateSum + b.covariateSum;
  const sy = a.sum + b.sum;
  const varX = variance(n, sx, a.covariateSumSquares + b.covariateSumSquares, kind);
  const varY = variance(n, sy, a.sumSquares + b.sumSquares, kind);
  const cov = covariance(n, sx, sy, a.crossProductSum + b.crossProductSum, kind);
  const theta = varX === 0 || varY === 0 ? 0 : cov / varX;
  if (theta === 0) return { moments: welchMoments(a, b, kind, diff), theta };
  const arm = (s: CupedArmStats) => {
    const y = mean(s.n, s.sum);
    const x = mean(s.n, s.covariateSum);
    const vy = variance(s.n, s.sum, s.sumSquares, kind);
    const vx = variance(s.n, s.covariateSum, s.covariateSumSquares, kind);
    const c = covariance(s.n, s.covariateSum, s.sum, s.crossProductSum, kind);
    return {
      y,
      adjMean: y - theta * x,
      adjVar: s.n <= 1 ? 0 : vy + theta * theta * vx - 2 * theta * c,
      vx,
      vy,
      c,
    };
  };
  const A = arm(a);
  const B = arm(b);
  let total: number;
  if (diff === 'absolute') total = B.adjVar / b.n + A.adjVar / a.n;
  else if (A.y === 0) total = 0;
  else {
    const r = B.y / A.y;
    const vB = (B.vy + theta * theta * B.vx - 2 * theta * B.c) / (b.n * A.y * A.y);
    const vA = (A.vy * r * r - 2 * theta * A.c * r + theta * theta * A.vx) / (a.n * A.y * A.y);
    total = vB + vA;
  }
  // As gbstats: a zero control mean, adjusted or not, gives no result for either difference.
  const bad = degenerate(a.n, b.n, A.adjVar, B.adjVar, total, A.adjMean === 0 ? 0 : A.y);
  if (bad) return { moments: bad, theta };
  return {
    moments: {
      estimate: diff === 'absolute' ? B.adjMean - A.adjMean : (B.adjMean - A.adjMean) / Math.abs(A.y),
      variance: total,
      df: welchDf(A.adjVar, a.n, B.adjVar, b.n),
      nTotal: n,
      controlMean: A.y,
      treatmentMean: B.y,
    },
    theta,
  };
}

/** ρ of the confidence sequence, from the sample size it should be tightest at. */
export function sequentialRho(alpha: number, tuning: number): number {
  const l = -2 * Math.log(alpha);
  return Math.sqrt((l + Math.log(l + 1)) / tuning);
}

function interval(m: Moments, alpha: number, seq: { tuning: number } | null) {
  const se = Math.sqrt(m.variance);
  if (seq) {
    const N = m.nTotal;
    const rho = sequentialRho(alpha, seq.tuning);
    const k = N * rho * rho + 1;
    const half = se * Math.sqrt(N) * Math.sqrt((2 * k * Math.log(Math.sqrt(k) / alpha)) / (N * rho) ** 2);
    const s = (m.estimate * m.estimate * N) / m.variance;
    const e = Math.exp((rho * rho * s) / (2 * k)) / Math.sqrt(k);
    return { se, ci: [m.estimate - half, m.estimate + half] as [number, number], pValue: Math.min(1, 1 / e) };
  }
  const half = studentQuantile(1 - alpha / 2, m.df) * se;
  const t = m.estimate / se;
  return {
    se,
    ci: [m.estimate - half, m.estimate + half] as [number, number],
    pValue: 2 * (1 - studentCdf(Math.abs(t), m.df)),
  };
}

function options(opts: LiftOptions) {
  const alpha = opts.alpha ?? 0.05;
  const seq = opts.sequential
    ? { tuning: (typeof opts.sequential === 'object' ? opts.sequential.tuning : undefined) ?? 5000 }
    : null;
  return { alpha, seq, kind: opts.kind ?? 'mean', diff: opts.difference ?? 'relative' };
}

function checkInputs(
  arms: ArmStats[],
  alpha: number,
  seq: { tuning: number } | null,
): InsufficientData | null {
  for (const a of arms) {
    const bad = invalidArm(a);
    if (bad) return insufficient('invalid_input', bad);
  }
  if (!(alpha > 0 && alpha < 1)) return insufficient('invalid_input', 'alpha must be between 0 and 1');
  if (seq && !(seq.tuning > 0))
    return insufficient('invalid_input', 'the sequential tuning must be positive');
  return null;
}

function estimateOf(
  m: Moments,
  method: LiftEstimate['method'],
  difference: Difference,
  alpha: number,
  seq: { tuning: number } | null,
): LiftEstimate {
  return {
    status: 'ok',
    method,
    difference,
    ...interval(m, alpha, seq),
    df: m.df,
    sequential: seq !== null,
    estimate: m.estimate,
    controlMean: m.controlMean,
    treatmentMean: m.treatmentMean,
  };
}

/** Welch's t-test of treatment against control, with the delta method for a relative lift. */
export function liftTest(control: ArmStats, treatment: ArmStats, opts: LiftOptions = {}): LiftResult {
  const { alpha, seq, kind, diff } = options(opts);
  const bad = checkInputs([control, treatment], alpha, seq);
  if (bad) return bad;
  const m = welchMoments(control, treatment, kind, diff);
  if ('status' in m) return m;
  return estimateOf(m, 'welch', diff, alpha, seq);
}

/** The same test with CUPED: variance cut by the covariate measured before the experiment. */
export function cupedLiftTest(
  control: CupedArmStats,
  treatment: CupedArmStats,
  opts: LiftOptions = {},
): LiftResult {
  const { alpha, seq, kind, diff } = options(opts);
  const bad = checkInputs([control, treatment], alpha, seq);
  if (bad) return bad;
  const { moments: m, theta } = cupedMoments(control, treatment, kind, diff);
  if ('status' in m) return m;
  return { ...estimateOf(m, theta === 0 ? 'welch' : 'cuped', diff, alpha, seq), theta };
}
