import type { CallRecord } from '@tally/core';
import { expect, it } from 'vitest';
import type { ContractContext } from '../contract.js';
import type { IngestBatch } from '../store.js';
import { makeBareCall, makeCall, makeTask, newTenant, T0 } from './fixtures.js';

const BIG = 2n ** 60n + 12_345n; // far above 2^53: a float would lose it

export function ingestCases(ctx: ContractContext): void {
  it('writes calls and task events of one batch and reads them back unchanged', async () => {
    const tenant = newTenant();
    const full = makeCall(tenant, 'c-full', {
      tags: { env: 'prod', 'team "quoted"': 'naïve ✓ 漢字', empty: '' },
      tokens: {
        input: 1200,
        output: 300,
        cache_read: 1000,
        cache_write: 100,
        cache_write_1h: 40,
        reasoning: 120,
        input_audio: 7,
        output_audio: 9,
        cache_audio_read: 3,
        web_searches: 2,
        file_searches: 4,
        code_containers: 3,
        image_generations: 5,
        characters: 2400,
        audio_seconds: 11,
      },
      cost_list_nano: BIG,
      cost_effective_nano: BIG - 1n,
      saved_nano: BIG + 1n,
      pricing_status: 'estimated',
      latency_ms: 850.25,
      status: 'error',
      error_type: 'rate_limit',
      cache: 'semantic',
      route_tier: 'light',
      fallback_hops: 2,
    });
    const bare = makeBareCall(tenant, 'c-bare');
    const tasks = [
      makeTask(tenant, 'e-1', {
        type: 'task.eligible',
        user: 'u-17',
        team: 'cx',
        arm: 'holdout',
        covariate: 312.5,
        outcome: null,
        handling_seconds: null,
        value_nano: null,
      }),
      makeTask(tenant, 'e-2', { type: 'task.ai_used', call_ids: ['c-full', 'c-bare'], outcome: null }),
      makeTask(tenant, 'e-3', { time: T0 + 1, value_nano: BIG, handling_seconds: 240.5 }),
      makeTask(tenant, 'e-4', {
        time: T0 + 2,
        type: 'task.human',
        kind: 'override',
        seconds: 0,
        outcome: null,
      }),
      makeTask(tenant, 'e-5', {
        time: T0 + 3,
        type: 'task.quality',
        pass: false,
        score: 0,
        reviewer: 'qa-1',
        outcome: null,
      }),
      makeTask(tenant, 'e-6', {
        time: T0 + 4,
        type: 'task.opt_out',
        reason: 'prefers a human',
        outcome: null,
      }),
    ];
    const result = await ctx.store.ingest({ calls: [full, bare], tasks });
    expect(result).toEqual({ inserted: 8, duplicates: 0 });
    expect(await ctx.store.getCall(tenant, 'c-full')).toEqual(full);
    expect(await ctx.store.getCall(tenant, 'c-bare')).toEqual(bare);
    expect(await ctx.store.getCall(tenant, 'c-missing')).toBeNull();
    expect(await ctx.store.listTaskEvents(tenant, 'triage')).toEqual(tasks);
    expect(await ctx.store.counts(tenant)).toEqual({ calls: 2, task_events: 6 });
  });

  it('is idempotent: the same batch twice inserts nothing the second time', async () => {
    const tenant = newTenant();
    const batch: IngestBatch = {
      calls: [makeCall(tenant, 'c1'), makeCall(tenant, 'c2'), makeCall(tenant, 'c3')],
      tasks: [makeTask(tenant, 'e1'), makeTask(tenant, 'e2')],
    };
    expect(await ctx.store.ingest(batch)).toEqual({ inserted: 5, duplicates: 0 });
    expect(await ctx.store.ingest(batch)).toEqual({ inserted: 0, duplicates: 5 });
    expect(await ctx.store.counts(tenant)).toEqual({ calls: 3, task_events: 2 });
  });

  it('a batch mixing stored and new ids inserts only the new ones, and keeps the stored rows', async () => {
    const tenant = newTenant();
    await ctx.store.ingest({
      calls: [makeCall(tenant, 'c1'), makeCall(tenant, 'c2')],
      tasks: [makeTask(tenant, 'e1')],
    });
    const changed = makeCall(tenant, 'c2', { project: 'changed', cost_effective_nano: 1n });
    const result = await ctx.store.ingest({
      calls: [makeCall(tenant, 'c3'), changed, makeCall(tenant, 'c4')],
      tasks: [makeTask(tenant, 'e1'), makeTask(tenant, 'e2')],
    });
    expect(result).toEqual({ inserted: 3, duplicates: 2 });
    expect(await ctx.store.counts(tenant)).toEqual({ calls: 4, task_events: 2 });
    // The first write wins: a retry never rewrites a stored row.
    expect((await ctx.store.getCall(tenant, 'c2'))?.project).toBe('support');
  });

  it('treats a stored id as a duplicate even when the retry changed every other field', async () => {
    const tenant = newTenant();
    await ctx.store.ingest({
      calls: [makeCall(tenant, 'c1'), makeCall(tenant, 'c3')],
      tasks: [makeTask(tenant, 'e1')],
    });
    const result = await ctx.store.ingest({
      calls: [
        makeCall(tenant, 'c1', { time: T0 + 86_400_000, project: 'other' }),
        makeCall(tenant, 'c2'),
        makeCall(tenant, 'c3'), // an exact resend
      ],
      tasks: [makeTask(tenant, 'e1', { time: T0 - 5000, outcome: 'failure' })],
    });
    expect(result).toEqual({ inserted: 1, duplicates: 3 });
    expect(await ctx.store.getCall(tenant, 'c1')).toEqual(makeCall(tenant, 'c1'));
    expect(await ctx.store.listTaskEvents(tenant, 'triage')).toEqual([makeTask(tenant, 'e1')]);
  });

  it('counts an id repeated within one batch once', async () => {
    const tenant = newTenant();
    const result = await ctx.store.ingest({
      calls: [makeCall(tenant, 'c1'), makeCall(tenant, 'c1', { project: 'second' }), makeCall(tenant, 'c2')],
      tasks: [makeTask(tenant, 'e1'), makeTask(tenant, 'e1')],
    });
    expect(result).toEqual({ inserted: 3, duplicates: 2 });
    expect(await ctx.store.counts(tenant)).toEqual({ calls: 2, task_events: 1 });
    expect((await ctx.store.getCall(tenant, 'c1'))?.project).toBe('support');
  });

  it('appendCalls writes fresh calls unchanged, and a retried append counts them as duplicates', async () => {
    const tenant = newTenant();
    const calls = [
      makeCall(tenant, 'g1', {
        tags: { "it's": 'quoted "value"' },
        project: 'sü\u2028pport "x" \\ 😀',
        cost_list_nano: 2n ** 62n,
        ttft_ms: 12.5,
      }),
      makeBareCall(tenant, 'g2'),
      // Text that a delimited file could take for its own syntax, and the empty string apart
      // from null.
      makeCall(tenant, 'g,"4"\n', {
        project: '',
        team: ' a, b ',
        user: 'line one\nline "two"\r\n',
        task_id: null,
        use_case: null,
        key_id: '""',
        tags: { 'a,b': 'x\ny', q: '"' },
        error_type: '\\N',
        latency_ms: 0.000123,
      }),
    ];
    expect(await ctx.store.appendCalls(calls)).toEqual({ inserted: 3, duplicates: 0 });
    const page = await ctx.store.listCalls({ tenant, limit: 10 });
    const byId = (a: CallRecord, b: CallRecord) => a.id.localeCompare(b.id);
    expect([...page.rows].sort(byId)).toEqual([...calls].sort(byId));
    expect(await ctx.store.appendCalls(calls)).toEqual({ inserted: 0, duplicates: 3 });
    const more = [makeCall(tenant, 'g3'), calls[0]!];
    expect(await ctx.store.appendCalls(more)).toEqual({ inserted: 1, duplicates: 1 });
    expect((await ctx.store.counts(tenant)).calls).toBe(4);
    expect(await ctx.store.appendCalls([])).toEqual({ inserted: 0, duplicates: 0 });
  });

  it('an empty batch writes nothing', async () => {
    expect(await ctx.store.ingest({ calls: [], tasks: [] })).toEqual({ inserted: 0, duplicates: 0 });
  });

  it('keys rows by (tenant, id), and calls apart from task events', async () => {
    const a = newTenant('a');
    const b = newTenant('b');
    const result = await ctx.store.ingest({
      calls: [makeCall(a, 'same'), makeCall(b, 'same')],
      tasks: [makeTask(a, 'same')],
    });
    expect(result).toEqual({ inserted: 3, duplicates: 0 });
    expect(await ctx.store.counts(a)).toEqual({ calls: 1, task_events: 1 });
    expect(await ctx.store.counts(b)).toEqual({ calls: 1, task_events: 0 });
  });

  it('counts each of many concurrent batches exactly, with overlaps and stored rows', async () => {
    const tenant = newTenant();
    await ctx.store.ingest({ calls: [makeCall(tenant, 'c-000'), makeCall(tenant, 'c-001')], tasks: [] });
    // Batch i holds calls i*5 .. i*5+9 (overlapping the next batch) and one task event.
    const batches: IngestBatch[] = Array.from({ length: 12 }, (_, i) => ({
      calls: Array.from({ length: 10 }, (_, j) =>
        makeCall(tenant, `c-${String(i * 5 + j).padStart(3, '0')}`),
      ),
      tasks: [makeTask(tenant, `e-${i % 6}`)],
    }));
    const results = await Promise.all(batches.map((b) => ctx.store.ingest(b)));
    for (const r of results) expect(r.inserted + r.duplicates).toBe(11);
    const inserted = results.reduce((n, r) => n + r.inserted, 0);
    // Calls c-000 .. c-064 (65), two already stored; task events e-0 .. e-5.
    expect(inserted).toBe(63 + 6);
    expect(await ctx.store.counts(tenant)).toEqual({ calls: 65, task_events: 6 });
  });

  it('resolves only once the rows are readable', async () => {
    const tenant = newTenant();
    const calls = Array.from({ length: 1500 }, (_, i) => makeCall(tenant, `c-${i}`, { time: T0 + i }));
    await ctx.store.ingest({ calls, tasks: [] });
    expect((await ctx.store.counts(tenant)).calls).toBe(1500);
    const page = await ctx.store.listCalls({ tenant, limit: 1 });
    expect(page.rows[0]?.id).toBe('c-1499');
  });
}
