import { describe, expect, it } from 'vitest';
import type { BudgetWindow, SharedState } from './shared-state.js';

const USD = 1_000_000_000n;
let n = 0;
// The current month's window: Redis keeps a window's keys until a day after it resets, so a fixed
// date would expire them the moment they are written once that date has passed.
const today = new Date();
const MONTH = today.toISOString().slice(0, 7);
const NEXT_MONTH = Date.UTC(today.getUTCFullYear(), today.getUTCMonth() + 1, 1);
const win = (limitUsd: bigint, id = `b${++n}-${Date.now()}`): BudgetWindow => ({
  budgetId: id,
  key: `${id}:${MONTH}`,
  limitNano: limitUsd * USD,
  resetAt: NEXT_MONTH,
});

/** The contract every SharedState passes: in-process and Redis alike. */
export function runSharedStateContract(name: string, make: () => SharedState) {
  describe(`SharedState contract: ${name}`, () => {
    it('reserves within the limit and refuses past it, saying which budget and when it resets', async () => {
      const s = make();
      const w = win(1n);
      expect(await s.reserve([w], USD / 2n)).toEqual({ ok: true });
      expect(await s.reserve([w], USD / 2n)).toEqual({ ok: true });
      expect(await s.reserve([w], 1n)).toEqual({
        ok: false,
        budgetId: w.budgetId,
        spentNano: 0n,
        reservedNano: USD,
        limitNano: USD,
        resetAt: w.resetAt,
      });
      await s.close();
    });

    it('reserves on every window of the hierarchy or on none', async () => {
      const s = make();
      const team = win(10n);
      const key = win(1n);
      expect((await s.reserve([team, key], 2n * USD)).ok).toBe(false);
      expect(await s.usage(team)).toEqual({ spentNano: 0n, reservedNano: 0n });
      expect((await s.reserve([team, key], USD)).ok).toBe(true);
      expect(await s.usage(team)).toEqual({ spentNano: 0n, reservedNano: USD });
      await s.close();
    });

    it('settles: releases the reservation, adds the actual cost, reports before and after', async () => {
      const s = make();
      const w = win(5n);
      await s.reserve([w], 2n * USD);
      const [r] = await s.settle([w], 2n * USD, 1_234_567_891n);
      expect(r).toEqual({
        before: { spentNano: 0n, reservedNano: 2n * USD },
        after: { spentNano: 1_234_567_891n, reservedNano: 0n },
      });
      // A settle with nothing reserved (a call that skipped reservation) only adds spend.
      await s.settle([w], 0n, 1n);
      expect(await s.usage(w)).toEqual({ spentNano: 1_234_567_892n, reservedNano: 0n });
      await s.close();
    });

    it('holds again what a stopped process held, with no limit weighed, and settles it', async () => {
      const s = make();
      const w = win(5n);
      await s.reserve([w], 4n * USD);
      // Taken over from a process that stopped: held whatever the window has left.
      expect(await s.holdAgain([w], 3n * USD, 'kept1:s', 'kept1:h1')).toBe(true);
      expect(await s.usage(w)).toEqual({ spentNano: 0n, reservedNano: 7n * USD });
      await s.settle([w], 3n * USD, 2n * USD, 'kept1:s', 86_400_000);
      expect(await s.usage(w)).toEqual({ spentNano: 2n * USD, reservedNano: 4n * USD });
      // Nothing to hold, nothing held.
      expect(await s.holdAgain([w], 0n, 'kept2:s', 'kept2:h1')).toBe(false);
      expect(await s.usage(w)).toEqual({ spentNano: 2n * USD, reservedNano: 4n * USD });
      await s.close();
    });

    it('raises spend to what the store holds, and never lowers it', async () => {
      const s = make();
      const w = win(10n);
      await s.atLeast(w, 3n * USD + 7n);
      expect(await s.usage(w)).toEqual({ spentNano: 3n * USD + 7n, reservedNano: 0n });
      // Spend this state saw beyond the store's (calls not yet stored) is kept; again is a no-op.
      await s.settle([w], 0n, USD);
      await s.atLeast(w, 3n * USD + 7n);
      expect(await s.usage(w)).toEqual({ spentNano: 4n * USD + 7n, reservedNano: 0n });
      const huge = win(10_000_000n);
      await s.atLeast(huge, 9_000_000n * USD + 1n);
      expect((await s.usage(huge)).spentNano).toBe(9_000_000n * USD + 1n);
      await s.close();
    });

    it('lets exactly as many concurrent reservations through as the limit allows', async () => {
      const s = make();
      const w = win(1n);
      const results = await Promise.all(Array.from({ length: 200 }, () => s.reserve([w], USD / 100n)));
      expect(results.filter((r) => r.ok).length).toBe(100);
      expect(await s.usage(w)).toEqual({ spentNano: 0n, reservedNano: USD });
      await s.close();
    });

    it('keeps amounts exact past $100,000 a window', async () => {
      const s = make();
      const w = win(150_000n);
      const big = 20_000n * USD + 123n;
      for (let i = 0; i < 7; i++) expect(await s.reserve([w], big)).toEqual({ ok: true });
      expect(await s.reserve([w], big)).toMatchObject({ ok: false, spentNano: 0n, reservedNano: 7n * big });
      const [settled] = await s.settle([w], big, big);
      expect(settled!.after).toEqual({ spentNano: big, reservedNano: 6n * big });
      expect(await s.reserve([w], big)).toMatchObject({ ok: false, spentNano: big, reservedNano: 6n * big });
      await s.close();
    });

    it('answers once() true for the first caller of a key only, among concurrent ones', async () => {
      const s = make();
      const key = `once-${++n}-${Date.now()}`;
      const answers = await Promise.all(Array.from({ length: 20 }, () => s.once(key, NEXT_MONTH)));
      expect(answers.filter(Boolean)).toHaveLength(1);
      expect(await s.once(key, NEXT_MONTH)).toBe(false);
      expect(await s.once(`${key}-other`, NEXT_MONTH)).toBe(true);
      await s.close();
    });

    it('remembers a value until its time, answers it to any caller, and forgets it when told', async () => {
      const s = make();
      const key = `kept-${++n}-${Date.now()}`;
      expect(await s.recall(key)).toBeNull();
      await s.remember(key, '{"p":"openai"}', Date.now() + 60_000);
      expect(await s.recall(key)).toBe('{"p":"openai"}');
      await s.remember(key, '{"p":"azure"}', Date.now() + 60_000);
      expect(await s.recall(key)).toBe('{"p":"azure"}');
      await s.forget(key);
      expect(await s.recall(key)).toBeNull();
      await s.forget(key);
      // Past its time, a value is gone.
      await s.remember(`${key}-brief`, 'x', Date.now() + 40);
      expect(await s.recall(`${key}-brief`)).toBe('x');
      await new Promise((r) => setTimeout(r, 80));
      expect(await s.recall(`${key}-brief`)).toBeNull();
      await s.close();
    });

    it('limits requests per minute, with a retry time, and refills over time', async () => {
      const s = make();
      const key = `k${++n}-${Date.now()}`;
      const t0 = 1_000_000;
      for (let i = 0; i < 3; i++) {
        const r = await s.rateLimit({ key, rpm: 3, tpm: null, tokens: 10, now: t0 });
        expect(r.ok).toBe(true);
        expect(r.requests?.remaining).toBe(2 - i);
      }
      const refused = await s.rateLimit({ key, rpm: 3, tpm: null, tokens: 10, now: t0 });
      expect(refused).toMatchObject({ ok: false, limited: 'requests', retryAfterMs: 20_000 });
      expect((await s.rateLimit({ key, rpm: 3, tpm: null, tokens: 10, now: t0 + 20_000 })).ok).toBe(true);
      await s.close();
    });

    it('limits tokens per minute and takes corrections', async () => {
      const s = make();
      const key = `k${++n}-${Date.now()}`;
      const t0 = 5_000_000;
      expect((await s.rateLimit({ key, rpm: null, tpm: 1000, tokens: 600, now: t0 })).ok).toBe(true);
      const refused = await s.rateLimit({ key, rpm: null, tpm: 1000, tokens: 600, now: t0 });
      expect(refused).toMatchObject({ ok: false, limited: 'tokens', retryAfterMs: 12_000 });
      // The call used 200 tokens fewer than it was charged: they come back.
      await s.adjustTokens(key, 1000, -200, t0);
      const ok = await s.rateLimit({ key, rpm: null, tpm: 1000, tokens: 600, now: t0 });
      expect(ok).toMatchObject({ ok: true, tokens: { limit: 1000, remaining: 0 } });
      await s.close();
    });

    it('takes a request from several buckets at once, or from none when one is short', async () => {
      const s = make();
      const own = `k${++n}-${Date.now()}`;
      const other = `k${++n}-${Date.now()}`;
      const team = `team${++n}-${Date.now()}`;
      const t0 = 9_000_000;
      const both = (key: string) => [
        { key, rpm: 10, tpm: null },
        { key: team, rpm: 3, tpm: 1000 },
      ];
      // Two keys share the team's 3 requests a minute.
      expect((await s.rateLimitAll(both(own), 100, t0)).map((r) => r.ok)).toEqual([true, true]);
      expect((await s.rateLimitAll(both(other), 100, t0)).map((r) => r.ok)).toEqual([true, true]);
      const third = await s.rateLimitAll(both(own), 100, t0);
      expect(third[1]).toMatchObject({
        ok: true,
        requests: { limit: 3, remaining: 0 },
        tokens: { limit: 1000, remaining: 700 },
      });
      expect(third[0]).toMatchObject({ ok: true, requests: { limit: 10, remaining: 8 } });
      const refused = await s.rateLimitAll(both(other), 100, t0);
      expect(refused.map((r) => r.ok)).toEqual([true, false]);
      expect(refused[1]).toMatchObject({ limited: 'requests', retryAfterMs: 20_000 });
      // Reading where a limit stands takes nothing from it.
      for (let i = 0; i < 2; i++)
        expect(await s.rateStanding({ key: team, rpm: 3, tpm: 1000 }, t0)).toMatchObject({
          requests: { remaining: 0 },
          tokens: { remaining: 700 },
        });
      expect(await s.rateStanding({ key: `fresh${++n}`, rpm: 3, tpm: 1000 }, t0)).toMatchObject({
        ok: true,
        requests: { limit: 3, remaining: 3 },
        tokens: { limit: 1000, remaining: 1000 },
      });
      // The refusal took nothing from the key's own bucket, nor from the team's tokens.
      expect(refused[0]).toMatchObject({ requests: { remaining: 9 } });
      expect(refused[1]).toMatchObject({ tokens: { remaining: 700 } });
      expect(
        (await s.rateLimit({ key: other, rpm: 10, tpm: null, tokens: 0, now: t0 })).requests?.remaining,
      ).toBe(8);
      // The first bucket that is short refuses, and says which limit: here the key's tokens, though
      // the team's requests are short too.
      const lean = `k${++n}-${Date.now()}`;
      expect((await s.rateLimitAll([{ key: lean, rpm: null, tpm: 50 }], 100, t0))[0]?.ok).toBe(true);
      const first = await s.rateLimitAll(
        [
          { key: lean, rpm: null, tpm: 50 },
          { key: team, rpm: 3, tpm: 1000 },
        ],
        100,
        t0,
      );
      expect(first[0]).toMatchObject({ ok: false, limited: 'tokens', retryAfterMs: 120_000 });
      expect(first[1]?.ok).toBe(true);
      await s.close();
    });

    it('holds calls in flight to each slot, all slots at once or none', async () => {
      const s = make();
      const own = { key: `k${++n}-${Date.now()}`, limit: 5 };
      const team = { key: `team${++n}-${Date.now()}`, limit: 2 };
      expect(await s.acquireSlots([own, team])).toEqual({ ok: true });
      expect(await s.acquireSlots([team])).toEqual({ ok: true });
      // The team is full: the first slot full refuses, and the key's own place is not taken.
      expect(await s.acquireSlots([own, team])).toEqual({ ok: false, at: 1, inFlight: 2 });
      expect(await s.slotsInFlight(own.key)).toBe(1);
      expect(await s.slotsInFlight(team.key)).toBe(2);
      await s.releaseSlots([own.key, team.key]);
      expect(await s.acquireSlots([own, team])).toEqual({ ok: true });
      await s.releaseSlots([own.key, team.key]);
      await s.releaseSlots([team.key]);
      expect(await s.slotsInFlight(team.key)).toBe(0);
      // Given back more often than taken, a slot holds none, not fewer.
      await s.releaseSlots([team.key]);
      expect(await s.slotsInFlight(team.key)).toBe(0);
      expect(await s.slotsInFlight(`never${++n}`)).toBe(0);
      await s.close();
    });

    it('lets no more calls in flight than a slot holds under concurrency', async () => {
      const s = make();
      const slot = { key: `team${++n}-${Date.now()}`, limit: 7 };
      const results = await Promise.all(Array.from({ length: 30 }, () => s.acquireSlots([slot])));
      expect(results.filter((r) => r.ok)).toHaveLength(7);
      expect(await s.slotsInFlight(slot.key)).toBe(7);
      await s.close();
    });

    it('takes from all buckets atomically under concurrency', async () => {
      const s = make();
      const team = `team${++n}-${Date.now()}`;
      const t0 = 11_000_000;
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          s.rateLimitAll(
            [
              { key: `k${n}-${i % 4}-${Date.now()}`, rpm: 5, tpm: null },
              { key: team, rpm: 12, tpm: null },
            ],
            1,
            t0,
          ),
        ),
      );
      // Four keys of 5 a minute each, under a team of 12: 12 go, whichever keys they came from.
      expect(results.filter((r) => r.every((x) => x.ok))).toHaveLength(12);
      await s.close();
    });
  });
}
