import { randomUUID } from 'node:crypto';
import { MemoryState, RedisState, type SharedState } from '@tally/gateway';
import { MockUpstream } from '@tally/gateway/testing';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, testApp } from '../testing/test-app.js';

const states: [string, () => SharedState][] = [
  ['in-process', () => new MemoryState()],
  ['redis', () => new RedisState('redis://127.0.0.1:6379', `tally-test:${randomUUID()}:`)],
];

describe.each(states)('budgets and rate limits (%s state)', (_name, makeState) => {
  const mock = new MockUpstream();
  let t: TestApp;
  let base: string;
  let state: SharedState;

  beforeAll(async () => {
    await mock.start();
    state = makeState();
    t = await testApp(
      { gateway: { providers: [{ id: 'anthropic', kind: 'anthropic', base_url: mock.url }] } },
      undefined,
      state,
    );
    base = await t.listen();
  });
  afterAll(async () => {
    await t?.shutdown();
    await state.close();
    await mock.stop();
  });

  const newKey = async (payload: Record<string, unknown>) =>
    (await t.app.inject({ method: 'POST', url: '/v1/keys', headers: t.auth, payload })).json() as {
      id: string;
      key: string;
    };

  const message = (key: string, extra: Record<string, unknown> = {}) =>
    request(`${base}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': key, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({
        model: 'claude-sonnet-4-5',
        max_tokens: 1024,
        messages: [{ role: 'user', content: 'Hello' }],
        ...extra,
      }),
    });

  it('holds a $1 budget under 200 concurrent calls: overspend stays within the in-flight reservations', async () => {
    const { id, key } = await newKey({ project: 'p', budget_usd: 1 });
    const results = await Promise.all(
      Array.from({ length: 200 }, async () => {
        const res = await message(key);
        const body = (await res.body.json()) as { error?: { type: string; code?: string; message: string } };
        return { status: res.statusCode, body, headers: res.headers };
      }),
    );
    const ok = results.filter((r) => r.status === 200).length;
    const blocked = results.filter((r) => r.status === 429);
    expect(ok + blocked.length).toBe(200);
    expect(ok).toBeGreaterThan(10);
    expect(blocked.length).toBeGreaterThan(10);
    expect(blocked[0]!.body.error).toMatchObject({ type: 'rate_limit_error', code: 'budget_exceeded' });
    expect(blocked[0]!.body.error!.message).toMatch(/Budget budget_key_.* is exhausted.*resets at 20\d\d-/);
    expect(blocked[0]!.headers['x-tally-budget']).toBe(`budget_${id}`);

    // Each call costs $0.01437 and reserves $0.01539 (1,024 output tokens at most): the budget
    // lets through only what its reservations cover, so the spend never passes $1.
    await t.gateway.flush();
    const spend = (await t.app.inject({ url: '/v1/spend?group_by=project', headers: t.auth })).json().rows[0];
    expect(spend.calls).toBe(ok);
    expect(spend.cost_usd).toBe((ok * 0.01437).toFixed(5).replace(/0+$/, ''));
    expect(Number(spend.cost_usd)).toBeLessThanOrEqual(1);
    const budgets = (await t.app.inject({ url: '/v1/budgets', headers: t.auth })).json().data;
    const b = budgets.find((x: { id: string }) => x.id === `budget_${id}`);
    expect(b).toMatchObject({ spent_usd: spend.cost_usd, in_flight_usd: '0' });
    // The 50% and 80% thresholds were crossed once each.
    const alerts = (await t.app.inject({ url: '/v1/alerts', headers: t.auth })).json().data;
    const mine = alerts.filter((a: { budgetId: string }) => a.budgetId === `budget_${id}`);
    expect(mine.map((a: { threshold: number }) => a.threshold).sort()).toEqual([0.5, 0.8]);
  });

  it('downgrades to the cheaper model when a budget says so', async () => {
    const { id, key } = await newKey({ project: 'downgrade-me' });
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/budgets',
      headers: t.auth,
      payload: {
        scope: 'key',
        subject: id,
        limit_usd: '0.000001',
        action: 'downgrade',
        downgrade_model: 'claude-3-5-haiku-20241022',
      },
    });
    expect(res.statusCode).toBe(201);
    const r = await message(key);
    expect(r.statusCode).toBe(200);
    expect(r.headers['x-tally-downgraded']).toBe('claude-sonnet-4-5 -> claude-3-5-haiku-20241022');
    await r.body.dump();
    expect(mock.received.at(-1)!.body['model']).toBe('claude-3-5-haiku-20241022');
  });

  it('limits requests per minute with Retry-After and x-ratelimit headers', async () => {
    const { key } = await newKey({ project: 'rl', rpm: 2 });
    const first = await message(key);
    expect(first.statusCode).toBe(200);
    expect(first.headers['x-ratelimit-limit-requests']).toBe('2');
    expect(first.headers['x-ratelimit-remaining-requests']).toBe('1');
    await first.body.dump();
    expect((await message(key)).statusCode).toBe(200);
    const limited = await message(key);
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['retry-after']).toBe('30');
    expect(limited.headers['x-ratelimit-limit-requests']).toBe('2');
    expect(limited.headers['x-ratelimit-remaining-requests']).toBe('0');
    expect(await limited.body.json()).toMatchObject({
      error: { type: 'rate_limit_error', code: 'rate_limit_exceeded' },
    });
  });
});
