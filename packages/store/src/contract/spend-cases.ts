import { type CallRecord, ZERO_TOKENS } from '@tally/core';
import { expect, it } from 'vitest';
import type { ContractContext } from '../contract.js';
import { SPEND_GROUPS, type SpendGroup, type SpendInterval, type SpendRow } from '../store.js';
import { makeCall, newTenant, T0 } from './fixtures.js';

const GROUP_OF: Record<SpendGroup, (c: CallRecord) => string | null> = {
  project: (c) => c.project,
  team: (c) => c.team,
  user: (c) => c.user,
  key: (c) => c.key_id,
  model: (c) => c.model_requested,
  provider: (c) => c.provider,
  use_case: (c) => c.use_case,
};

/** What spend() should return, computed the slow and obvious way. */
function expectedSpend(calls: CallRecord[], group?: SpendGroup): SpendRow[] {
  const rows = new Map<string | null, SpendRow>();
  for (const c of calls) {
    const key = group ? GROUP_OF[group](c) : null;
    let r = rows.get(key);
    if (!r) {
      r = {
        calls: 0,
        cost_list_nano: 0n,
        cost_effective_nano: 0n,
        unpriced_calls: 0,
        refused_calls: 0,
        estimated_calls: 0,
        input_tokens: 0,
        output_tokens: 0,
        cache_read_tokens: 0,
        saved_nano: 0n,
      };
      if (group) r.group = key;
      rows.set(key, r);
    }
    if (c.status === 'refused') r.refused_calls++;
    else r.calls++;
    r.cost_list_nano += c.cost_list_nano ?? 0n;
    r.cost_effective_nano += c.cost_effective_nano ?? 0n;
    if (c.pricing_status === 'unpriced') r.unpriced_calls++;
    if (c.pricing_status === 'estimated') r.estimated_calls++;
    r.input_tokens += c.tokens.input;
    r.output_tokens += c.tokens.output;
    r.cache_read_tokens += c.tokens.cache_read;
    r.saved_nano += c.saved_nano;
  }
  return [...rows.values()].sort((a, b) => {
    if (a.cost_effective_nano !== b.cost_effective_nano)
      return a.cost_effective_nano > b.cost_effective_nano ? -1 : 1;
    const ga = a.group ?? null;
    const gb = b.group ?? null;
    if (ga === gb) return 0;
    if (ga === null) return 1;
    if (gb === null) return -1;
    return ga < gb ? -1 : 1;
  });
}

/** Calls that vary in every group, with distinct costs, and some estimated, unpriced or refused (a
 * refused call, as the gateway writes it: no tokens, $0). */
function sampleCalls(tenant: string): CallRecord[] {
  return Array.from({ length: 30 }, (_, i) =>
    makeCall(tenant, `c-${i}`, {
      time: T0 + i * 1000,
      project: i % 4 === 0 ? null : `p${i % 4}`,
      team: `team-${i % 3}`,
      user: i % 5 === 0 ? null : `u-${i % 5}`,
      model_requested: ['gpt-4o', 'gpt-4o-mini', 'claude-sonnet-4'][i % 3]!,
      provider: i % 3 === 2 ? 'anthropic' : 'openai',
      use_case: i % 2 === 0 ? 'triage' : null,
      tokens: { ...ZERO_TOKENS, input: 100 * i, output: 10 * i, cache_read: i },
      cost_list_nano: i % 6 === 5 ? null : BigInt(1_000_003 * (i + 1) * (i + 1)),
      cost_effective_nano: i % 6 === 5 ? null : BigInt(1_000_000 * (i + 1) * (i + 1)),
      pricing_status: i % 6 === 5 ? 'unpriced' : i % 7 === 3 ? 'estimated' : 'priced',
      saved_nano: BigInt(i * 17),
      ...(i % 10 === 8
        ? {
            status: 'refused' as const,
            error_type: 'gateway_429:budget_exceeded',
            tokens: { ...ZERO_TOKENS },
            cost_list_nano: 0n,
            cost_effective_nano: 0n,
            pricing_status: 'priced' as const,
            saved_nano: 0n,
            latency_ms: null,
          }
        : {}),
    }),
  );
}

const buckets = (rows: SpendRow[]) =>
  rows.map((r) => [new Date(r.bucket ?? Number.NaN).toISOString(), r.calls]);

export function spendCases(ctx: ContractContext): void {
  it('sums a tenant’s spend, counting unpriced and estimated calls', async () => {
    const tenant = newTenant();
    const calls = sampleCalls(tenant);
    await ctx.store.ingest({ calls, tasks: [] });
    const rows = await ctx.store.spend({ tenant });
    expect(rows).toEqual(expectedSpend(calls));
    expect(rows[0]?.unpriced_calls).toBe(5);
    expect(rows[0]).toMatchObject({ calls: 27, refused_calls: 3 });
    expect(rows[0]?.estimated_calls).toBeGreaterThan(0);
  });

  it('groups by a tag, calls without it in a null group, and filters calls and spend by a tag', async () => {
    const tenant = newTenant();
    const calls = [
      makeCall(tenant, 't-1', { tags: { env: 'prod', 'cost/center~x': 'ads' }, cost_effective_nano: 1_000n }),
      makeCall(tenant, 't-2', { tags: { env: 'prod' }, cost_effective_nano: 2_000n }),
      makeCall(tenant, 't-3', {
        tags: { env: 'dev', 'cost/center~x': 'search' },
        cost_effective_nano: 4_000n,
      }),
      makeCall(tenant, 't-4', { tags: {}, cost_effective_nano: 8_000n }),
    ];
    await ctx.store.ingest({ calls, tasks: [] });
    const by = async (key: string) =>
      (await ctx.store.spend({ tenant, groupByTag: key })).map((r) => [
        r.group,
        r.calls,
        r.cost_effective_nano,
      ]);
    expect(await by('env')).toEqual([
      [null, 1, 8_000n],
      ['dev', 1, 4_000n],
      ['prod', 2, 3_000n],
    ]);
    // A key with the characters a JSON pointer escapes reads as itself.
    expect(await by('cost/center~x')).toEqual([
      [null, 2, 10_000n],
      ['search', 1, 4_000n],
      ['ads', 1, 1_000n],
    ]);
    expect(await by('absent')).toEqual([[null, 4, 15_000n]]);
    const prod = await ctx.store.spend({ tenant, tag: { key: 'env', value: 'prod' }, groupBy: 'project' });
    expect(prod.map((r) => [r.group, r.calls])).toEqual([['support', 2]]);
    const listed = await ctx.store.listCalls({
      tenant,
      tag: { key: 'cost/center~x', value: 'ads' },
      limit: 10,
    });
    expect(listed.rows.map((c) => c.id)).toEqual(['t-1']);
  });

  it("sums only the calls to the models a list names, patterns included, as a model budget's spend", async () => {
    const tenant = newTenant();
    const calls = ['claude-opus-4-6', 'claude-opus-4-8', 'claude-sonnet-4-6', 'gpt-4o', 'gpt_4o%x'].map(
      (m, i) => makeCall(tenant, `m-${i}`, { model_requested: m, cost_effective_nano: BigInt(10 ** i) }),
    );
    await ctx.store.ingest({ calls, tasks: [] });
    const total = async (models: string[]) =>
      (await ctx.store.spend({ tenant, models }))[0]?.cost_effective_nano;
    expect(await total(['claude-opus-*'])).toBe(11n);
    expect(await total(['claude-opus-*', 'gpt-4o'])).toBe(1011n);
    // % and _ stand for themselves: only * is a pattern.
    expect(await total(['gpt_4o%x'])).toBe(10000n);
    expect(await total(['gpt%'])).toBeUndefined();
    expect(await total([])).toBe(11111n);
  });

  it('returns no rows for a tenant without calls', async () => {
    const tenant = newTenant();
    expect(await ctx.store.spend({ tenant })).toEqual([]);
    expect(await ctx.store.spend({ tenant, groupBy: 'project', interval: 'day' })).toEqual([]);
  });

  it.each(SPEND_GROUPS)('groups by %s, null included, most expensive first', async (group) => {
    const tenant = newTenant();
    const calls = sampleCalls(tenant);
    await ctx.store.ingest({ calls, tasks: [] });
    expect(await ctx.store.spend({ tenant, groupBy: group })).toEqual(expectedSpend(calls, group));
  });

  it('keeps sums exact beyond 2^53 and beyond the BIGINT range', async () => {
    const tenant = newTenant();
    const big = 6_000_000_000_000_000_001n; // two of them overflow a signed 64-bit sum
    const calls = [
      makeCall(tenant, 'a', { cost_list_nano: big, cost_effective_nano: big, saved_nano: big }),
      makeCall(tenant, 'b', { cost_list_nano: big, cost_effective_nano: big, saved_nano: big }),
      makeCall(tenant, 'c', { cost_list_nano: 2n ** 53n + 1n, cost_effective_nano: 2n ** 53n + 1n }),
    ];
    await ctx.store.ingest({ calls, tasks: [] });
    const [row] = await ctx.store.spend({ tenant });
    expect(row?.cost_effective_nano).toBe(2n * big + 2n ** 53n + 1n);
    expect(row?.cost_list_nano).toBe(2n * big + 2n ** 53n + 1n);
    expect(row?.saved_nano).toBe(2n * big);
    expect(typeof row?.cost_effective_nano).toBe('bigint');
  });

  it('buckets by hour, day, week (from Monday) and month in UTC', async () => {
    const tenant = newTenant();
    const at = [
      Date.UTC(2026, 10, 4, 15, 30),
      Date.UTC(2026, 10, 4, 15, 59, 59, 999),
      Date.UTC(2026, 10, 4, 16, 0),
      Date.UTC(2026, 10, 30, 23, 59),
      Date.UTC(2026, 11, 1, 0, 0),
    ];
    await ctx.store.ingest({ calls: at.map((time, i) => makeCall(tenant, `c${i}`, { time })), tasks: [] });
    const spend = async (interval: SpendInterval) => buckets(await ctx.store.spend({ tenant, interval }));
    expect(await spend('hour')).toEqual([
      ['2026-11-04T15:00:00.000Z', 2],
      ['2026-11-04T16:00:00.000Z', 1],
      ['2026-11-30T23:00:00.000Z', 1],
      ['2026-12-01T00:00:00.000Z', 1],
    ]);
    expect(await spend('day')).toEqual([
      ['2026-11-04T00:00:00.000Z', 3],
      ['2026-11-30T00:00:00.000Z', 1],
      ['2026-12-01T00:00:00.000Z', 1],
    ]);
    expect(await spend('week')).toEqual([
      ['2026-11-02T00:00:00.000Z', 3],
      ['2026-11-30T00:00:00.000Z', 2],
    ]);
    expect(await spend('month')).toEqual([
      ['2026-11-01T00:00:00.000Z', 4],
      ['2026-12-01T00:00:00.000Z', 1],
    ]);
  });

  it('starts buckets at local midnight in a time zone, across a DST change', async () => {
    const tenant = newTenant();
    const at = [
      Date.UTC(2026, 10, 1, 3, 0), // Sat Oct 31, 23:00 EDT
      Date.UTC(2026, 10, 1, 12, 0), // Sun Nov 1, 07:00 EST (DST ended at 06:00Z)
      Date.UTC(2026, 10, 2, 12, 0), // Mon Nov 2, 07:00 EST
    ];
    await ctx.store.ingest({ calls: at.map((time, i) => makeCall(tenant, `c${i}`, { time })), tasks: [] });
    const spend = async (interval: SpendInterval) =>
      buckets(await ctx.store.spend({ tenant, interval, timeZone: 'America/New_York' }));
    expect(await spend('day')).toEqual([
      ['2026-10-31T04:00:00.000Z', 1],
      ['2026-11-01T04:00:00.000Z', 1],
      ['2026-11-02T05:00:00.000Z', 1],
    ]);
    expect(await spend('week')).toEqual([
      ['2026-10-26T04:00:00.000Z', 2],
      ['2026-11-02T05:00:00.000Z', 1],
    ]);
    expect(await spend('month')).toEqual([
      ['2026-10-01T04:00:00.000Z', 1],
      ['2026-11-01T04:00:00.000Z', 2],
    ]);
    expect(await spend('hour')).toEqual([
      ['2026-11-01T03:00:00.000Z', 1],
      ['2026-11-01T12:00:00.000Z', 1],
      ['2026-11-02T12:00:00.000Z', 1],
    ]);
  });

  it('handles zones whose offset is not whole hours', async () => {
    const tenant = newTenant();
    const at = [Date.UTC(2026, 10, 4, 18, 20), Date.UTC(2026, 10, 4, 18, 40)]; // 23:50 and 00:10 IST
    await ctx.store.ingest({ calls: at.map((time, i) => makeCall(tenant, `c${i}`, { time })), tasks: [] });
    const rows = await ctx.store.spend({ tenant, interval: 'day', timeZone: 'Asia/Kolkata' });
    expect(buckets(rows)).toEqual([
      ['2026-11-03T18:30:00.000Z', 1],
      ['2026-11-04T18:30:00.000Z', 1],
    ]);
    const hours = await ctx.store.spend({ tenant, interval: 'hour', timeZone: 'Asia/Kathmandu' }); // +05:45
    expect(buckets(hours)).toEqual([['2026-11-04T18:15:00.000Z', 2]]);
  });

  it('orders grouped buckets by bucket, then cost descending', async () => {
    const tenant = newTenant();
    const day2 = Date.UTC(2026, 10, 2, 10);
    const calls = [
      makeCall(tenant, 'a', { time: T0, project: 'cheap', cost_effective_nano: 10n }),
      makeCall(tenant, 'b', { time: T0, project: 'dear', cost_effective_nano: 30n }),
      makeCall(tenant, 'c', { time: T0, project: 'dear', cost_effective_nano: 5n }),
      makeCall(tenant, 'd', { time: day2, project: 'cheap', cost_effective_nano: 50n }),
      makeCall(tenant, 'e', { time: day2, project: null, cost_effective_nano: 20n }),
    ];
    await ctx.store.ingest({ calls, tasks: [] });
    const rows = await ctx.store.spend({ tenant, groupBy: 'project', interval: 'day' });
    expect(rows.map((r) => [new Date(r.bucket!).toISOString(), r.group, r.cost_effective_nano])).toEqual([
      ['2026-11-01T00:00:00.000Z', 'dear', 35n],
      ['2026-11-01T00:00:00.000Z', 'cheap', 10n],
      ['2026-11-02T00:00:00.000Z', 'cheap', 50n],
      ['2026-11-02T00:00:00.000Z', null, 20n],
    ]);
  });

  it('filters on time: from inclusive, to exclusive', async () => {
    const tenant = newTenant();
    const calls = [0, 1, 2, 3].map((i) =>
      makeCall(tenant, `c${i}`, { time: T0 + i * 1000, cost_effective_nano: 1n }),
    );
    await ctx.store.ingest({ calls, tasks: [] });
    const [row] = await ctx.store.spend({ tenant, from: T0 + 1000, to: T0 + 3000 });
    expect(row?.calls).toBe(2);
    expect(await ctx.store.spend({ tenant, from: T0 + 4000 })).toEqual([]);
    const byDay = await ctx.store.spend({ tenant, to: T0 + 1000, interval: 'day', groupBy: 'team' });
    expect(byDay.map((r) => r.calls)).toEqual([1]);
  });

  it('rejects an unknown time zone with invalid_query', async () => {
    await expect(
      ctx.store.spend({ tenant: newTenant(), interval: 'day', timeZone: 'Mars/Olympus' }),
    ).rejects.toMatchObject({ code: 'invalid_query' });
  });
}
