import { nanoToUsd, usdToNano } from '../money.js';
import { studentQuantile } from '../stats/distributions.js';
import { mean, variance } from '../stats/moments.js';
import type { UseCaseSpec } from '../use-cases/register.js';
import { type AllInCost, aiSide, monthly } from './cost.js';
import type { Evidence } from './evidence.js';
import type { UseCaseStats } from './inputs.js';

const usd = (nano: bigint) => Number(nano) / 1e9;

/** Ledger categories that are an investment made once, not a running cost. */
const ONE_OFF = ['data_engineering', 'change_management_training', 'security_compliance'];

export interface Roi {
  status: 'ok' | 'insufficient_data';
  method: 'holdout_lift' | 'baseline_comparison' | null;
  reason?: string;
  /** Monthly figures, USD. */
  monthlyBenefitUsd: number | null;
  monthlyCostUsd: number;
  /** (benefit − cost) / cost, with the interval that the lift's interval gives. */
  roi: number | null;
  ci: [number, number] | null;
  paybackMonths: number | null;
  /** Monthly tasks at which benefit equals cost. */
  breakEvenVolume: number | null;
  /** Cost per successful outcome at 10× today's volume, USD. */
  costPerOutcomeAt10x: number | null;
  assumptions: string[];
}

/**
 * ROI per month. The benefit is what the AI changed, valued: with a holdout, the measured lift in
 * handling time × the baseline cost per task, plus the lift in success rate × the value of an
 * outcome, over the AI tasks completed; without one, the same against the baseline's handling
 * time (before/after). It carries the interval of the lift it comes from.
 */
export function computeRoi(
  s: UseCaseStats,
  spec: UseCaseSpec,
  cost: AllInCost,
  evidence: Evidence,
  alpha = 0.05,
): Roi {
  const { factor } = monthly(s);
  const ai = aiSide(s);
  const volume = ai.completed * factor;
  const costMonthly = usd(cost.totalNano) * factor;
  const base = spec.baseline;
  const baseCost = base?.cost_per_task_usd ? Number(base.cost_per_task_usd) : null;
  const unitValue = spec.unit_value_usd ? Number(spec.unit_value_usd) : 0;
  const assumptions: string[] = [];
  const none = (reason: string): Roi => ({
    status: 'insufficient_data',
    method: null,
    reason,
    monthlyBenefitUsd: null,
    monthlyCostUsd: costMonthly,
    roi: null,
    ci: null,
    paybackMonths: null,
    breakEvenVolume: null,
    costPerOutcomeAt10x: null,
    assumptions,
  });
  if (baseCost === null) return none('no baseline cost per task to value the change against');
  if (ai.completed === 0) return none('no AI tasks completed in the period');
  if (costMonthly <= 0) return none('no cost recorded for the period');

  // Per-task benefit and its standard error, from the lift or from the baseline.
  let perTask: number;
  let se: number;
  let df: number;
  let method: Roi['method'];
  const lifts = evidence.lifts;
  if (lifts && lifts.handling.status === 'ok') {
    method = 'holdout_lift';
    const h = lifts.handling;
    perTask = -h.estimate * baseCost;
    let v = (h.se * baseCost) ** 2;
    df = h.df;
    if (lifts.successRate.status === 'ok' && unitValue > 0) {
      perTask += lifts.successRate.estimate * unitValue;
      v += (lifts.successRate.se * unitValue) ** 2;
      df = Math.min(df, lifts.successRate.df);
    }
    se = Math.sqrt(v);
    assumptions.push(
      'benefit = −(handling-time lift) × baseline cost per task + (success-rate lift) × unit value, per AI task completed',
    );
  } else if (base?.handling_seconds && ai.handling.n >= 2) {
    method = 'baseline_comparison';
    const m = mean(ai.handling.n, ai.handling.sum);
    const sd = Math.sqrt(variance(ai.handling.n, ai.handling.sum, ai.handling.sumSquares, 'mean'));
    perTask = (1 - m / base.handling_seconds) * baseCost;
    se = (sd / Math.sqrt(ai.handling.n) / base.handling_seconds) * baseCost;
    df = ai.handling.n - 1;
    assumptions.push(
      'no holdout: benefit = (1 − AI handling time / baseline handling time) × baseline cost per task; the baseline is taken as exact',
    );
  } else {
    return none('neither a holdout lift nor handling times to compare with the baseline');
  }
  const t = studentQuantile(1 - alpha / 2, Math.max(1, df));
  const benefit = perTask * volume;
  const roi = (benefit - costMonthly) / costMonthly;
  const ci: [number, number] = [
    ((perTask - t * se) * volume - costMonthly) / costMonthly,
    ((perTask + t * se) * volume - costMonthly) / costMonthly,
  ];

  // Costs split into what grows with volume and what does not.
  const oneOffNano = ONE_OFF.reduce((a, c) => a + (s.ledgerByCategory[c] ?? 0n), 0n);
  const fixedMonthly = usd(s.ledgerNano - oneOffNano) * factor;
  const variablePerTask = (usd(cost.llmNano + cost.humanNano) * factor) / volume;
  const net = benefit - costMonthly;
  const paybackMonths = net > 0 ? usd(oneOffNano) / net : null;
  const margin = perTask - variablePerTask;
  const breakEvenVolume = margin > 0 ? fixedMonthly / margin : null;
  if (oneOffNano > 0n)
    assumptions.push(`one-off costs (${ONE_OFF.join(', ')}) are paid back from the monthly net benefit`);
  // At 10× volume: variable cost per task as today (cache hits at today's rate), fixed costs spread
  // over ten times the outcomes.
  const successRate = ai.completed > 0 ? ai.successes / ai.completed : 0;
  const outcomes10 = volume * 10 * successRate;
  const costPerOutcomeAt10x =
    outcomes10 > 0 ? (variablePerTask * volume * 10 + fixedMonthly) / outcomes10 : null;
  assumptions.push(
    '10× projection: variable cost per task and cache hit rate as today, fixed monthly costs unchanged, no provider rate limit reached',
  );
  return {
    status: 'ok',
    method,
    monthlyBenefitUsd: benefit,
    monthlyCostUsd: costMonthly,
    roi,
    ci,
    paybackMonths,
    breakEvenVolume,
    costPerOutcomeAt10x,
    assumptions,
  };
}

/** Before building: what the task costs today against what AI would cost to run. */
export function opportunity(i: {
  monthlyVolume: number;
  costPerTaskUsd: string;
  aiCostPerTaskUsd: string;
  fixedMonthlyUsd?: string;
}): { monthlyUsd: string; current: string; projectedAi: string } {
  const current = usdToNano(i.costPerTaskUsd) * BigInt(Math.round(i.monthlyVolume));
  const ai =
    usdToNano(i.aiCostPerTaskUsd) * BigInt(Math.round(i.monthlyVolume)) + usdToNano(i.fixedMonthlyUsd ?? '0');
  return { monthlyUsd: nanoToUsd(current - ai), current: nanoToUsd(current), projectedAi: nanoToUsd(ai) };
}
