import { describe, expect, it } from 'vitest';
import { settleBudgets } from './budget-guard.js';
import { type BudgetRule, budgetExceeded, windowsFor } from './policy.js';
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
