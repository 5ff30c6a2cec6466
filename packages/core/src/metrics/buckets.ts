import { nanoToUsd } from '../money.js';
import { wilsonInterval } from '../stats/intervals.js';
import { mean } from '../stats/moments.js';
import type { UseCaseSpec } from '../use-cases/register.js';
import { type AllInCost, humanSeconds, per } from './cost.js';
import { detectDrift } from './drift.js';
import type { Lifts } from './evidence.js';
import type { ArmOutcomes, UseCaseStats } from './inputs.js';
import type { Roi } from './roi.js';
import type { MetricValue, Status } from './scorecard.js';
import { band, comparison, liftStatus, ratio, unitEconomics, weeklyTrend } from './trends.js';

/** What every bucket reads: the period's sums (whole weeks only), the AI side, the holdout, the
 * lifts, the costs and the ROI. */
export interface BucketContext {
  spec: UseCaseSpec;
  s: UseCaseStats;
  ai: ArmOutcomes;
  hold: ArmOutcomes;
  hasHoldout: boolean;
  lifts: Lifts | null;
  cost: AllInCost;
  roi: Roi;
  b: UseCaseSpec['baseline'];
}

export function outcomesBucket(c: BucketContext): MetricValue[] {
  const { s, ai, hold, hasHoldout, lifts, roi, b } = c;
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

  return outcomes;
}

export function adoptionBucket(c: BucketContext): MetricValue[] {
  const { s, ai, hasHoldout } = c;
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

  return adoptionMetrics;
}

export function qualityBucket(c: BucketContext): MetricValue[] {
  const { s, ai, hold, hasHoldout, lifts, b } = c;
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

  return quality;
}

export function speedBucket(c: BucketContext): MetricValue[] {
  const { s, ai, hold, hasHoldout, lifts, b } = c;
  const baselineSeconds = b?.handling_seconds ?? null;
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

  return speed;
}

export function costBucket(c: BucketContext): MetricValue[] {
  const { s, ai, cost, b } = c;
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

  return costMetrics;
}
