import type { Stage } from '../model.js';
import { nanoToUsd } from '../money.js';
import {
  type GateCheck,
  type GateEvidence,
  type GateResult,
  nextGate,
  reviewDue,
  smart,
  type UseCaseSpec,
} from '../use-cases/register.js';
import {
  adoptionBucket,
  type BucketContext,
  costBucket,
  outcomesBucket,
  qualityBucket,
  speedBucket,
} from './buckets.js';
import { type AllInCost, aiSide, allInCost, per } from './cost.js';
import { type Evidence, type EvidenceOptions, gradeEvidence } from './evidence.js';
import type { UseCaseStats } from './inputs.js';
import { computeRoi, opportunity, type Roi } from './roi.js';
import { ratio, unitEconomics, WEEK_MS } from './trends.js';

export { unitEconomics } from './trends.js';

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

  const ctx: BucketContext = { spec, s, ai, hold, hasHoldout, lifts, cost, roi, b };
  const outcomes = outcomesBucket(ctx);
  const adoptionMetrics = adoptionBucket(ctx);
  const quality = qualityBucket(ctx);
  const speed = speedBucket(ctx);
  const costMetrics = costBucket(ctx);
  const stability = ratio(ai.stableSuccesses, ai.completed);
  const cpo = per(cost.totalNano, ai.successes);
  const unit = unitEconomics(s, cost);

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
