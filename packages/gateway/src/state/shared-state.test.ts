import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { runSharedStateContract } from './contract.js';
import { MemoryState } from './memory-state.js';
import { RedisState } from './redis-state.js';

runSharedStateContract('in-process', () => new MemoryState());
// The machine's real Redis; a fresh prefix keeps runs apart.
runSharedStateContract(
  'redis',
  () => new RedisState('redis://127.0.0.1:6379', `tally-test:${randomUUID()}:`),
);

describe('Redis state, an operation sent twice', () => {
  it('applies a reservation and a settlement once each, as ioredis resends what lost its reply', async () => {
    const s = new RedisState('redis://127.0.0.1:6379', `tally-test:${randomUUID()}:`);
    const USD = 1_000_000_000n;
    const w = {
      budgetId: 'b',
      key: `b:${randomUUID()}`,
      limitNano: 10n * USD,
      resetAt: Date.now() + 3_600_000,
    };
    expect(await s.reserve([w], 3n * USD, 'op1:r0')).toEqual({ ok: true });
    expect(await s.reserve([w], 3n * USD, 'op1:r0')).toEqual({ ok: true });
    expect(await s.usage(w)).toEqual({ spentNano: 0n, reservedNano: 3n * USD });
    // A refused reservation is not marked: sent again, it is weighed again.
    expect((await s.reserve([w], 8n * USD, 'op2:r0')).ok).toBe(false);
    const [first] = await s.settle([w], 3n * USD, 2n * USD, 'op1:s');
    expect(first!.after).toEqual({ spentNano: 2n * USD, reservedNano: 0n });
    const [again] = await s.settle([w], 3n * USD, 2n * USD, 'op1:s');
    expect(again).toEqual({ before: first!.after, after: first!.after });
    expect(await s.usage(w)).toEqual({ spentNano: 2n * USD, reservedNano: 0n });
    // Without an id, each call applies.
    await s.settle([w], 0n, USD);
    await s.settle([w], 0n, USD);
    expect((await s.usage(w)).spentNano).toBe(4n * USD);
    await s.close();
  });
});
