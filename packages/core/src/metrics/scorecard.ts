import type { Stage } from '../model.js';
import { nanoToUsd } from '../money.js';
import { linearTrend, trendStats, wilsonInterval } from '../stats/intervals.js';
import type { LiftResult } from '../stats/lift.js';
import { mean } from '../stats/moments.js';
import {
  type GateCheck,
  type GateEvidence,
  type GateResult,
  nextGate,
  reviewDue,
  smart,
  type UseCaseSpec,
} from '../use-cases/register.js';
import { type AllInCost, aiSide, allInCost, humanSeconds, per } from './cost.js';
import { detectDrift } from './drift.js';
import { type Evidence, type EvidenceOptions, gradeEvidence } from './evidence.js';
import type { UseCaseStats, WeekRow } from './inputs.js';
import { computeRoi, opportunity, type Roi } from './roi.js';

export type Status = 'good' | 'warn' | 'bad' | 'unknown';
export type Bucket = 'outcomes' | 'adoption' | 'quality' | 'speed' | 'cost';

export interface Comparison {
  ai: number | null;
  holdout: number | null;
  lift: {
    difference: 'relative' | 'absolute';
    estimate: number;
    ci: [number, number];
    pValue: number;
    method: string;
  } | null;
  note?: string;
}

export interface MetricTrend {
  /** Change per week. */
  slope: number;
  ci: [number, number];
  direction: 'up' | 'down' | 'flat';
}

export interface MetricValue {
  key: string;
  label: string;
  unit: 'ratio' | 'seconds' | 'usd' | 'count' | 'ms';
  value: number | string | null;
  baseline: number | string | null;
  comparison: Comparison | null;
  ci: [number, number] | null;
  trend: MetricTrend | null;
  status: Status;
  note?: string;
}

export interface Scorecard {
  use_case: string;
  period: { from: string; to: string; days: number };
  stage: Stage;
  gate: GateResult | null;
  evidence: { grade: Evidence['grade']; reasons: string[] };
  review: ReturnType<typeof reviewDue>;
  buckets: Record<Bucket, MetricValue[]>;
  roi: Roi;
  /** Before building (or beside the measured ROI): monthly volume × cost per task today, less what
   * the AI would cost to run, from the register's estimate or, once there are tasks, the measured
   * cost per task; with the SMART check. */
  opportunity: {
    monthly_usd: string;
    current_usd: string;
    projected_ai_usd: string;
    basis: 'estimate' | 'measured';
    smart: GateCheck[];
  } | null;
  srm: { passed: boolean; pValue: number | null; note: string } | null;
  sequential: boolean;
  cost: {
    llm_usd: string;
    ledger_usd: string;
    human_usd: string;
    all_in_usd: string;
    unpriced_calls: number;
  };
  /** What the stage gates read. */
  gateEvidence: GateEvidence;
  /** The weekly series behind the trends (AI side), for charts. */
  weeks: {
    week: string;
    completed: number;
    successes: number;
    llm_usd: string;
    llm_cost_per_outcome_usd: string | null;
    stability: number | null;
    qa_pass_rate: number | null;
  }[];
}

function comparison(lift: LiftResult | undefined, ai: number | null, holdout: number | null): Comparison {
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

function weeklyTrend(weeks: readonly WeekRow[], f: (w: WeekRow) => number | null): MetricTrend | null {
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
function liftStatus(c: Comparison | null, better: 'up' | 'down'): Status {
  const l = c?.lift;
  if (!l) return 'unknown';
  const good = better === 'up' ? l.ci[0] > 0 : l.ci[1] < 0;
  const bad = better === 'up' ? l.ci[1] < 0 : l.ci[0] > 0;
  return good ? 'good' : bad ? 'bad' : 'warn';
}

const ratio = (a: number, b: number) => (b > 0 ? a / b : null);
const band = (v: number | null, good: number, bad: number, higherIsBetter = true): Status =>
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

export interface ScorecardInput {
  useCase: string;
  stage: Stage;
  spec: UseCaseSpec;
  stats: UseCaseStats;
  now: number;
  options?: EvidenceOptions;
}

/**
 * The five-bucket scorecard of one use case over one period, every number by DESIGN's
 * definitions. Thresholds: stability above 85 % is good and below 70 % bad; adoption 60 % / 30 %;
 * repeat use 50 % / 25 %; abandonment 5 % / 15 %; cost per outcome good below the baseline cost
 * per task and bad more than 10 % above it; a lift is good when its interval is on the good side
 * of 0 and bad when on the other; a trend likewise for the direction a ratio should move.
 */
export function buildScorecard(input: ScorecardInput): Scorecard {
  const { spec } = input;
  // Trends and unit economics read whole weeks only: a week cut by the period's edges would pass
  // for a drop in volume.
  const whole = input.stats.weeks.filter(
    (w) => w.week >= input.stats.from && w.week + WEEK_MS <= input.stats.to,
  );
  const s: UseCaseStats = { ...input.stats, weeks: whole };
  const ai = aiSide(s);
  const hold = s.arms.holdout;
  const hasHoldout = spec.holdout.share > 0 && hold.eligible > 0;
  const evidence = gradeEvidence(s, spec, input.options);
  const lifts = evidence.lifts;
  const cost: AllInCost = allInCost(s, spec.reviewer_hourly_usd);
  const roi = computeRoi(s, spec, cost, evidence, input.options?.alpha);
  const b = spec.baseline;

  // Outcomes
  const successRate = ratio(ai.successes, ai.completed);
  const successCi = wilsonInterval(ai.successes, ai.completed);
  const successCmp = hasHoldout
    ? comparison(lifts?.successRate, successRate, ratio(hold.successes, hold.completed))
    : null;
  const stability = ratio(ai.stableSuccesses, ai.completed);
  const stabilityCi = wilsonInterval(ai.stableSuccesses, ai.completed);
  const roiStatus: Status =
    roi.status !== 'ok' ? 'unknown' : roi.ci![0] > 0 ? 'good' : roi.roi! < 0 ? 'bad' : 'warn';
  const outcomes: MetricValue[] = [
    {
      key: 'successes',
      label: 'Successful outcomes',
      unit: 'count',
      value: ai.successes,
      baseline: null,
      comparison: null,
      ci: null,
      trend: weeklyTrend(s.weeks, (w) => w.aiSuccesses),
      status: ai.successes > 0 ? 'good' : ai.completed > 0 ? 'bad' : 'unknown',
    },
    {
      key: 'success_rate',
      label: 'Success rate',
      unit: 'ratio',
      value: successRate,
      baseline: b?.error_rate != null ? 1 - b.error_rate : null,
      comparison: successCmp,
      ci: successCi.status === 'ok' ? successCi.ci : null,
      trend: weeklyTrend(s.weeks, (w) => ratio(w.aiSuccesses, w.aiCompleted)),
      status: successCmp?.lift
        ? liftStatus(successCmp, 'up')
        : b?.error_rate != null && successRate !== null
          ? band(successRate, 1 - b.error_rate, 1 - b.error_rate - 0.05)
          : 'unknown',
    },
    {
      key: 'stability_rate',
      label: 'Automation stability (successes with no override, edit or escalation)',
      unit: 'ratio',
      value: stability,
      baseline: null,
      comparison: null,
      ci: stabilityCi.status === 'ok' ? stabilityCi.ci : null,
      trend: weeklyTrend(s.weeks, (w) => ratio(w.stableSuccesses, w.aiCompleted)),
      status: stability === null ? 'unknown' : stability > 0.85 ? 'good' : stability < 0.7 ? 'bad' : 'warn',
    },
    {
      key: 'roi',
      label: 'ROI (monthly)',
      unit: 'ratio',
      value: roi.roi,
      baseline: null,
      comparison: null,
      ci: roi.ci,
      trend: null,
      status: roiStatus,
      ...(roi.reason ? { note: roi.reason } : {}),
    },
  ];

  // Adoption
  const armForAdoption = hasHoldout ? s.arms.ai : ai;
  const adoption = ratio(armForAdoption.aiUsed, armForAdoption.eligible);
  const repeat = ratio(s.users.repeat, s.users.active);
  const abandonment = ratio(ai.abandoned, ai.completed);
  const optOut = ratio(ai.optOuts, ai.eligible);
  const adoptionMetrics: MetricValue[] = [
    {
      key: 'adoption',
      label: 'Adoption (tasks with AI used / eligible tasks in the AI arm)',
      unit: 'ratio',
      value: adoption,
      baseline: null,
      comparison: null,
      ci: (() => {
        const w = wilsonInterval(armForAdoption.aiUsed, armForAdoption.eligible);
        return w.status === 'ok' ? w.ci : null;
      })(),
      trend: null,
      status: band(adoption, 0.6, 0.3),
    },
    {
      key: 'repeat_use',
      label: 'Repeat use (users active in 2+ of the last 4 weeks)',
      unit: 'ratio',
      value: repeat,
      baseline: null,
      comparison: null,
      ci: null,
      trend: null,
      status: band(repeat, 0.5, 0.25),
    },
    {
      key: 'abandonment',
      label: 'Abandonment',
      unit: 'ratio',
      value: abandonment,
      baseline: null,
      comparison: null,
      ci: null,
      trend: null,
      status: band(abandonment, 0.05, 0.15, false),
    },
    {
      key: 'opt_out',
      label: 'Opt-outs',
      unit: 'ratio',
      value: optOut,
      baseline: null,
      comparison: null,
      ci: null,
      trend: null,
      status: band(optOut, 0.05, 0.2, false),
      note: s.optOutReasons.map((r) => `${r.reason}: ${r.count}`).join(', ') || 'none',
    },
  ];

  // Quality
  const qaRate = ratio(ai.qaPasses, ai.qaSamples);
  const qaCi = wilsonInterval(ai.qaPasses, ai.qaSamples);
  const qaCmp =
    hasHoldout && hold.qaSamples > 0
      ? comparison(lifts?.quality, qaRate, ratio(hold.qaPasses, hold.qaSamples))
      : null;
  const qaWeeks = s.weeks.filter((w) => w.qaSamples > 0);
  const p0 = ai.qaSamples > 0 ? ai.qaPasses / ai.qaSamples : 0;
  // A pass rate over n samples has a binomial standard error: the charts use it, not the scatter.
  const qaDrift = detectDrift(
    qaWeeks.map((w) => w.qaPasses / w.qaSamples),
    p0 > 0 && p0 < 1 ? qaWeeks.map((w) => Math.sqrt((p0 * (1 - p0)) / w.qaSamples)) : undefined,
  );
  const baselineSeconds = b?.handling_seconds ?? null;
  const oversight = baselineSeconds ? ratio(humanSeconds(ai), ai.completed * baselineSeconds) : null;
  const oversightTrend = baselineSeconds
    ? weeklyTrend(s.weeks, (w) => ratio(w.humanSeconds, w.aiCompleted * baselineSeconds))
    : null;
  const quality: MetricValue[] = [
    {
      key: 'qa_pass_rate',
      label: 'QA pass rate',
      unit: 'ratio',
      value: qaRate,
      baseline: null,
      comparison: qaCmp,
      ci: qaCi.status === 'ok' ? qaCi.ci : null,
      trend: weeklyTrend(s.weeks, (w) => ratio(w.qaPasses, w.qaSamples)),
      status:
        ai.qaSamples === 0
          ? 'warn'
          : qaDrift.drift
            ? 'bad'
            : qaCmp?.lift && liftStatus(qaCmp, 'up') === 'bad'
              ? 'bad'
              : 'good',
      note:
        ai.qaSamples === 0
          ? 'no quality samples: drift cannot be watched'
          : qaDrift.status === 'ok'
            ? qaDrift.drift
              ? `drift: EWMA ${qaDrift.ewmaAlarmAt ?? '-'} / CUSUM ${qaDrift.cusumAlarmAt ?? '-'} (week index)`
              : 'no drift (EWMA and CUSUM)'
            : 'too few weeks of samples to watch drift',
    },
    {
      key: 'oversight_ratio',
      label: 'Human oversight ratio (human seconds / baseline seconds of the AI tasks)',
      unit: 'ratio',
      value: oversight,
      baseline: null,
      comparison: null,
      ci: null,
      trend: oversightTrend,
      status: oversightTrend
        ? oversightTrend.direction === 'down'
          ? 'good'
          : oversightTrend.direction === 'up'
            ? 'bad'
            : 'warn'
        : 'unknown',
      ...(baselineSeconds ? {} : { note: 'needs the baseline handling time' }),
    },
  ];

  // Speed
  const handlingAi = ai.handling.n > 0 ? mean(ai.handling.n, ai.handling.sum) : null;
  const handlingHold = hold.handling.n > 0 ? mean(hold.handling.n, hold.handling.sum) : null;
  const handlingCmp = hasHoldout ? comparison(lifts?.handling, handlingAi, handlingHold) : null;
  const latencyDrift = detectDrift(s.weeks.map((w) => w.latencyMs).filter((v): v is number => v !== null));
  const speed: MetricValue[] = [
    {
      key: 'handling_seconds',
      label: 'Handling time',
      unit: 'seconds',
      value: handlingAi,
      baseline: baselineSeconds,
      comparison: handlingCmp,
      ci: handlingCmp?.lift?.ci ?? null,
      trend: null,
      status: handlingCmp?.lift
        ? liftStatus(handlingCmp, 'down')
        : handlingAi !== null && baselineSeconds
          ? band(handlingAi / baselineSeconds, 1, 1.1, false)
          : 'unknown',
    },
    ...(['p50', 'p95', 'p99'] as const).map(
      (q): MetricValue => ({
        key: `latency_${q}`,
        label: `Call latency ${q}`,
        unit: 'ms',
        value: s.calls.latency[q],
        baseline: null,
        comparison: null,
        ci: null,
        trend: q === 'p50' ? weeklyTrend(s.weeks, (w) => w.latencyMs) : null,
        status: s.calls.latency[q] === null ? 'unknown' : latencyDrift.drift ? 'warn' : 'good',
        ...(q === 'p50' && latencyDrift.drift ? { note: 'latency drift (EWMA/CUSUM)' } : {}),
      }),
    ),
  ];

  // Cost
  const cpo = per(cost.totalNano, ai.successes);
  const cpat = per(cost.totalNano, ai.completedWithoutHuman);
  const baseCost = b?.cost_per_task_usd ?? null;
  const cpoUsd = cpo === null ? null : Number(cpo) / 1e9;
  const unit = unitEconomics(s, cost);
  const costMetrics: MetricValue[] = [
    {
      key: 'all_in_cost',
      label: 'All-in AI cost',
      unit: 'usd',
      value: nanoToUsd(cost.totalNano),
      baseline: null,
      comparison: null,
      ci: null,
      trend: weeklyTrend(s.weeks, (w) => Number(w.spendNano) / 1e9),
      status: cost.unpricedCalls > 0 ? 'warn' : 'good',
      ...(cost.unpricedCalls > 0
        ? { note: `${cost.unpricedCalls} calls unpriced: their cost is missing` }
        : {}),
    },
    {
      key: 'cost_per_outcome',
      label: 'Cost per successful outcome',
      unit: 'usd',
      value: cpo === null ? null : nanoToUsd(cpo),
      baseline: baseCost,
      comparison: null,
      ci: null,
      trend: weeklyTrend(s.weeks, (w) =>
        w.aiSuccesses > 0 ? Number(w.spendNano) / 1e9 / w.aiSuccesses : null,
      ),
      status:
        cpoUsd === null || baseCost === null ? 'unknown' : band(cpoUsd / Number(baseCost), 1, 1.1, false),
    },
    {
      key: 'cost_per_automated_transaction',
      label: 'Cost per automated transaction (no human)',
      unit: 'usd',
      value: cpat === null ? null : nanoToUsd(cpat),
      baseline: baseCost,
      comparison: null,
      ci: null,
      trend: null,
      status: cpat === null ? 'unknown' : 'good',
    },
    {
      key: 'unit_economics',
      label: 'Unit economics (log-log slope of cost per outcome on weekly volume)',
      unit: 'ratio',
      value: unit?.slope ?? null,
      baseline: null,
      comparison: null,
      ci: unit?.ci ?? null,
      trend: null,
      status: unit === null ? 'unknown' : unit.ci[1] <= 0 ? 'good' : unit.ci[0] > 0 ? 'bad' : 'warn',
      note:
        unit === null
          ? 'needs 3 weeks with outcomes'
          : unit.ci[1] <= 0
            ? 'scale: cost per outcome does not rise with volume'
            : unit.ci[0] > 0
              ? 'do not scale: cost per outcome rises with volume'
              : 'hold: not yet clear',
    },
  ];

  const gateEvidence: GateEvidence = {
    evidence_grade: evidence.grade,
    stability_rate: stability,
    cost_per_outcome_usd: cpo === null ? null : nanoToUsd(cpo),
    unit_economics: unit,
  };
  const lastChange = spec.history.at(-1)?.at;
  const measuredPerTask = ai.completed > 0 ? per(cost.llmNano + cost.humanNano, ai.completed) : null;
  const estimate = spec.ai_estimate ?? null;
  const opp =
    b?.monthly_volume != null && b.cost_per_task_usd && (estimate || measuredPerTask !== null)
      ? {
          ...(() => {
            const o = opportunity({
              monthlyVolume: b.monthly_volume,
              costPerTaskUsd: b.cost_per_task_usd,
              aiCostPerTaskUsd: estimate ? estimate.cost_per_task_usd : nanoToUsd(measuredPerTask!),
              fixedMonthlyUsd: estimate
                ? (estimate.fixed_monthly_usd ?? '0')
                : nanoToUsd(
                    (cost.ledgerNano * 30n) / BigInt(Math.max(1, Math.round((s.to - s.from) / 86_400_000))),
                  ),
            });
            return { monthly_usd: o.monthlyUsd, current_usd: o.current, projected_ai_usd: o.projectedAi };
          })(),
          basis: (estimate ? 'estimate' : 'measured') as 'estimate' | 'measured',
          smart: smart(spec),
        }
      : null;
  const srm =
    lifts && lifts.srm.status === 'ok'
      ? {
          passed: !lifts.srm.mismatch,
          pValue: lifts.srm.pValue,
          note: `χ² = ${lifts.srm.chiSquare.toFixed(2)}, ${lifts.srm.df} df`,
        }
      : hasHoldout
        ? { passed: true, pValue: null, note: 'not enough units yet' }
        : null;
  return {
    use_case: input.useCase,
    period: {
      from: new Date(s.from).toISOString(),
      to: new Date(s.to).toISOString(),
      days: (s.to - s.from) / 86_400_000,
    },
    stage: input.stage,
    gate: nextGate(spec, input.stage, gateEvidence),
    evidence: { grade: evidence.grade, reasons: evidence.reasons },
    review: reviewDue(input.stage, lastChange ? Date.parse(lastChange) : s.from, input.now),
    buckets: { outcomes, adoption: adoptionMetrics, quality, speed, cost: costMetrics },
    roi,
    opportunity: opp,
    srm,
    sequential: input.options?.sequential ?? false,
    cost: {
      llm_usd: nanoToUsd(cost.llmNano),
      ledger_usd: nanoToUsd(cost.ledgerNano),
      human_usd: nanoToUsd(cost.humanNano),
      all_in_usd: nanoToUsd(cost.totalNano),
      unpriced_calls: cost.unpricedCalls,
    },
    gateEvidence,
    weeks: s.weeks.map((w) => ({
      week: new Date(w.week).toISOString().slice(0, 10),
      completed: w.aiCompleted,
      successes: w.aiSuccesses,
      llm_usd: nanoToUsd(w.spendNano),
      llm_cost_per_outcome_usd: w.aiSuccesses > 0 ? nanoToUsd(w.spendNano / BigInt(w.aiSuccesses)) : null,
      stability: ratio(w.stableSuccesses, w.aiCompleted),
      qa_pass_rate: ratio(w.qaPasses, w.qaSamples),
    })),
  };
}

const MIN_VOLUME_SPREAD = 1.5;
const WEEK_MS = 7 * 86_400_000;

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
  const humanPerSecond =
    humanSeconds(aiSide(s)) > 0 ? Number(cost.humanNano) / 1e9 / humanSeconds(aiSide(s)) : 0;
  const pts = weeks.map((w) => {
    const c = Number(w.spendNano) / 1e9 + fixedPerWeek + w.humanSeconds * humanPerSecond;
    return [Math.log(w.aiCompleted), Math.log(c / w.aiSuccesses)] as [number, number];
  });
  const t = linearTrend(trendStats(pts));
  return t.status === 'ok' ? { slope: t.slope, ci: t.ci } : null;
}
