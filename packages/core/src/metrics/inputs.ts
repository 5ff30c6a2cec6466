import type { Arm } from '../model.js';
import type { ArmStats, CupedArmStats } from '../stats/moments.js';

/**
 * What the store sums up for one use case and period, in SQL: everything the scorecard needs,
 * and no row-level data. A task belongs to the period in which it became eligible (or, with no
 * task.eligible, its first event); events that arrive late still count for their task. Where a
 * task has several task.completed events, the latest wins; duplicates were dropped at ingest.
 */
export interface ArmOutcomes {
  /** Tasks that became eligible in the period, in this arm. */
  eligible: number;
  /** ...of which AI was used on (task.ai_used, or a call carrying the task id). */
  aiUsed: number;
  completed: number;
  successes: number;
  failures: number;
  abandoned: number;
  /** Completed tasks with no override, edit or escalation. */
  completedWithoutIntervention: number;
  /** Successes with no override, edit or escalation: the stable ones. */
  stableSuccesses: number;
  /** Completed tasks with no human event at all: automated transactions. */
  completedWithoutHuman: number;
  /** handling_seconds of completed tasks. */
  handling: ArmStats;
  /** handling_seconds with the task's covariate (tasks that have both), for CUPED. */
  handlingCuped: CupedArmStats;
  /** success (1) or not (0) over completed tasks. */
  success: ArmStats;
  /** value_usd of completed tasks, in USD (float: a statistic, not money). */
  value: ArmStats;
  /** The exact sum of value, in nano-USD. */
  valueNano: bigint;
  /** QA samples and passes. */
  qaSamples: number;
  qaPasses: number;
  /** Seconds of human work, by kind. */
  humanSeconds: { review: number; edit: number; override: number; escalation: number };
  /** Units that opted out. */
  optOuts: number;
}

export interface WeekRow {
  /** Monday 00:00 UTC of the week, epoch ms. */
  week: number;
  /** AI-arm tasks completed that week. */
  aiCompleted: number;
  aiSuccesses: number;
  stableSuccesses: number;
  /** Human seconds on AI-arm tasks. */
  humanSeconds: number;
  /** LLM spend attributed to the use case that week, nano-USD. */
  spendNano: bigint;
  qaSamples: number;
  qaPasses: number;
  /** Mean call latency that week, ms (null without calls). */
  latencyMs: number | null;
}

export interface CallStats {
  calls: number;
  errors: number;
  spendNano: bigint;
  /** Calls not priced: their cost is not in spendNano. */
  unpriced: number;
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  /** Calls carrying a task id. */
  withTask: number;
  latency: { p50: number | null; p95: number | null; p99: number | null };
  cacheHits: number;
  savedNano: bigint;
}

export interface UseCaseStats {
  from: number;
  to: number;
  arms: Record<Arm, ArmOutcomes>;
  /** Tasks with no task.eligible (no arm), counted as AI tasks for before/after views. */
  unassigned: ArmOutcomes;
  calls: CallStats;
  weeks: WeekRow[];
  optOutReasons: { reason: string; count: number }[];
  /** Users with AI-arm AI use in the last four weeks of the period, and those active in two or more
   * of those weeks. */
  users: { active: number; repeat: number };
  /** The hidden-cost ledger for the months the period covers, prorated by days. */
  ledgerNano: bigint;
  ledgerByCategory: Record<string, bigint>;
  /** Days of the period (for monthly normalisation). */
  days: number;
}

export function emptyArm(): ArmOutcomes {
  const zero = { n: 0, sum: 0, sumSquares: 0 };
  return {
    eligible: 0,
    aiUsed: 0,
    completed: 0,
    successes: 0,
    failures: 0,
    abandoned: 0,
    completedWithoutIntervention: 0,
    stableSuccesses: 0,
    completedWithoutHuman: 0,
    handling: { ...zero },
    handlingCuped: { ...zero, covariateSum: 0, covariateSumSquares: 0, crossProductSum: 0 },
    success: { ...zero },
    value: { ...zero },
    valueNano: 0n,
    qaSamples: 0,
    qaPasses: 0,
    humanSeconds: { review: 0, edit: 0, override: 0, escalation: 0 },
    optOuts: 0,
  };
}

/** What the store computes; the ledger, from its own entries, is added by the caller. */
export type OutcomeSums = Omit<UseCaseStats, 'ledgerNano' | 'ledgerByCategory' | 'days'>;
