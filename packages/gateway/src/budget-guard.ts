import { nanoToUsd } from '@tally/core';
import { type BudgetRule, budgetExceeded, windowsFor } from './policy.js';
import type { GatewayError } from './replies.js';
import type { BudgetWindow } from './state/shared-state.js';
import type { GatewayDeps, VirtualKey } from './types.js';

/** What a call holds on its budgets while it runs. */
export interface Hold {
  windows: BudgetWindow[];
  rules: BudgetRule[];
  labels: string[];
  reserved: bigint;
}

export type Admission =
  | { ok: true; hold: Hold; downgradeTo: string | null }
  | { ok: false; error: GatewayError };

/**
 * Reserves a call's largest possible cost on every budget that applies. When one is exhausted its
 * action decides: block (a 429), downgrade to its cheaper model, or only alert; the last two go on
 * without a reservation, and their cost still counts when they settle.
 */
export async function reserveBudgets(
  deps: GatewayDeps,
  rules: BudgetRule[],
  key: VirtualKey,
  estimate: { provider: string; model: string; promptTokens: number; maxOut: number },
  time: number,
): Promise<Admission> {
  const ws = windowsFor(rules, time);
  const est = deps.price({
    provider: estimate.provider,
    model: estimate.model,
    tokens: { input: estimate.promptTokens, output: estimate.maxOut },
    time,
    tenant: key.tenant,
  });
  const amount = est.status === 'priced' ? est.effectiveNano : 0n;
  const windows = ws.map((w) => w.window);
  const hold: Hold = { windows, rules, labels: ws.map((w) => w.label), reserved: amount };
  const r = await deps.state.reserve(windows, amount);
  if (r.ok) return { ok: true, hold, downgradeTo: null };
  const rule = rules.find((x) => x.id === r.budgetId)!;
  if (rule.action === 'block' || (rule.action === 'downgrade' && !rule.downgradeModel)) {
    return { ok: false, error: budgetExceeded(rule, r.spentNano, r.reservedNano, r.resetAt, time) };
  }
  hold.reserved = 0n;
  return { ok: true, hold, downgradeTo: rule.action === 'downgrade' ? rule.downgradeModel : null };
}

/** The spend at each of a rule's thresholds, worked out once per rule. */
const marks = new WeakMap<BudgetRule, bigint[]>();
function marksOf(rule: BudgetRule): bigint[] {
  let m = marks.get(rule);
  if (!m) {
    m = rule.thresholds.map((t) => (rule.limitNano * BigInt(Math.round(t * 10_000))) / 10_000n);
    marks.set(rule, m);
  }
  return m;
}

/** Releases the reservation, records the actual cost, and raises an alert for each threshold the
 * spend crossed. */
export async function settleBudgets(
  deps: GatewayDeps,
  key: VirtualKey,
  hold: Hold,
  actual: bigint,
  time: number,
): Promise<void> {
  const results = await deps.state.settle(hold.windows, hold.reserved, actual);
  results.forEach(({ before, after }, i) => {
    const rule = hold.rules[i]!;
    const ms = marksOf(rule);
    for (let k = 0; k < rule.thresholds.length; k++) {
      const t = rule.thresholds[k]!;
      const mark = ms[k]!;
      if (before.spentNano < mark && after.spentNano >= mark) {
        deps.alerts({
          tenant: key.tenant,
          budgetId: rule.id,
          scope: rule.scope,
          subject: rule.subject,
          threshold: t,
          spentUsd: nanoToUsd(after.spentNano),
          limitUsd: nanoToUsd(rule.limitNano),
          period: hold.labels[i]!,
          resetsAt: new Date(hold.windows[i]!.resetAt).toISOString(),
          time: new Date(time).toISOString(),
        });
      }
    }
  });
}
