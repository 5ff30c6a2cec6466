import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { type TestApp, testApp } from '../testing/test-app.js';

describe('GET /v1/calls and /v1/spend', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await testApp();
    const events = [];
    // 30 calls over three days: support (gpt-4o, team cx) and sales (claude, team growth).
    for (let i = 0; i < 30; i++) {
      const support = i % 3 !== 0;
      events.push({
        id: `c${i}`,
        type: 'llm.call',
        time: new Date(Date.UTC(2026, 10, 1 + (i % 3), 10, i)).toISOString(),
        project: support ? 'support' : 'sales',
        team: support ? 'cx' : 'growth',
        user: `u${i % 4}`,
        provider: support ? 'openai' : 'anthropic',
        api: support ? 'openai-chat' : 'anthropic-messages',
        model: support ? 'gpt-4o' : 'claude-sonnet-4-5',
        usage: support
          ? { prompt_tokens: 1000, completion_tokens: 100 }
          : { input_tokens: 1000, output_tokens: 100 },
        status: i === 5 ? 'error' : 'ok',
      });
    }
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/events',
      headers: t.auth,
      payload: { events },
    });
    expect(res.json().accepted).toBe(30);
  });
  afterAll(async () => {
    await t.shutdown();
  });

  it('pages through every call with a cursor, newest first', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const url: string = `/v1/calls?limit=7${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const res = await t.app.inject({ url, headers: t.auth });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      seen.push(...body.data.map((c: { id: string }) => c.id));
      cursor = body.next_cursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(5);
    expect(new Set(seen).size).toBe(30);
    const first = await t.app.inject({ url: '/v1/calls?limit=1', headers: t.auth });
    expect(first.json().data[0]).toMatchObject({
      id: 'c29',
      cost_usd: '0.0035',
      list_cost_usd: '0.0035',
      pricing_status: 'priced',
      tokens: { input: 1000, output: 100 },
    });
  });

  it('filters calls', async () => {
    const get = async (q: string) =>
      (await t.app.inject({ url: `/v1/calls?limit=1000&${q}`, headers: t.auth })).json().data;
    expect(await get('project=sales')).toHaveLength(10);
    expect(await get('model=claude-sonnet-4-5&user=u0')).toHaveLength(3);
    expect(await get('status=error')).toHaveLength(1);
    expect(await get('from=2026-11-02T00:00:00Z&to=2026-11-03T00:00:00Z')).toHaveLength(10);
  });

  it('rejects bad query parameters with a code', async () => {
    for (const q of ['limit=0', 'limit=5000', 'from=soon', 'cursor=zzz', 'status=maybe']) {
      const res = await t.app.inject({ url: `/v1/calls?${q}`, headers: t.auth });
      expect(res.statusCode, q).toBe(400);
      expect(res.json().error.code, q).toMatch(/invalid_(query|cursor)/);
    }
  });

  it('refuses a time past what the store can hold (years 1 to 9999), on every route that takes one', async () => {
    for (const url of [
      '/v1/calls?from=9300000000000000',
      '/v1/spend?to=99999999999999999',
      '/v1/spend?from=%2B275760-09-13T00:00:00Z',
      '/v1/calls?to=-010000-01-01T00:00:00Z',
      '/v1/audit?from=253402300800000',
    ]) {
      const res = await t.app.inject({ url, headers: t.auth });
      expect(res.statusCode, url).toBe(400);
      expect(res.json().error, url).toMatchObject({
        code: 'invalid_query',
        message: expect.stringContaining('from 0001-01-01 to 9999-12-31'),
      });
    }
    const last = await t.app.inject({ url: '/v1/calls?to=253402300799999', headers: t.auth });
    expect(last.statusCode).toBe(200);
  });

  it('sums spend by project, exactly', async () => {
    const res = await t.app.inject({ url: '/v1/spend?group_by=project', headers: t.auth });
    expect(res.statusCode).toBe(200);
    const rows = res.json().rows;
    // support: 20 × $0.0035; sales: 10 × (1000 × $3 + 100 × $15)/M = 10 × $0.0045.
    expect(rows).toEqual([
      expect.objectContaining({ project: 'support', cost_usd: '0.07', calls: 20 }),
      expect.objectContaining({ project: 'sales', cost_usd: '0.045', calls: 10 }),
    ]);
  });

  it('buckets spend by day and groups by any dimension', async () => {
    const res = await t.app.inject({ url: '/v1/spend?interval=day', headers: t.auth });
    const rows = res.json().rows;
    expect(rows.map((r: { bucket: string }) => r.bucket)).toEqual([
      '2026-11-01T00:00:00.000Z',
      '2026-11-02T00:00:00.000Z',
      '2026-11-03T00:00:00.000Z',
    ]);
    for (const g of ['team', 'user', 'model', 'provider', 'use_case']) {
      const r = await t.app.inject({ url: `/v1/spend?group_by=${g}`, headers: t.auth });
      expect(r.statusCode, g).toBe(200);
      expect(r.json().rows.reduce((n: number, row: { calls: number }) => n + row.calls, 0)).toBe(30);
    }
    const bad = await t.app.inject({ url: '/v1/spend?group_by=colour', headers: t.auth });
    expect(bad.statusCode).toBe(400);
  });

  it('serves /healthz without a key', async () => {
    const res = await t.app.inject({ url: '/healthz' });
    expect(res.json()).toMatchObject({ status: 'ok', store: 'duckdb' });
  });
});

describe('spend and calls by tag', () => {
  it('groups spend by a tag (group_by=tag:KEY) and filters calls and spend by one (tag=KEY:VALUE)', async () => {
    const tagged = ['summarize', 'summarize', 'classify'].map((feature, i) => ({
      id: `tagged-${i}`,
      type: 'llm.call',
      time: '2026-11-02T12:00:00Z',
      provider: 'openai',
      api: 'openai-chat',
      model: 'gpt-4o',
      usage: { prompt_tokens: 1000, completion_tokens: 100 },
      tags: { feature, 'team:region': 'eu' },
    }));
    const t = await testApp();
    onTestFinished(() => t.shutdown());
    const ingested = await t.app.inject({
      method: 'POST',
      url: '/v1/events',
      headers: t.auth,
      payload: { events: tagged },
    });
    expect(ingested.json().accepted).toBe(3);
    const spend = (await t.app.inject({ url: '/v1/spend?group_by=tag:feature', headers: t.auth })).json()
      .rows;
    expect(spend.map((r: Record<string, unknown>) => [r['tag:feature'], r['calls'], r['cost_usd']])).toEqual([
      ['summarize', 2, '0.007'],
      ['classify', 1, '0.0035'],
    ]);
    // Calls without the tag are one group, null.
    const byRegion = (await t.app.inject({ url: '/v1/spend?group_by=tag:absent', headers: t.auth })).json()
      .rows;
    expect(byRegion).toMatchObject([{ 'tag:absent': null, calls: 3 }]);
    // The first colon ends the key: this asks for key "team", which no call has.
    const none = await t.app.inject({ url: '/v1/calls?tag=team:region:eu', headers: t.auth });
    expect(none.json().data).toEqual([]);
    const eu = await t.app.inject({ url: '/v1/calls?tag=feature:summarize', headers: t.auth });
    expect(
      eu
        .json()
        .data.map((c: { id: string }) => c.id)
        .sort(),
    ).toEqual(['tagged-0', 'tagged-1']);
    const one = (await t.app.inject({ url: '/v1/spend?tag=feature:classify', headers: t.auth })).json().rows;
    expect(one).toMatchObject([{ calls: 1, cost_usd: '0.0035' }]);
    for (const [url, message] of [
      ['/v1/spend?group_by=tag:', /tag key of 1 to 256 characters/],
      ['/v1/calls?tag=feature', /tag must be KEY:VALUE/],
      ['/v1/spend?group_by=colour', /group_by must be one of project, team/],
    ] as const) {
      const res = await t.app.inject({ url, headers: t.auth });
      expect(res.statusCode, url).toBe(400);
      expect(res.json().error).toMatchObject({
        code: 'invalid_query',
        message: expect.stringMatching(message),
      });
    }
  });
});
