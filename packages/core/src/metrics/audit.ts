import type { Stage } from '../model.js';
import { nanoToUsd } from '../money.js';
import type { UseCaseSpec } from '../use-cases/register.js';
import type { Scorecard } from './scorecard.js';

/** What the store sums up across use cases for the audit. */
export interface AuditSums {
  from: number;
  to: number;
  calls: {
    useCase: string;
    calls: number;
    spendNano: bigint;
    tinyOutputs: number;
    distinctInputSizes: number;
    inputTokens: number;
    outputTokens: number;
  }[];
  outcomes: { useCase: string; completed: number; recentQuality: number }[];
  /** Tasks claimed by more than one use case, by the set of use cases. */
  sharedTasks: { useCases: string[]; tasks: number; valueNano: bigint }[];
  projects: { project: string; calls: number; spendNano: bigint }[];
  /** The SQL behind each of the above. */
  queries: Record<string, string>;
}

export type Severity = 'high' | 'medium' | 'low';

export interface Finding {
  flag: string;
  severity: Severity;
  subject: { use_case?: string; project?: string };
  message: string;
  evidence: { numbers: Record<string, number | string | null>; query: string };
  fix: string;
}

export interface AuditInput {
  sums: AuditSums;
  useCases: { id: string; stage: Stage; spec: UseCaseSpec; scorecard: Scorecard; ledgerEntries: number }[];
  /** Budgets by scope and subject. */
  budgets: { scope: string; subject: string }[];
}

const STAGE_ORDER: Stage[] = ['idea', 'readiness', 'pilot', 'production', 'scale'];
const metric = (s: Scorecard, key: string) =>
  Object.values(s.buckets)
    .flat()
    .find((m) => m.key === key);

/** Every red flag of DESIGN.md, each with its evidence and a fix. */
export function auditFindings(input: AuditInput): Finding[] {
  const out: Finding[] = [];
  const q = input.sums.queries;
  const SCORECARD =
    'the scorecard of the period (GET /v1/use-cases/:id/scorecard), from the sums of outcomeSums';
  const callsOf = new Map(input.sums.calls.map((c) => [c.useCase, c]));
  const outcomesOf = new Map(input.sums.outcomes.map((o) => [o.useCase, o]));

  for (const uc of input.useCases) {
    const { id, spec, scorecard: s } = uc;
    const sub = { use_case: id };
    const calls = callsOf.get(id);
    const outcomes = outcomesOf.get(id);
    const past = (stage: Stage) => STAGE_ORDER.indexOf(uc.stage) >= STAGE_ORDER.indexOf(stage);

    const b = spec.baseline;
    if (!b || b.cost_per_task_usd === null || b.handling_seconds === null) {
      out.push({
        flag: 'no_baseline',
        severity: 'high',
        subject: sub,
        message: `${id} has no baseline: there is nothing to measure the AI against.`,
        evidence: {
          numbers: {
            cost_per_task_usd: b?.cost_per_task_usd ?? null,
            handling_seconds: b?.handling_seconds ?? null,
          },
          query: 'the use-case register (GET /v1/use-cases/:id)',
        },
        fix: 'Measure today’s monthly volume, cost per task and handling time, and set baseline with its date.',
      });
    }
    const open = spec.data_readiness.filter((i) => !i.done).map((i) => i.item);
    if ((open.length > 0 || spec.data_readiness.length === 0) && (past('pilot') || s.roi.status === 'ok')) {
      out.push({
        flag: 'roi_before_data_readiness',
        severity: 'high',
        subject: sub,
        message: `${id} reports ROI at stage ${uc.stage} while its data-readiness checklist is ${open.length ? `open (${open.join(', ')})` : 'empty'}.`,
        evidence: {
          numbers: { open_items: open.length, roi: s.roi.roi, stage: uc.stage },
          query: 'the use-case register (data_readiness) and the scorecard ROI',
        },
        fix: 'Finish the data-readiness checklist before quoting ROI, or move the use case back to readiness.',
      });
    }
    if (calls && calls.calls >= 50) {
      const tiny = calls.tinyOutputs / calls.calls;
      const repeats = calls.distinctInputSizes / calls.calls;
      if (tiny > 0.5 || repeats < 0.02) {
        out.push({
          flag: 'rule_would_do',
          severity: 'medium',
          subject: sub,
          message:
            tiny > 0.5
              ? `${(tiny * 100).toFixed(0)}% of ${id}'s calls answer in 3 tokens or fewer: a rule or a classifier may do.`
              : `${id}'s ${calls.calls} calls have only ${calls.distinctInputSizes} distinct prompt sizes: near-identical inputs, which a rule or a cache may answer.`,
          evidence: {
            numbers: {
              calls: calls.calls,
              tiny_outputs: calls.tinyOutputs,
              distinct_input_sizes: calls.distinctInputSizes,
            },
            query: q['calls_by_use_case'] ?? '',
          },
          fix: 'Replace the call with a rule, a lookup or a small classifier, or cache the answers.',
        });
      }
      const ratio =
        calls.outputTokens > 0 ? calls.inputTokens / calls.outputTokens : Number.POSITIVE_INFINITY;
      if (ratio > 40) {
        out.push({
          flag: 'bloated_context',
          severity: 'medium',
          subject: sub,
          message: `${id} sends ${Math.round(ratio)} input tokens for each output token: the context is far larger than the answer needs.`,
          evidence: {
            numbers: {
              input_tokens: calls.inputTokens,
              output_tokens: calls.outputTokens,
              ratio: Math.round(ratio),
            },
            query: q['calls_by_use_case'] ?? '',
          },
          fix: 'Trim the prompt: retrieve only the passages the task needs, drop repeated instructions, or cache the fixed prefix.',
        });
      }
      if (!outcomes || outcomes.completed === 0) {
        out.push({
          flag: 'success_counted_as_shipping',
          severity: 'high',
          subject: sub,
          message: `${id} made ${calls.calls} model calls ($${nanoToUsd(calls.spendNano)}) but reported no task.completed: success is being counted as shipping.`,
          evidence: {
            numbers: { calls: calls.calls, completed: outcomes?.completed ?? 0 },
            query: `${q['calls_by_use_case']}\n\n${q['outcomes_by_use_case']}`,
          },
          fix: 'Send task.completed events with the outcome from the application (the SDK’s track()).',
        });
      }
      if (uc.ledgerEntries === 0) {
        out.push({
          flag: 'hidden_costs_missing',
          severity: 'medium',
          subject: sub,
          message: `${id} spends on model calls but has no hidden-cost ledger entries: infrastructure, review and upkeep are left out of its cost.`,
          evidence: {
            numbers: { calls: calls.calls, ledger_entries: 0 },
            query: 'GET /v1/ledger?use_case=' + id,
          },
          fix: 'Add monthly ledger entries (tally ledger add) for infrastructure, data work, monitoring, review, security, training and licences.',
        });
      }
    }
    if (!spec.owners.product) {
      out.push({
        flag: 'no_adoption_owner',
        severity: 'medium',
        subject: sub,
        message: `${id} has no product owner to drive adoption.`,
        evidence: { numbers: { product_owner: null }, query: 'the use-case register (owners.product)' },
        fix: 'Name a product owner who answers for adoption (owners.product).',
      });
    }
    if (past('pilot') && (outcomes?.recentQuality ?? 0) === 0) {
      out.push({
        flag: 'no_drift_monitoring',
        severity: 'medium',
        subject: sub,
        message: `${id} is at ${uc.stage} with no quality samples in the last 28 days: drift would go unseen.`,
        evidence: {
          numbers: { quality_samples_28d: outcomes?.recentQuality ?? 0 },
          query: q['outcomes_by_use_case'] ?? '',
        },
        fix: 'Sample AI outputs for QA every week and send task.quality events.',
      });
    }
    const unit = metric(s, 'unit_economics');
    if (unit?.ci && unit.ci[0] > 0) {
      out.push({
        flag: 'cost_per_outcome_rising',
        severity: 'high',
        subject: sub,
        message: `${id}'s cost per outcome rises with volume (log-log slope ${Number(unit.value).toFixed(2)}, 95% CI ${unit.ci[0].toFixed(2)} to ${unit.ci[1].toFixed(2)}).`,
        evidence: {
          numbers: { slope: unit.value as number, ci_low: unit.ci[0], ci_high: unit.ci[1] },
          query: SCORECARD,
        },
        fix: 'Do not scale yet: find what grows per task with volume (context size, retries, human review) and cap it.',
      });
    }
    const stab = metric(s, 'stability_rate');
    const over = metric(s, 'oversight_ratio');
    if (stab?.trend?.direction === 'down' || over?.trend?.direction === 'up') {
      const which = stab?.trend?.direction === 'down' ? 'stability' : 'oversight ratio';
      const tr = which === 'stability' ? stab!.trend! : over!.trend!;
      out.push({
        flag: 'wrong_direction',
        severity: 'medium',
        subject: sub,
        message: `${id}'s ${which} is going the wrong way: ${tr.slope.toFixed(4)} a week (95% CI ${tr.ci[0].toFixed(4)} to ${tr.ci[1].toFixed(4)}).`,
        evidence: {
          numbers: { slope_per_week: tr.slope, ci_low: tr.ci[0], ci_high: tr.ci[1] },
          query: SCORECARD,
        },
        fix: 'Look at the overrides, edits and escalations of recent weeks and fix the cause before widening use.',
      });
    }
  }

  for (const c of input.sums.sharedTasks) {
    out.push({
      flag: 'benefits_counted_twice',
      severity: 'high',
      subject: { use_case: c.useCases.join(', ') },
      message: `${c.tasks} tasks (worth $${nanoToUsd(c.valueNano)}) are claimed by ${c.useCases.join(' and ')}: their benefit is counted twice.`,
      evidence: {
        numbers: { tasks: c.tasks, value_usd: nanoToUsd(c.valueNano) },
        query: q['shared_tasks'] ?? '',
      },
      fix: 'Give each task to one use case, or split its value between them explicitly.',
    });
  }
  const budgeted = new Set(input.budgets.filter((b) => b.scope === 'project').map((b) => b.subject));
  const tenantBudget = input.budgets.some((b) => b.scope === 'tenant');
  for (const p of input.sums.projects) {
    if (p.spendNano > 0n && !budgeted.has(p.project) && !tenantBudget) {
      out.push({
        flag: 'no_budget',
        severity: 'medium',
        subject: { project: p.project },
        message: `Project ${p.project} spent $${nanoToUsd(p.spendNano)} on ${p.calls} calls with no budget.`,
        evidence: {
          numbers: { calls: p.calls, spend_usd: nanoToUsd(p.spendNano) },
          query: q['spend_by_project'] ?? '',
        },
        fix: `Set one: POST /v1/budgets {"scope": "project", "subject": "${p.project}", "limit_usd": "...", "action": "alert"}.`,
      });
    }
  }
  const rank: Record<Severity, number> = { high: 0, medium: 1, low: 2 };
  return out.sort((a, b) => rank[a.severity] - rank[b.severity] || a.flag.localeCompare(b.flag));
}
