import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { runSharedStateContract } from './contract.js';
import { MemoryState } from './memory-state.js';
import { RedisState } from './redis-state.js';
import { REMEMBERED_IN_PROCESS } from './shared-state.js';

runSharedStateContract('in-process', () => new MemoryState());
// The machine's real Redis; a fresh prefix keeps runs apart.
runSharedStateContract(
  'redis',
  () => new RedisState('redis://127.0.0.1:6379', `tally-test:${randomUUID()}:`),
);

const USD = 1_000_000_000n;
/** A $10 window of the next hour, of its own. */
const tenDollars = () => ({
  budgetId: 'b',
  key: `b:${randomUUID()}`,
  limitNano: 10n * USD,
  resetAt: Date.now() + 3_600_000,
});

describe('Redis state, an operation sent twice', () => {
  it('applies a reservation and a settlement once each, as ioredis resends what lost its reply', async () => {
    const s = new RedisState('redis://127.0.0.1:6379', `tally-test:${randomUUID()}:`);
    const w = tenDollars();
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

describe('Redis state, a process that dies with calls in flight', () => {
  it('holds its reservations while it lives, and gives them up once its liveness lapses', async () => {
    const prefix = `tally-test:${randomUUID()}:`;
    const a = new RedisState('redis://127.0.0.1:6379', prefix);
    const b = new RedisState('redis://127.0.0.1:6379', prefix);
    const w = tenDollars();
    expect(await a.reserve([w], 3n * USD)).toEqual({ ok: true });
    expect(await b.reserve([w], 2n * USD)).toEqual({ ok: true });
    expect((await b.reserve([w], 6n * USD)).ok).toBe(false);
    // a goes without settling (as after a kill -9, once its liveness key has lapsed).
    await a.close();
    expect(await b.reserve([w], 6n * USD)).toEqual({ ok: true });
    expect(await b.usage(w)).toEqual({ spentNano: 0n, reservedNano: 8n * USD });
    // b's own reservations are untouched, and settle as ever.
    await b.settle([w], 2n * USD, USD);
    await b.settle([w], 6n * USD, USD);
    expect(await b.usage(w)).toEqual({ spentNano: 2n * USD, reservedNano: 0n });
    await b.close();
  });
});

describe('Redis state, what outlives the process that held it', () => {
  it('holds again what a stopped process held for a batch, and never settles it twice', async () => {
    const prefix = `tally-test:${randomUUID()}:`;
    const a = new RedisState('redis://127.0.0.1:6379', prefix);
    const b = new RedisState('redis://127.0.0.1:6379', prefix);
    const w = tenDollars();
    // a holds $3 for a batch, and stops with the batch still running.
    expect(await a.reserve([w], 3n * USD, 'batch1:r0')).toEqual({ ok: true });
    await a.close();
    // b takes the watching over: its hold replaces a's, which lapsed with it.
    expect(await b.holdAgain([w], 3n * USD, 'batch1:s', 'batch1:h1')).toBe(true);
    expect(await b.usage(w)).toEqual({ spentNano: 0n, reservedNano: 3n * USD });
    // The same hold sent again (a resend after a lost reply) holds once.
    expect(await b.holdAgain([w], 3n * USD, 'batch1:s', 'batch1:h1')).toBe(true);
    expect(await b.usage(w)).toEqual({ spentNano: 0n, reservedNano: 3n * USD });
    // The batch ends; b settles it, keeping the settlement's id past the usual ten minutes.
    await b.settle([w], 3n * USD, 2n * USD, 'batch1:s', 30 * 86_400_000);
    expect(await b.usage(w)).toEqual({ spentNano: 2n * USD, reservedNano: 0n });
    const probe = new Redis('redis://127.0.0.1:6379');
    expect(await probe.pttl(`${prefix}op:batch1:s`)).toBeGreaterThan(29 * 86_400_000);
    await probe.quit();
    // b stops before it could say so on disk; c takes the batch over again, and finds it settled:
    // nothing is held, and the settlement sent again changes nothing.
    await b.close();
    const c = new RedisState('redis://127.0.0.1:6379', prefix);
    expect(await c.holdAgain([w], 3n * USD, 'batch1:s', 'batch1:h2')).toBe(false);
    await c.settle([w], 0n, 2n * USD, 'batch1:s', 30 * 86_400_000);
    expect(await c.usage(w)).toEqual({ spentNano: 2n * USD, reservedNano: 0n });
    await c.close();
  });

  it("releases no more than a process's own reservations", async () => {
    const prefix = `tally-test:${randomUUID()}:`;
    const a = new RedisState('redis://127.0.0.1:6379', prefix);
    const b = new RedisState('redis://127.0.0.1:6379', prefix);
    const w = tenDollars();
    await a.reserve([w], 3n * USD);
    await b.reserve([w], 2n * USD);
    // b settles a hold it does not have (one a stopped process made, whose share went with it):
    // a's $3 stay held.
    await b.settle([w], 4n * USD, USD);
    expect(await b.usage(w)).toEqual({ spentNano: USD, reservedNano: 3n * USD });
    await a.settle([w], 3n * USD, USD);
    expect(await a.usage(w)).toEqual({ spentNano: 2n * USD, reservedNano: 0n });
    await a.close();
    await b.close();
  });
});

describe('Redis state, calls in flight of a process that dies', () => {
  it('holds its places while it lives, and gives them up once its liveness lapses', async () => {
    const prefix = `tally-test:${randomUUID()}:`;
    const a = new RedisState('redis://127.0.0.1:6379', prefix);
    const b = new RedisState('redis://127.0.0.1:6379', prefix);
    const slot = { key: `team-${randomUUID()}`, limit: 3 };
    expect(await a.acquireSlots([slot])).toEqual({ ok: true });
    expect(await a.acquireSlots([slot])).toEqual({ ok: true });
    expect(await b.acquireSlots([slot])).toEqual({ ok: true });
    expect(await b.acquireSlots([slot])).toEqual({ ok: false, at: 0, inFlight: 3 });
    // a goes without giving its places back (as after a kill -9, once its liveness key has lapsed).
    await a.close();
    expect(await b.acquireSlots([slot])).toEqual({ ok: true });
    expect(await b.slotsInFlight(slot.key)).toBe(2);
    await b.releaseSlots([slot.key, slot.key]);
    expect(await b.slotsInFlight(slot.key)).toBe(0);
    await b.close();
  });
});

describe('the in-process once() marks', () => {
  it('keeps those in force past 10,000 (a day of code containers), and drops those past their time', async () => {
    const s = new MemoryState();
    const now = Date.now();
    for (let i = 0; i < 5_000; i++) expect(await s.once(`old-${i}`, now - 1)).toBe(true);
    for (let i = 0; i < 20_000; i++) expect(await s.once(`new-${i}`, now + 60_000)).toBe(true);
    // Each in force still answers false; the spent ones were dropped, so they may fire again.
    expect(await s.once('new-0', now + 60_000)).toBe(false);
    expect(await s.once('new-19999', now + 60_000)).toBe(false);
    expect(await s.once('old-0', now + 60_000)).toBe(true);
    expect(await s.once('old-4999', now + 60_000)).toBe(true);
  });
});

describe('in-process state, remembered values', () => {
  it('keeps the latest REMEMBERED_IN_PROCESS, dropping the oldest first', async () => {
    const s = new MemoryState();
    const until = Date.now() + 60_000;
    for (let i = 0; i < REMEMBERED_IN_PROCESS + 5; i++) await s.remember(`r${i}`, String(i), until);
    for (let i = 0; i < 5; i++) expect(await s.recall(`r${i}`)).toBeNull();
    expect(await s.recall('r5')).toBe('5');
    expect(await s.recall(`r${REMEMBERED_IN_PROCESS + 4}`)).toBe(String(REMEMBERED_IN_PROCESS + 4));
    // One kept again is the newest: the next to go is the one after it.
    await s.remember('r5', 'again', until);
    await s.remember('one-more', 'x', until);
    expect(await s.recall('r5')).toBe('again');
    expect(await s.recall('r6')).toBeNull();
  });
});
