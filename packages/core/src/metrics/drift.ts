/**
 * Drift on a series (weekly QA pass rate, weekly latency): an EWMA chart and a two-sided CUSUM,
 * each against a reference taken from the first half of the series. Either alarming is drift.
 */
export interface DriftResult {
  status: 'ok' | 'insufficient_data';
  drift: boolean;
  /** Which chart alarmed, and at which point (index into the series). */
  ewmaAlarmAt: number | null;
  cusumAlarmAt: number | null;
  reference: { mean: number; sd: number } | null;
}

/** `sds`: each point's own standard error when it is known (a rate over n samples); otherwise the
 * spread is estimated from the moving range of the series, which a single shift barely inflates. */
export function detectDrift(
  series: readonly number[],
  sds?: readonly number[],
  lambda = 0.3,
  width = 3,
  k = 0.5,
  h = 5,
): DriftResult {
  const none: DriftResult = {
    status: 'insufficient_data',
    drift: false,
    ewmaAlarmAt: null,
    cusumAlarmAt: null,
    reference: null,
  };
  if (series.length < 6) return none;
  const ref = series.slice(0, Math.floor(series.length / 2));
  const mean = ref.reduce((a, b) => a + b, 0) / ref.length;
  let mr = 0;
  for (let i = 1; i < series.length; i++) mr += Math.abs(series[i]! - series[i - 1]!);
  const sd = sds ? sds.reduce((a, b) => a + b, 0) / sds.length : mr / (series.length - 1) / 1.128;
  if (!(sd > 0)) {
    // A perfectly flat reference: any later change is drift.
    const moved = series.findIndex((v, i) => i >= ref.length && v !== mean);
    return {
      status: 'ok',
      drift: moved >= 0,
      ewmaAlarmAt: moved >= 0 ? moved : null,
      cusumAlarmAt: null,
      reference: { mean, sd },
    };
  }
  let z = mean;
  let ewmaAt: number | null = null;
  let hi = 0;
  let lo = 0;
  let cusumAt: number | null = null;
  series.forEach((x, i) => {
    const sdi = sds?.[i] ?? sd;
    z = lambda * x + (1 - lambda) * z;
    const limit = width * sdi * Math.sqrt((lambda / (2 - lambda)) * (1 - (1 - lambda) ** (2 * (i + 1))));
    if (ewmaAt === null && Math.abs(z - mean) > limit) ewmaAt = i;
    const u = (x - mean) / sdi;
    hi = Math.max(0, hi + u - k);
    lo = Math.max(0, lo - u - k);
    if (cusumAt === null && (hi > h || lo > h)) cusumAt = i;
  });
  return {
    status: 'ok',
    drift: ewmaAt !== null || cusumAt !== null,
    ewmaAlarmAt: ewmaAt,
    cusumAlarmAt: cusumAt,
    reference: { mean, sd },
  };
}
