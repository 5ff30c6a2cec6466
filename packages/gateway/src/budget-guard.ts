import { type HostedToolCalls, nanoToUsd } from '@tally/core';
import { backoffMs } from './backoff.js';
import { modelAllowed } from './model-allow.js';
import {
  type BudgetAlert,
  type BudgetRule,
  budgetExceeded,
  type ExhaustionReason,
  type RuleWindow,
  windowsFor,
} from './policy.js';
import type { GatewayError } from './replies.js';
import type { GatewayDeps, VirtualKey } from './types.js';

/** What a call holds on its budgets while it runs: its reservation on `held`, and nothing on
 * `unheld`, the alert and downgrade budgets already exhausted (their spend still counts). */
export interface Hold {
  held: RuleWindow[];
  unheld: RuleWindow[];
  reserved: bigint;
  /** Names the call's operations on the shared state, so that one sent twice applies once. */
  opId: string;
}

export type Admission =
  | { ok: true; hold: Hold; downgradeTo: string | null }
  | { ok: false; error: GatewayError };

/**
 * Reserves a call's largest possible cost on every budget that applies, all at once or not at all.
 * When one is exhausted its action decides: block (a 429); downgrade to its cheaper model, whose
 * cost is then reserved instead; or only alert. An exhausted alert or downgrade budget is left out
 * and the others are reserved on without it, so that it never lets a call past a block budget.
 *
 * `costOf` prices the call's largest cost on a model, or says why it has no price (the model has
 * none, or none in the mode the request asks for): such a call cannot be held to a block budget,
 * and is refused.
 */
export async function reserveBudgets(
  deps: GatewayDeps,
  rules: BudgetRule[],
  key: VirtualKey,
  model: string,
  costOf: (model: string) => bigint | Unpriceable,
  time: number,
  /** The hosted tool calls that cost holds (toolCallsHeld), named in a refusal. */
  toolCalls: HostedToolCalls | null = null,
): Promise<Admission> {
  const held = windowsFor(rules, time).slice();
  const unheld: RuleWindow[] = [];
  let downgradeTo: string | null = null;
  // Priced once for the model, and again only if a downgrade changes it.
  let cost = costOf(model);
  const opId = deps.newId();
  for (let attempt = 0; ; attempt++) {
    // An unpriced call (let under alert budgets, or by allow_unpriced_under_budget) reserves nothing.
    const amount = typeof cost === 'bigint' ? cost : 0n;
    if (typeof cost !== 'bigint' && !deps.config.allow_unpriced_under_budget) {
      const block = held.find((w) => w.rule.action === 'block');
      if (block)
        return { ok: false, error: unpricedUnderBudget(block.rule, downgradeTo ?? model, cost.unpriced) };
    }
    const r = await deps.state.reserve(
      held.map((w) => w.window),
      amount,
      `${opId}:r${attempt}`,
    );
    if (r.ok) return { ok: true, hold: { held, unheld, reserved: amount, opId }, downgradeTo };
    const i = held.findIndex((w) => w.rule.id === r.budgetId);
    const w = held[i]!;
    const rule = w.rule;
    if (rule.action === 'block' || (rule.action === 'downgrade' && !rule.downgradeModel)) {
      await alertExhausted(deps, key, w, r.spentNano, amount, time);
      return {
        ok: false,
        error: budgetExceeded(rule, r.spentNano, r.reservedNano, r.resetAt, time, amount, toolCalls),
      };
    }
    if (rule.action === 'downgrade' && downgradeTo === null) {
      // A key held to some models is never sent to another by a budget: its list may be where its
      // data may go.
      const allowed = modelAllowed(key.models, rule.downgradeModel!);
      const cheaper = allowed ? costOf(rule.downgradeModel!) : null;
      if (typeof cheaper !== 'bigint') {
        // Its cheaper model has no provider or no price now (checked when the budget was made;
        // the providers or prices changed since), or this key may not use it: the call is held as
        // a block budget would hold it, rather than sent on the dear model, or to one no budget
        // could hold it to; and it alerts as a block budget would.
        await alertExhausted(deps, key, w, r.spentNano, amount, time);
        const e = budgetExceeded(rule, r.spentNano, r.reservedNano, r.resetAt, time, amount, toolCalls);
        e.message += allowed
          ? ` It would go to ${rule.downgradeModel}, which has no provider or no price now.`
          : ` It would go to ${rule.downgradeModel}, which this key may not use.`;
        return { ok: false, error: e };
      }
      downgradeTo = rule.downgradeModel!;
      cost = cheaper;
    }
    unheld.push(...held.splice(i, 1));
  }
}

/**
 * A budget that refuses calls (a block budget, or a downgrade budget that cannot downgrade) stops
 * spend short of its limit, so the 100 % mark is never crossed by a settled call: its refusals for
 * spend are its exhaustion alerts, each kind once a period.
 */
async function alertExhausted(
  deps: GatewayDeps,
  key: VirtualKey,
  w: RuleWindow,
  spentNano: bigint,
  callNano: bigint,
  time: number,
): Promise<void> {
  const rule = w.rule;
  const reason = exhaustionOf(rule, spentNano, callNano);
  if (reason === null || !(await deps.state.once(exhaustedOnce(w, reason), w.window.resetAt))) return;
  deps.alerts({
    ...alertOf(key, w, 1, spentNano, time, 'budget.exhausted'),
    reason,
    remainingUsd: nanoToUsd(rule.limitNano > spentNano ? rule.limitNano - spentNano : 0n),
    callUsd: nanoToUsd(callNano),
  });
}

/** How long a failed settlement is tried again: no longer than the shared state keeps its id. */
const OP_RETRY_MS = 10 * 60_000;

/**
 * Settles a call, and if the shared state cannot be reached (Redis down past its client's
 * retries), keeps trying in the background, 1 s doubling to a minute, for up to ten minutes (as
 * long as Redis keeps the id): the settlement's id makes a repeat harmless, and a settlement given
 * up would leave the call's spend uncounted and its reservation held until the period ends.
 * Answers at once either way.
 */
async function settleSurely(
  deps: GatewayDeps,
  windows: RuleWindow[],
  reserved: bigint,
  actual: bigint,
  opId: string,
  keepIdMs: number | undefined,
): Promise<{ before: { spentNano: bigint }; after: { spentNano: bigint } }[]> {
  const run = () =>
    deps.state.settle(
      windows.map((w) => w.window),
      reserved,
      actual,
      opId,
      keepIdMs,
    );
  try {
    return await run();
  } catch (err) {
    deps.onError?.(err, 'budget settlement');
    void (async () => {
      const until = Date.now() + OP_RETRY_MS;
      for (let tries = 1; Date.now() < until; tries++) {
        await new Promise((r) => setTimeout(r, backoffMs(tries)).unref());
        try {
          await run();
          return;
        } catch (e) {
          deps.onError?.(e, 'budget settlement');
        }
      }
    })();
    return [];
  }
}

/**
 * Why a block budget's refusal says it is exhausted, or null when it does not:
 * - `spent`: nothing is left;
 * - `call_exceeds_remaining`: what is left cannot take the call's largest cost, which the whole
 *   budget could (a client without an output limit reserves the model's largest output, so from
 *   here on its calls are refused).
 * A call larger than the whole budget says nothing of the budget; nor does a refusal because the
 * calls in flight hold the room, which they give back within seconds.
 */
export function exhaustionOf(rule: BudgetRule, spentNano: bigint, callNano: bigint): ExhaustionReason | null {
  const left = rule.limitNano - spentNano;
  if (left <= 0n) return 'spent';
  if (callNano > rule.limitNano || callNano <= left) return null;
  return 'call_exceeds_remaining';
}

/** The SharedState.once() key of a budget's exhaustion alert of one kind in a period. The first
 * refusal's keeps the key all refusals shared before the two were told apart. */
export function exhaustedOnce(w: RuleWindow, reason: ExhaustionReason): string {
  return reason === 'spent' ? `${w.window.key}:exhausted:spent` : `${w.window.key}:exhausted`;
}

/** Why a call has no price: the pricer's reason (the model is not in the tables, or a mode the
 * request asks for has no price there). */
export interface Unpriceable {
  unpriced: string;
}

function unpricedUnderBudget(rule: BudgetRule, model: string, why: string): GatewayError {
  return {
    status: 400,
    type: 'invalid_request_error',
    code: 'unpriced_model',
    message:
      `A call to model ${model} has no price (${why}), so it cannot be held to budget ${rule.id} ` +
      `(${rule.scope} ${rule.subject}). Give it a price (pricing.overrides), or set ` +
      'gateway.allow_unpriced_under_budget, to use it under this budget.',
  };
}

function alertOf(
  key: VirtualKey,
  w: RuleWindow,
  threshold: number,
  spentNano: bigint,
  time: number,
  kind: BudgetAlert['kind'],
): BudgetAlert {
  return {
    kind,
    tenant: key.tenant,
    budgetId: w.rule.id,
    scope: w.rule.scope,
    subject: w.rule.subject,
    threshold,
    spentUsd: nanoToUsd(spentNano),
    limitUsd: nanoToUsd(w.rule.limitNano),
    period: w.label,
    resetsAt: new Date(w.window.resetAt).toISOString(),
    time: new Date(time).toISOString(),
  };
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

/** How long the settlement of what outlives its process (a batch, a background call) is known as
 * applied: longer than the longest such thing is watched, so that a process that takes over its
 * watching after the one that settled it stopped does not count its spend twice. */
export const KEPT_SETTLEMENT_MS = 30 * 24 * 3_600_000;

/** Releases the reservation, records the actual cost, and raises an alert for each threshold the
 * spend crossed. With `keepIdMs`, the settlement is known as applied that long (see
 * KEPT_SETTLEMENT_MS). */
export async function settleBudgets(
  deps: GatewayDeps,
  key: VirtualKey,
  hold: Hold,
  actual: bigint,
  time: number,
  keepIdMs?: number,
): Promise<void> {
  // Most calls hold every budget they count against: one settlement, no list of two.
  if (hold.unheld.length === 0) {
    tellCrossings(
      deps,
      key,
      hold.held,
      await settleSurely(deps, hold.held, hold.reserved, actual, `${hold.opId}:s`, keepIdMs),
      time,
    );
    return;
  }
  const [held, unheld] = await Promise.all([
    settleSurely(deps, hold.held, hold.reserved, actual, `${hold.opId}:s`, keepIdMs),
    settleSurely(deps, hold.unheld, 0n, actual, `${hold.opId}:u`, keepIdMs),
  ]);
  tellCrossings(deps, key, hold.held, held, time);
  tellCrossings(deps, key, hold.unheld, unheld, time);
}

/**
 * A hold that a stopped process kept on disk (for a batch, a background call), held again here:
 * the stopped process's reservation lapses with it, and the thing it was made for may run for
 * hours yet. The hold answered reserves what this process now holds: all of it, or nothing when
 * the stopped process had already settled it (or the state cannot be reached: then the budgets
 * go unheld for it meanwhile, and are still settled at its end).
 */
export async function holdAgain(deps: GatewayDeps, hold: Hold): Promise<Hold> {
  try {
    const held = await deps.state.holdAgain(
      hold.held.map((w) => w.window),
      hold.reserved,
      `${hold.opId}:s`,
      `${hold.opId}:h${deps.newId()}`,
    );
    return { ...hold, reserved: held ? hold.reserved : 0n };
  } catch (err) {
    deps.onError?.(err, 'holding a reservation again');
    return { ...hold, reserved: 0n };
  }
}

/** Raises an alert for each threshold a settlement took a window's spend across. A settlement that
 * failed answers nothing: its crossings are not told. */
function tellCrossings(
  deps: GatewayDeps,
  key: VirtualKey,
  windows: RuleWindow[],
  settled: { before: { spentNano: bigint }; after: { spentNano: bigint } }[],
  time: number,
): void {
  for (let i = 0; i < settled.length; i++) {
    const { before, after } = settled[i]!;
    const w = windows[i]!;
    const ms = marksOf(w.rule);
    for (let k = 0; k < w.rule.thresholds.length; k++) {
      const mark = ms[k]!;
      if (before.spentNano < mark && after.spentNano >= mark) {
        deps.alerts(alertOf(key, w, w.rule.thresholds[k]!, after.spentNano, time, 'budget.threshold'));
      }
    }
  }
}
