import { describe, expect, it } from 'vitest';
import { reserveBudgets, settleBudgets } from './budget-guard.js';
import {
  type BudgetAlert,
  type BudgetRule,
  budgetExceeded,
  hostedToolCallsAllowed,
  searchModelCalls,
  windowsFor,
} from './policy.js';
import { MemoryState } from './state/memory-state.js';
import type { GatewayDeps, VirtualKey } from './types.js';

const USD = 1_000_000_000n;
const rule: BudgetRule = {
  tenant: 't',
  id: 'b1',
  scope: 'project',
  subject: 'support',
  limitNano: 10n * USD,
  period: 'month',
  timeZone: 'UTC',
  thresholds: [0.5, 0.8, 1],
  action: 'block',
  downgradeModel: null,
};
const now = Date.UTC(2026, 11, 4, 12);
const resetAt = Date.UTC(2027, 0, 1);

describe('a budget refusal', () => {
  it('says the budget is spent when nothing is left, and to wait for the reset', () => {
    const e = budgetExceeded(rule, 10n * USD + 5n, 0n, resetAt, now, USD);
    expect(e.message).toBe(
      'Budget b1 (project support, month) is exhausted: $10.000000005 spent of $10. It resets at 2027-01-01T00:00:00.000Z.',
    );
    expect(e.headers?.['retry-after']).toBe(String((resetAt - now) / 1000));
  });

  it('says what would let a call that can never fit what is left', () => {
    const e = budgetExceeded(rule, 9n * USD, 0n, resetAt, now, 2n * USD);
    expect(e.message).toMatch(
      /^This call may cost up to \$2 .* more than the \$1 left of budget b1 .*\(max_tokens/,
    );
    expect(e.headers?.['retry-after']).toBe(String((resetAt - now) / 1000));
  });

  it('asks for a retry in a second when only the calls in flight hold the room', () => {
    const e = budgetExceeded(rule, 5n * USD, 4n * USD, resetAt, now, 2n * USD);
    expect(e.message).toMatch(/is held by the calls in flight: \$5 spent and \$4 in flight of \$10/);
    expect(e.headers?.['retry-after']).toBe('1');
    expect(e.headers?.['x-tally-budget']).toBe('b1');
  });
});

describe("a block budget's exhaustion alerts", () => {
  it('says why, once a period each: a call past what is left, then nothing left; not the calls in flight', async () => {
    const state = new MemoryState();
    const alerts: BudgetAlert[] = [];
    let ids = 0;
    const deps = {
      state,
      newId: () => `op-${ids++}`,
      alerts: (a: BudgetAlert) => alerts.push(a),
      config: { allow_unpriced_under_budget: false },
    } as unknown as GatewayDeps;
    const key = { tenant: 't', id: 'k1', models: [] as string[] } as VirtualKey;
    const [w] = windowsFor([rule], now);
    const reserve = (cost: bigint) => reserveBudgets(deps, [rule], key, 'gpt-4o', () => cost, now);
    const kinds = () => alerts.map((a) => `${a.reason} ${a.remainingUsd} ${a.callUsd}`);

    // $5 spent and $4 in flight of $10: a $2 call waits for the calls in flight, and is no alert.
    await state.settle([w!.window], 0n, 5n * USD);
    const inFlight = await state.reserve([w!.window], 4n * USD);
    expect(inFlight.ok).toBe(true);
    expect((await reserve(2n * USD)).ok).toBe(false);
    // A call larger than the whole budget says nothing of the budget either.
    expect((await reserve(11n * USD)).ok).toBe(false);
    expect(alerts).toEqual([]);

    // The calls in flight settle at $4: $1 is left, and a $2 call can never fit it.
    await state.settle([w!.window], 4n * USD, 4n * USD);
    expect((await reserve(2n * USD)).ok).toBe(false);
    expect((await reserve(3n * USD)).ok).toBe(false);
    expect(kinds()).toEqual(['call_exceeds_remaining 1 2']);
    expect(alerts[0]).toMatchObject({
      kind: 'budget.exhausted',
      threshold: 1,
      spentUsd: '9',
      limitUsd: '10',
    });

    // Calls that fit go on until nothing is left (the last one cost more than it reserved).
    const last = await reserve(USD / 2n);
    expect(last.ok).toBe(true);
    await state.settle([w!.window], USD / 2n, 2n * USD);
    expect((await reserve(USD / 10n)).ok).toBe(false);
    expect((await reserve(USD / 10n)).ok).toBe(false);
    expect(kinds()).toEqual(['call_exceeds_remaining 1 2', 'spent 0 0.1']);
  });
});

describe('an exhausted downgrade budget', () => {
  it('holds the call as a block budget would when its cheaper model has no price or provider now', async () => {
    const state = new MemoryState();
    const alerts: BudgetAlert[] = [];
    const deps = {
      state,
      newId: () => 'op',
      alerts: (a: BudgetAlert) => alerts.push(a),
      config: { allow_unpriced_under_budget: true },
    } as unknown as GatewayDeps;
    const downgrade: BudgetRule = { ...rule, id: 'b2', action: 'downgrade', downgradeModel: 'retired-mini' };
    const [w] = windowsFor([downgrade], now);
    await state.settle([w!.window], 0n, 10n * USD);
    const costs: Record<string, bigint> = { 'gpt-4o': USD, 'gpt-4o-mini': USD / 10n };
    const costOf = (m: string) => costs[m] ?? { unpriced: `model "${m}" is not in the price catalog` };
    const key = { tenant: 't', id: 'k1', models: [] as string[] } as VirtualKey;
    const r = await reserveBudgets(deps, [downgrade], key, 'gpt-4o', costOf, now);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error).toMatchObject({ status: 429, code: 'budget_exceeded' });
    expect(r.error.message).toMatch(
      /^Budget b2 .* is exhausted: .* It would go to retired-mini, which has no provider or no price now\.$/,
    );
    // And it alerts as a block budget would: once a period, however many calls it refuses.
    await reserveBudgets(deps, [downgrade], key, 'gpt-4o', costOf, now);
    expect(alerts).toEqual([
      expect.objectContaining({
        kind: 'budget.exhausted',
        budgetId: 'b2',
        reason: 'spent',
        remainingUsd: '0',
      }),
    ]);
    // With a cheaper model it can reach, the call goes there.
    const priced = { ...downgrade, downgradeModel: 'gpt-4o-mini' };
    const ok = await reserveBudgets(deps, [priced], key, 'gpt-4o', costOf, now);
    expect(ok).toMatchObject({ ok: true, downgradeTo: 'gpt-4o-mini' });
    // Not for a key held to other models: its list is where its calls may go, budget or not.
    const held = { ...key, models: ['gpt-4o'] };
    const kept = await reserveBudgets(deps, [priced], held, 'gpt-4o', costOf, now);
    expect(kept).toMatchObject({ ok: false, error: { status: 429, code: 'budget_exceeded' } });
    if (!kept.ok)
      expect(kept.error.message).toMatch(/It would go to gpt-4o-mini, which this key may not use\.$/);
    const pattern = { ...key, models: ['gpt-4o*'] };
    expect(await reserveBudgets(deps, [priced], pattern, 'gpt-4o', costOf, now)).toMatchObject({ ok: true });
  });
});

describe('settling a call while the shared state is out of reach', () => {
  it('keeps trying in the background until it is settled, once', async () => {
    const state = new MemoryState();
    let down = 1;
    const flaky = Object.create(state) as MemoryState;
    flaky.settle = async (...args: Parameters<MemoryState['settle']>) => {
      if (down-- > 0) throw new Error('Connection is closed.');
      return state.settle(...args);
    };
    const errors: string[] = [];
    const deps = {
      state: flaky,
      newId: () => 'call-1',
      alerts: () => undefined,
      onError: (_err: unknown, what: string) => errors.push(what),
    } as unknown as GatewayDeps;
    const [w] = windowsFor([rule], now);
    await state.reserve([w!.window], 2n * USD);
    await settleBudgets(
      deps,
      { tenant: 't' } as VirtualKey,
      { held: [w!], unheld: [], reserved: 2n * USD, opId: 'call-1' },
      USD,
      now,
    );
    expect(errors).toEqual(['budget settlement']);
    const until = Date.now() + 3000;
    while ((await state.usage(w!.window)).spentNano === 0n && Date.now() < until)
      await new Promise((r) => setTimeout(r, 20));
    expect(await state.usage(w!.window)).toEqual({ spentNano: USD, reservedNano: 0n });
  });
});

describe('the hosted searches a Responses request may make', () => {
  it('are its max_tool_calls, else the default, of the dearer kind it offers', () => {
    const web = { type: 'web_search_2025_08_26' };
    const file = { type: 'file_search', vector_store_ids: ['vs_1'] };
    expect(hostedToolCallsAllowed({ tools: [file, web], max_tool_calls: 4 }, 10)).toEqual({
      web_searches: 4,
    });
    expect(hostedToolCallsAllowed({ tools: [{ type: 'web_search_preview' }] }, 10)).toEqual({
      web_searches: 10,
    });
    expect(hostedToolCallsAllowed({ tools: [file], max_tool_calls: 0 }, 7)).toEqual({ file_searches: 7 });
    expect(hostedToolCallsAllowed({ tools: [{ type: 'function', name: 'f' }, null, 'x'] }, 10)).toBeNull();
    // Images, where it offers image generation, as many again: their fee is another.
    const image = { type: 'image_generation', quality: 'low' };
    expect(hostedToolCallsAllowed({ tools: [image, web], max_tool_calls: 3 }, 10)).toEqual({
      web_searches: 3,
      image_generations: 3,
    });
    expect(hostedToolCallsAllowed({ tools: [image] }, 10)).toEqual({ image_generations: 10 });
    expect(hostedToolCallsAllowed({ tools: 'web_search' }, 10)).toBeNull();
    expect(hostedToolCallsAllowed({}, 10)).toBeNull();
  });
});

describe("OpenAI's search models", () => {
  it('search the web once a chat completion, and no other model or API does', () => {
    for (const m of ['gpt-4o-search-preview', 'gpt-4o-mini-search-preview-2025-03-11', 'gpt-5-search-api'])
      expect(searchModelCalls(true, m), m).toEqual({ web_searches: 1 });
    for (const m of ['gpt-4o', 'o4-mini-deep-research', 'my-search-previewer', 'gpt-4o-search'])
      expect(searchModelCalls(true, m), m).toBeNull();
    expect(searchModelCalls(false, 'gpt-4o-search-preview')).toBeNull();
  });
});
