import type { CallRecord } from '@tally/core';
import { expect, it } from 'vitest';
import type { ContractContext } from '../contract.js';
import type { CallQuery } from '../store.js';
import { byTimeDescIdDesc, MINUTE, makeCall, makeTask, newTenant, T0 } from './fixtures.js';

/** 24 calls over 6 distinct times (4 per time), with each filterable field varying. */
function sampleCalls(tenant: string): CallRecord[] {
  return Array.from({ length: 24 }, (_, i) =>
    makeCall(tenant, `call-${String(i).padStart(3, '0')}`, {
      time: T0 + (i % 6) * MINUTE,
      project: i % 3 === 0 ? null : `p${i % 3}`,
      team: `team-${i % 2}`,
      user: `u-${i % 4}`,
      model_requested: i % 5 === 0 ? 'claude-sonnet-4' : 'gpt-4o',
      provider: i % 5 === 0 ? 'anthropic' : 'openai',
      use_case: i % 2 === 0 ? 'triage' : null,
      task_id: `T-${i % 3}`,
      key_id: i < 12 ? 'key-a' : 'key-b',
      status: i % 7 === 0 ? 'error' : 'ok',
      // Errors of two codes under one status, and one whose name holds LIKE's wildcards.
      error_type:
        i % 7 !== 0
          ? null
          : i % 14 === 0
            ? 'upstream_429:rate_limit_exceeded'
            : i === 7
              ? 'upstream_4%9'
              : 'upstream_429:insufficient_quota',
      // Pairs of attempts of one request, and calls that name none.
      request_id: i % 4 === 3 ? null : `req-${i >> 1}`,
    }),
  );
}

async function walk(ctx: ContractContext, query: CallQuery): Promise<CallRecord[]> {
  const seen: CallRecord[] = [];
  let cursor: string | undefined;
  for (let pages = 0; pages < 100; pages++) {
    const page = await ctx.store.listCalls(cursor === undefined ? query : { ...query, cursor });
    expect(page.rows.length).toBeLessThanOrEqual(query.limit);
    seen.push(...page.rows);
    if (page.nextCursor === null) return seen;
    expect(page.rows.length).toBe(query.limit);
    cursor = page.nextCursor;
  }
  throw new Error('pagination did not end');
}

const ids = (calls: CallRecord[]): string[] => calls.map((c) => c.id);

export function callQueryCases(ctx: ContractContext): void {
  it('lists calls newest first, ties broken by id descending', async () => {
    const tenant = newTenant();
    const calls = sampleCalls(tenant);
    await ctx.store.ingest({ calls, tasks: [] });
    const page = await ctx.store.listCalls({ tenant, limit: 100 });
    expect(page.nextCursor).toBeNull();
    expect(page.rows).toEqual([...calls].sort(byTimeDescIdDesc));
  });

  it('applies each filter', async () => {
    const tenant = newTenant();
    const calls = sampleCalls(tenant);
    await ctx.store.ingest({ calls, tasks: [] });
    const cases: Array<[Partial<CallQuery>, (c: CallRecord) => boolean]> = [
      [{ project: 'p1' }, (c) => c.project === 'p1'],
      [{ team: 'team-1' }, (c) => c.team === 'team-1'],
      [{ user: 'u-2' }, (c) => c.user === 'u-2'],
      [{ model: 'claude-sonnet-4' }, (c) => c.model_requested === 'claude-sonnet-4'],
      [{ provider: 'anthropic' }, (c) => c.provider === 'anthropic'],
      [{ use_case: 'triage' }, (c) => c.use_case === 'triage'],
      [{ task_id: 'T-1' }, (c) => c.task_id === 'T-1'],
      [{ key_id: 'key-b' }, (c) => c.key_id === 'key-b'],
      [{ status: 'error' }, (c) => c.status === 'error'],
      [{ request_id: 'req-4' }, (c) => c.request_id === 'req-4'],
      [{ request_id: 'req-5' }, (c) => c.request_id === 'req-5'],
      [{ error_type: 'upstream_429' }, (c) => c.error_type?.startsWith('upstream_429') === true],
      [
        { error_type: 'upstream_429:insufficient_quota' },
        (c) => c.error_type === 'upstream_429:insufficient_quota',
      ],
      // The filter is a prefix, not a pattern: % and _ stand for themselves.
      [{ error_type: 'upstream_4%' }, (c) => c.error_type === 'upstream_4%9'],
      [{ from: T0 + 2 * MINUTE }, (c) => c.time >= T0 + 2 * MINUTE],
      [{ to: T0 + 2 * MINUTE }, (c) => c.time < T0 + 2 * MINUTE],
      [{ from: T0 + MINUTE, to: T0 + 3 * MINUTE }, (c) => c.time >= T0 + MINUTE && c.time < T0 + 3 * MINUTE],
      [
        { team: 'team-0', provider: 'openai', status: 'ok' },
        (c) => c.team === 'team-0' && c.provider === 'openai' && c.status === 'ok',
      ],
      [{ project: 'nope' }, () => false],
    ];
    for (const [filter, keep] of cases) {
      const page = await ctx.store.listCalls({ tenant, limit: 100, ...filter });
      const expected = calls.filter(keep).sort(byTimeDescIdDesc);
      expect(ids(page.rows), JSON.stringify(filter)).toEqual(ids(expected));
    }
  });

  it('walks every page with a cursor: no row missed or repeated, equal times included', async () => {
    const tenant = newTenant();
    const calls = sampleCalls(tenant);
    await ctx.store.ingest({ calls, tasks: [] });
    const expected = ids([...calls].sort(byTimeDescIdDesc));
    for (const limit of [1, 3, 4, 5, 24, 25]) {
      expect(ids(await walk(ctx, { tenant, limit })), `limit ${limit}`).toEqual(expected);
    }
    const filtered = calls.filter((c) => c.team === 'team-0' && c.time >= T0 + MINUTE).sort(byTimeDescIdDesc);
    const walked = await walk(ctx, { tenant, limit: 2, team: 'team-0', from: T0 + MINUTE });
    expect(ids(walked)).toEqual(ids(filtered));
  });

  it('a page that fills exactly still says whether more follow', async () => {
    const tenant = newTenant();
    await ctx.store.ingest({ calls: sampleCalls(tenant).slice(0, 4), tasks: [] });
    const first = await ctx.store.listCalls({ tenant, limit: 4 });
    expect(first.rows).toHaveLength(4);
    expect(first.nextCursor).toBeNull();
  });

  it('rejects a cursor it did not make with invalid_cursor', async () => {
    const tenant = newTenant();
    await ctx.store.ingest({ calls: sampleCalls(tenant), tasks: [] });
    const bad = [
      'not a cursor!',
      '',
      Buffer.from('{"time":1}').toString('base64url'),
      Buffer.from('[1.5,"x"]').toString('base64url'),
      Buffer.from('["1","x"]').toString('base64url'),
    ];
    for (const cursor of bad) {
      await expect(ctx.store.listCalls({ tenant, limit: 5, cursor }), cursor).rejects.toMatchObject({
        name: 'TallyError',
        code: 'invalid_cursor',
      });
    }
  });

  it('caps a page at 1000 rows', async () => {
    const tenant = newTenant();
    const calls = Array.from({ length: 1001 }, (_, i) => makeCall(tenant, `c-${i}`, { time: T0 + i }));
    await ctx.store.ingest({ calls, tasks: [] });
    const page = await ctx.store.listCalls({ tenant, limit: 5000 });
    expect(page.rows).toHaveLength(1000);
    expect(page.nextCursor).not.toBeNull();
    const rest = await ctx.store.listCalls({ tenant, limit: 5000, cursor: page.nextCursor! });
    expect(ids(rest.rows)).toEqual(['c-0']);
    expect(rest.nextCursor).toBeNull();
  });

  it('lists task events of a use case, or of one task, in time order', async () => {
    const tenant = newTenant();
    const tasks = [
      makeTask(tenant, 'e3', { time: T0 + 3, task_id: 'T-1' }),
      makeTask(tenant, 'e1', {
        time: T0 + 1,
        task_id: 'T-1',
        type: 'task.eligible',
        arm: 'ai',
        outcome: null,
      }),
      makeTask(tenant, 'e2', { time: T0 + 2, task_id: 'T-2' }),
      makeTask(tenant, 'e4', { time: T0 + 4, use_case: 'other' }),
    ];
    await ctx.store.ingest({ calls: [], tasks });
    expect((await ctx.store.listTaskEvents(tenant, 'triage')).map((t) => t.id)).toEqual(['e1', 'e2', 'e3']);
    expect((await ctx.store.listTaskEvents(tenant, 'triage', 'T-1')).map((t) => t.id)).toEqual(['e1', 'e3']);
    expect(await ctx.store.listTaskEvents(tenant, 'triage', 'T-404')).toEqual([]);
    expect((await ctx.store.listTaskEvents(tenant, 'other')).map((t) => t.id)).toEqual(['e4']);
  });

  it('counts calls and task events of a tenant', async () => {
    const tenant = newTenant();
    expect(await ctx.store.counts(tenant)).toEqual({ calls: 0, task_events: 0 });
    await ctx.store.ingest({ calls: sampleCalls(tenant), tasks: [makeTask(tenant, 'e1')] });
    expect(await ctx.store.counts(tenant)).toEqual({ calls: 24, task_events: 1 });
  });
}
