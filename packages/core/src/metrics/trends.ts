import { linearTrend, trendStats } from '../stats/intervals.js';
import type { LiftResult } from '../stats/lift.js';
import { type AllInCost, aiSide, humanSeconds } from './cost.js';
import type { UseCaseStats, WeekRow } from './inputs.js';
import type { Comparison, MetricTrend, Status } from './scorecard.js';

/** The pieces the scorecard is built from: comparisons, weekly trends, statuses, unit economics. */
export function comparison(
  lift: LiftResult | undefined,
  ai: number | null,
  holdout: number | null,
): Comparison {
  if (!lift) return { ai, holdout, lift: null, note: 'no holdout' };
  if (lift.status !== 'ok') return { ai, holdout, lift: null, note: lift.message };
  return {
    ai,
    holdout,
    lift: {
      difference: lift.difference,
      estimate: lift.estimate,
      ci: lift.ci,
      pValue: lift.pValue,
      method: lift.method + (lift.sequential ? ', sequential' : ''),
    },
  };
}

export function weeklyTrend(weeks: readonly WeekRow[], f: (w: WeekRow) => number | null): MetricTrend | null {
  const pts: [number, number][] = [];
  weeks.forEach((w, i) => {
    const v = f(w);
    if (v !== null && Number.isFinite(v)) pts.push([i, v]);
  });
  const t = linearTrend(trendStats(pts));
  if (t.status !== 'ok') return null;
  return { slope: t.slope, ci: t.ci, direction: t.ci[0] > 0 ? 'up' : t.ci[1] < 0 ? 'down' : 'flat' };
}

/** Good when the lift's interval is on the good side of 0, bad when on the bad side. */
export function liftStatus(c: Comparison | null, better: 'up' | 'down'): Status {
  const l = c?.lift;
  if (!l) return 'unknown';
  const good = better === 'up' ? l.ci[0] > 0 : l.ci[1] < 0;
  const bad = better === 'up' ? l.ci[1] < 0 : l.ci[0] > 0;
  return good ? 'good' : bad ? 'bad' : 'warn';
}

export const ratio = (a: number, b: number) => (b > 0 ? a / b : null);
export const band = (v: number | null, good: number, bad: number, higherIsBetter = true): Status =>
  v === null
    ? 'unknown'
    : higherIsBetter
      ? v >= good
        ? 'good'
        : v < bad
          ? 'bad'
          : 'warn'
      : v <= good
        ? 'good'
        : v > bad
          ? 'bad'
          : 'warn';

const MIN_VOLUME_SPREAD = 1.5;
export const WEEK_MS = 7 * 86_400_000;

/** Weekly cost per outcome against weekly volume, on log scales: a slope above 0 means each outcome
 * gets dearer as volume grows. Human and LLM cost go by week; the ledger is spread evenly. */
export function unitEconomics(
  s: UseCaseStats,
  cost: AllInCost,
): { slope: number; ci: [number, number] } | null {
  const weeks = s.weeks.filter((w) => w.aiSuccesses > 0 && w.aiCompleted > 0);
  if (weeks.length < 3) return null;
  // A slope on volume needs volume to have moved: with weekly volumes within 1.5× of each other,
  // week-to-week noise in cost would pass for a slope.
  const volumes = weeks.map((w) => w.aiCompleted);
  if (Math.max(...volumes) / Math.min(...volumes) < MIN_VOLUME_SPREAD) return null;
  const fixedPerWeek = Number(cost.ledgerNano) / 1e9 / Math.max(1, s.weeks.length);
  const seconds = humanSeconds(aiSide(s));
  const humanPerSecond = seconds > 0 ? Number(cost.humanNano) / 1e9 / seconds : 0;
  const pts = weeks.map((w) => {
    const c = Number(w.spendNano) / 1e9 + fixedPerWeek + w.humanSeconds * humanPerSecond;
    return [Math.log(w.aiCompleted), Math.log(c / w.aiSuccesses)] as [number, number];
  });
  const t = linearTrend(trendStats(pts));
  return t.status === 'ok' ? { slope: t.slope, ci: t.ci } : null;
}
