import { randomUUID } from 'node:crypto';
import { RedisState, type SharedState } from '@tally/gateway';
import { MockUpstream } from '@tally/gateway/testing';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { foreignKey, postMessage, SHARED_STATES, type TestApp, testApp } from '../testing/test-app.js';

describe.each(SHARED_STATES)('budgets and rate limits (%s state)', (_name, makeState) => {
  const mock = new MockUpstream();
  let t: TestApp;
  let base: string;
  let state: SharedState;

  beforeAll(async () => {
    await mock.start();
    state = makeState();
    t = await testApp(
      {
        gateway: {
          providers: [{ id: 'anthropic', kind: 'anthropic', base_url: mock.url }],
          routes: [
            {
              model: 'cheap-then-dear',
              targets: [{ provider: 'anthropic', model: 'claude-3-5-haiku-20241022' }],
              fallbacks: [{ provider: 'anthropic', model: 'claude-opus-4-1' }],
            },
            {
              model: 'cheap-then-long',
              targets: [{ provider: 'anthropic', model: 'claude-3-5-haiku-20241022' }],
              context_fallbacks: [{ provider: 'anthropic', model: 'claude-opus-4-1' }],
            },
          ],
        },
      },
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

  const newKey = (payload: Record<string, unknown>) => t.newKey(payload);
  const message = (key: string, extra: Record<string, unknown> = {}) => postMessage(base, key, extra);

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
    // Refused while calls were in flight (a retry may go once they end: Retry-After is a second),
    // or (once the spend left too little for one call) because the call could never fit: either
    // way the budget and its reset are named.
    for (const b of blocked) {
      expect(b.body.error!.message).toMatch(
        /^(Budget budget_key_\S+ .* is held by the calls in flight: .* it resets at 20\d\d-|This call may cost up to \$0\.015384 .* left of budget budget_key_\S+ .* wait for 20\d\d-)/,
      );
      if (b.body.error!.message.includes('in flight')) expect(b.headers['retry-after']).toBe('1');
    }
    expect(blocked[0]!.headers['x-tally-budget']).toBe(`budget_${id}`);

    // Once the burst has settled, calls one at a time go until what is left is less than one
    // call's reservation: that refusal is for the spend, not for calls in flight.
    let sequential = 0;
    for (;;) {
      const res = await message(key);
      const body = (await res.body.json()) as { error?: { message: string } };
      if (res.statusCode !== 200) {
        expect(body.error!.message).toMatch(/^This call may cost up to \$0\.015384 .* left of budget/);
        break;
      }
      sequential++;
      expect(sequential).toBeLessThan(70);
    }
    const passed = ok + sequential;

    // Each call costs $0.01437 and reserves $0.01539 (1,024 output tokens at most): the budget
    // lets through only what its reservations cover, so the spend never passes $1.
    await t.gateway.flush();
    const spend = (await t.app.inject({ url: '/v1/spend?group_by=project', headers: t.auth })).json().rows[0];
    expect(spend.calls).toBe(passed);
    expect(spend.cost_usd).toBe((passed * 0.01437).toFixed(5).replace(/0+$/, ''));
    expect(1 - Number(spend.cost_usd)).toBeLessThan(0.015384);
    expect(Number(spend.cost_usd)).toBeLessThanOrEqual(1);
    const budgets = (await t.app.inject({ url: '/v1/budgets', headers: t.auth })).json().data;
    const b = budgets.find((x: { id: string }) => x.id === `budget_${id}`);
    expect(b).toMatchObject({ spent_usd: spend.cost_usd, in_flight_usd: '0' });
    // The 50% and 80% thresholds were crossed once each. The budget said it was exhausted once,
    // at the first refusal for its spend; the burst's refusals for the calls in flight said nothing.
    const alerts = (await t.app.inject({ url: '/v1/alerts', headers: t.auth })).json().data;
    const mine = alerts.filter((a: { budgetId: string }) => a.budgetId === `budget_${id}`);
    expect(mine.map((a: { kind: string; threshold: number }) => `${a.kind} ${a.threshold}`).sort()).toEqual([
      'budget.exhausted 1',
      'budget.threshold 0.5',
      'budget.threshold 0.8',
    ]);
    const exhausted = mine.find((a: { kind: string }) => a.kind === 'budget.exhausted');
    expect(exhausted).toMatchObject({ reason: 'call_exceeds_remaining', callUsd: '0.015384' });
    expect(exhausted.remainingUsd).toBe((1 - passed * 0.01437).toFixed(5).replace(/0+$/, ''));

    // Each refusal is a call of its own: refused, with its code, at $0 and no tokens, under the
    // key and its attribution; the answer names it. Spend counts them apart from the calls made.
    const refused = (
      await t.app.inject({ url: `/v1/calls?key_id=${id}&status=refused&limit=1000`, headers: t.auth })
    ).json().data;
    expect(refused.length).toBe(blocked.length + 1);
    for (const c of refused) {
      expect(c).toMatchObject({
        status: 'refused',
        error_type: 'budget_exceeded',
        project: 'p',
        key_id: id,
        provider: 'anthropic',
        api: 'anthropic-messages',
        model_requested: 'claude-sonnet-4-5',
        model_served: null,
        cost_usd: '0',
        pricing_status: 'priced',
        latency_ms: null,
        request_id: c.id,
      });
      expect(Object.values(c.tokens).every((n) => n === 0)).toBe(true);
    }
    const named = blocked[0]!.headers['x-tally-call-id'];
    expect(blocked[0]!.headers['x-tally-request-id']).toBe(named);
    expect(refused.map((c: { id: string }) => c.id)).toContain(named);
    expect(spend.refused_calls).toBe(refused.length);
    const made = (
      await t.app.inject({ url: `/v1/calls?key_id=${id}&status=ok&limit=1000`, headers: t.auth })
    ).json().data;
    expect(made.length).toBe(passed);
  });

  const budget = async (payload: Record<string, unknown>) => {
    const res = await t.app.inject({ method: 'POST', url: '/v1/budgets', headers: t.auth, payload });
    expect(res.statusCode).toBe(201);
  };
  const chat = (key: string, body: Record<string, unknown>, headers: Record<string, string> = {}) =>
    request(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'Hello' }], ...body }),
    });

  it('holds a block budget when an alert budget next to it is exhausted', async () => {
    const project = `shadow-${randomUUID()}`;
    const { key } = await newKey({ project, user: `${project}-u` });
    await budget({ scope: 'user', subject: `${project}-u`, limit_usd: '0.000001', action: 'alert' });
    // One call reserves $0.01539 at most: two fit under $0.035, the third does not.
    await budget({ scope: 'project', subject: project, limit_usd: '0.035', action: 'block' });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await message(key);
      statuses.push(r.statusCode);
      await r.body.dump();
    }
    expect(statuses).toEqual([200, 200, 429, 429]);
  });

  it("keeps each tenant's budgets apart when they share an id", async () => {
    const id = `shared-${randomUUID().slice(0, 8)}`;
    // This tenant's budget, on a project no call of this test uses.
    await budget({ id, scope: 'project', subject: 'quiet', limit_usd: '0.02', action: 'block' });
    // Another tenant's budget with the same id, on the project its calls name.
    const other = await foreignKey(t.store, `tenant-${id}`);
    await t.store.putBudget({
      tenant: `tenant-${id}`,
      id,
      scope: 'tenant',
      subject: `tenant-${id}`,
      limit_nano: 100_000_000_000n,
      period: 'month',
      time_zone: 'UTC',
      thresholds: [0.5, 0.8, 1],
      action: 'alert',
      downgrade_model: null,
      models: [],
      created_at: Date.now(),
    });
    for (let i = 0; i < 3; i++) {
      const r = await message(other);
      expect(r.statusCode).toBe(200);
      await r.body.dump();
    }
    const mine = (await t.app.inject({ url: '/v1/budgets', headers: t.auth }))
      .json()
      .data.find((b: { id: string }) => b.id === id);
    expect(mine.spent_usd).toBe('0');
    // And this tenant's calls still fit under its own budget.
    const { key } = await newKey({ project: 'quiet' });
    const r = await message(key);
    expect(r.statusCode).toBe(200);
    await r.body.dump();
  });

  it('reserves the whole output of the model for a call that sets no limit, and refuses an unpriced model under a block budget', async () => {
    const { key } = await newKey({ project: `p-${randomUUID()}`, budget_usd: '0.05' });
    // claude-sonnet-4-5 writes up to 64,000 tokens: $0.96 at most, past the $0.05 budget. Sent
    // for Claude through the chat API, a call goes with max_tokens 4096 ($0.06): refused too.
    const whole = await chat(key, { model: 'claude-sonnet-4-5' });
    expect(whole.statusCode).toBe(429);
    expect((await whole.body.json()) as unknown).toMatchObject({
      error: {
        message: expect.stringMatching(
          /may cost up to \$0\.06\d+ .* more than the \$0\.05 left .* lower output limit \(max_tokens, max_output_tokens\)\.$/,
        ),
      },
    });
    const capped = await chat(key, { model: 'claude-sonnet-4-5', max_tokens: 100 });
    expect(capped.statusCode).toBe(200);
    await capped.body.dump();
    // A route's fallback may cost more than its first target: the dearest is reserved. 100 tokens
    // of Opus 4.1 ($75 a million) is $0.0075, past what the $0.05 has left after the call above.
    const routed = await newKey({ project: `p-${randomUUID()}`, budget_usd: '0.005' });
    const dear = await chat(routed.key, { model: 'cheap-then-dear', max_tokens: 100 });
    expect(dear.statusCode).toBe(429);
    expect(((await dear.body.json()) as { error: { message: string } }).error.message).toMatch(
      /may cost up to \$0\.007\d+ .* more than the \$0\.005 left/,
    );
    // So may its model for longer prompts, which is reserved the same way.
    const long = await chat(routed.key, { model: 'cheap-then-long', max_tokens: 100 });
    expect(long.statusCode).toBe(429);
    expect(((await long.body.json()) as { error: { message: string } }).error.message).toMatch(
      /may cost up to \$0\.007\d+ .* more than the \$0\.005 left/,
    );
    // And so may a fallback the request names itself: haiku alone fits, haiku then Opus does not.
    const named = await chat(
      routed.key,
      { model: 'claude-3-5-haiku-20241022', max_tokens: 100 },
      { 'x-tally-fallbacks': 'claude-opus-4-1' },
    );
    expect(named.statusCode).toBe(429);
    expect(((await named.body.json()) as { error: { message: string } }).error.message).toMatch(
      /may cost up to \$0\.007\d+ .* more than the \$0\.005 left/,
    );
    const alone = await chat(routed.key, { model: 'claude-3-5-haiku-20241022', max_tokens: 100 });
    expect(alone.statusCode).toBe(200);
    await alone.body.dump();
    const unpriced = await chat(key, { model: 'claude-in-house-1', max_tokens: 100 });
    expect(unpriced.statusCode).toBe(400);
    expect(await unpriced.body.json()).toMatchObject({ error: { code: 'unpriced_model' } });
  });

  it("reserves a fast-mode or US-only call at its mode's price, and refuses fast mode where it has none", async () => {
    const { key } = await newKey({ project: `p-${randomUUID()}`, budget_usd: '0.05' });
    const opus = { model: 'claude-opus-4-6', max_tokens: 1000 };
    // 1,000 output tokens of claude-opus-4-6 at $25 a million: $0.025 and the prompt, within $0.05;
    // in fast mode 6 times that, which the budget cannot hold; US-only 1.1 times, which it can.
    const fast = await message(key, { ...opus, speed: 'fast' });
    expect(fast.statusCode).toBe(429);
    expect(((await fast.body.json()) as { error: { message: string } }).error.message).toMatch(
      /may cost up to \$0\.15\d+ .* more than the \$0\.05 left/,
    );
    const us = await message(key, { ...opus, max_tokens: 100, inference_geo: 'us' });
    expect(us.statusCode).toBe(200);
    await us.body.dump();
    // Fast mode has no price for claude-sonnet-4-5: under a block budget the call cannot go.
    const unpriced = await message(key, { max_tokens: 100, speed: 'fast' });
    expect(unpriced.statusCode).toBe(400);
    expect(await unpriced.body.json()).toMatchObject({
      error: {
        type: 'invalid_request_error',
        message: expect.stringMatching(
          /^A call to model claude-sonnet-4-5 has no price \(fast mode \(usage\.speed "fast"\) has no price in the tables for model claude-sonnet-4-5\), so it cannot be held to budget budget_key_/,
        ),
      },
    });
  });

  it('holds a budget to the models it names: its calls stop at the limit, calls to other models go on', async () => {
    const { key } = await newKey({ project: 'opus-capped' });
    await budget({
      id: 'b-opus',
      scope: 'project',
      subject: 'opus-capped',
      limit_usd: '0.2',
      action: 'block',
      models: ['claude-opus-*'],
    });
    // Each opus call costs $0.07185 (2,095 × $15 + 1,800 × $1.50 + 503 × $75 per million) and
    // reserves more: the budget lets two through.
    const opus = async () => message(key, { model: 'claude-opus-4-1' });
    const first = await opus();
    await first.body.dump();
    expect(first.statusCode).toBe(200);
    const second = await opus();
    await second.body.dump();
    expect(second.statusCode).toBe(200);
    const third = await opus();
    expect(third.statusCode).toBe(429);
    expect(((await third.body.json()) as { error: { message: string } }).error.message).toMatch(/b-opus/);
    // Sonnet is not a model it names: it neither counts nor stops those calls.
    for (let i = 0; i < 3; i++) {
      const sonnet = await message(key);
      await sonnet.body.dump();
      expect(sonnet.statusCode).toBe(200);
    }
    await t.gateway.flush();
    const b = (await t.app.inject({ url: '/v1/budgets', headers: t.auth }))
      .json()
      .data.find((x: { id: string }) => x.id === 'b-opus');
    expect(b).toMatchObject({ models: ['claude-opus-*'], spent_usd: '0.1437', in_flight_usd: '0' });
    const bad = await t.app.inject({
      method: 'POST',
      url: '/v1/budgets',
      headers: t.auth,
      payload: { scope: 'project', subject: 'x', limit_usd: '1', models: 'claude-opus-*' },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toMatch(/models must be an array of model names/);
  });

  it('holds a budget to the calls with its tag, from the header or the key, and reads its spend from the store', async () => {
    const tag = `feature=tagged-${Math.random().toString(36).slice(2, 8)}`;
    const [name, value] = tag.split('=') as [string, string];
    await budget({ id: `b-${value}`, scope: 'tag', subject: tag, limit_usd: '0.03', action: 'block' });
    const { key } = await newKey({ project: 'tags' });
    const tagged = async (k: string) => {
      const r = await postMessage(base, k, {}, { 'x-tally-tags': tag });
      await r.body.dump();
      return r.statusCode;
    };
    // Each call costs $0.01437 and reserves $0.01539: two fit under $0.03, a third does not.
    expect([await tagged(key), await tagged(key), await tagged(key)]).toEqual([200, 200, 429]);
    // Calls without the tag go on.
    const plain = await message(key);
    await plain.body.dump();
    expect(plain.statusCode).toBe(200);
    // A key whose own tags carry it is held too.
    const { key: pinned } = await newKey({ project: 'tags', tags: { [name]: value } });
    const held = await message(pinned);
    await held.body.dump();
    expect(held.statusCode).toBe(429);
    // A budget of the same tag made after the calls reads their spend from the store.
    await t.gateway.flush();
    await budget({ id: `b-${value}-late`, scope: 'tag', subject: tag, limit_usd: '10', action: 'alert' });
    const list = (await t.app.inject({ url: '/v1/budgets', headers: t.auth })).json().data;
    expect(list.find((b: { id: string }) => b.id === `b-${value}-late`)).toMatchObject({
      spent_usd: '0.02874',
    });
    const bad = await t.app.inject({
      method: 'POST',
      url: '/v1/budgets',
      headers: t.auth,
      payload: { scope: 'tag', subject: 'feature', limit_usd: '1' },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toMatch(/subject is the tag as name=value/);
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
    await t.gateway.flush();
    const call = (await t.app.inject({ url: '/v1/calls?limit=1', headers: t.auth })).json().data[0];
    expect(call).toMatchObject({ model_requested: 'claude-sonnet-4-5', route: { tier: 'downgrade' } });
    // A model name no header can carry as it is goes percent-encoded, and the call is answered
    // and recorded as any other.
    const odd = await message(key, { model: 'claude-sonnet-4-5-€' });
    expect(odd.statusCode).toBe(200);
    expect(odd.headers['x-tally-downgraded']).toBe(
      `${encodeURIComponent('claude-sonnet-4-5-€ -> claude-3-5-haiku-20241022')}`,
    );
    await odd.body.dump();
    await t.gateway.flush();
    const oddCall = (await t.app.inject({ url: '/v1/calls?limit=1', headers: t.auth })).json().data[0];
    expect(oddCall).toMatchObject({ model_requested: 'claude-sonnet-4-5-€', status: 'ok' });
  });

  it('refuses a downgrade to a model it could not send calls to or price', async () => {
    const { id } = await newKey({ project: 'downgrade-checked' });
    const create = (downgrade_model: string) =>
      t.app.inject({
        method: 'POST',
        url: '/v1/budgets',
        headers: t.auth,
        payload: { scope: 'key', subject: id, limit_usd: '1', action: 'downgrade', downgrade_model },
      });
    // No price: an exhausted budget's calls would go there unheld by the budgets beside it.
    const unpriced = await create('claude-in-house-1');
    expect(unpriced.statusCode).toBe(400);
    expect(unpriced.json().error).toMatchObject({ code: 'invalid_request' });
    expect(unpriced.json().error.message).toMatch(
      /^downgrade_model "claude-in-house-1" has no price on anthropic \(.*\): calls sent to it could not be held to a budget\.$/,
    );
    const control = await create('gpt-4o-mini\r\nx: 1');
    expect(control.statusCode).toBe(400);
    expect(control.json().error.message).toContain('must be a model name');
    expect((await t.app.inject({ url: '/v1/budgets', headers: t.auth })).json().data).not.toContainEqual(
      expect.objectContaining({ subject: id }),
    );
    expect((await create('claude-3-5-haiku-20241022')).statusCode).toBe(201);
  });

  it('counts gateway requests in /metrics by endpoint, status and the code of a refusal', async () => {
    const count = async () => {
      const text = (await t.app.inject({ url: '/metrics' })).body;
      const of = (labels: string) =>
        Number(new RegExp(`^tally_gateway_requests_total\\{${labels}\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
      return {
        ok: of('endpoint="messages",status="200",code=""'),
        badKey: of('endpoint="messages",status="401",code="invalid_api_key"'),
        limited: of('endpoint="messages",status="429",code="rate_limit_exceeded"'),
        timed: Number(
          /^tally_gateway_request_duration_seconds_count\{endpoint="messages"\} (\d+)$/m.exec(text)?.[1] ?? 0,
        ),
      };
    };
    const before = await count();
    const { key } = await newKey({ project: 'counted', rpm: 1 });
    const statuses = [];
    for (const k of [key, key, 'tk-not-a-key']) {
      const res = await message(k);
      await res.body.dump();
      statuses.push(res.statusCode);
    }
    expect(statuses).toEqual([200, 429, 401]);
    // Counted as each answer ends (the socket's close follows the client's read).
    await expect.poll(async () => (await count()).timed).toBe(before.timed + 3);
    expect(await count()).toEqual({
      ok: before.ok + 1,
      badKey: before.badKey + 1,
      limited: before.limited + 1,
      timed: before.timed + 3,
    });
  });

  it('limits requests per minute with Retry-After and x-ratelimit headers', async () => {
    const { key } = await newKey({ project: 'rl', rpm: 2 });
    const first = await message(key);
    expect(first.statusCode).toBe(200);
    expect(first.headers['x-ratelimit-limit-requests']).toBe('2');
    expect(first.headers['x-ratelimit-remaining-requests']).toBe('1');
    // The provider account's own limits are not passed on: they would mix with the key's.
    expect(first.headers['x-ratelimit-limit-tokens']).toBeUndefined();
    expect(first.headers['anthropic-ratelimit-tokens-limit']).toBeUndefined();
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
    // The call the limit turned away is listed, under the key's project.
    await t.gateway.flush();
    const id = limited.headers['x-tally-call-id'] as string;
    const call = (await t.app.inject({ url: `/v1/calls/${id}`, headers: t.auth })).json();
    expect(call).toMatchObject({
      status: 'refused',
      error_type: 'rate_limit_exceeded',
      project: 'rl',
      cost_usd: '0',
    });
  });
});

describe('budgets when their state is out of reach', () => {
  it('refuses the call with a 503 within seconds, without sending it', async () => {
    const mock = new MockUpstream();
    await mock.start();
    const state = new RedisState('redis://127.0.0.1:1', `tally-test:${randomUUID()}:`);
    const t = await testApp(
      { gateway: { providers: [{ id: 'anthropic', kind: 'anthropic', base_url: mock.url }] } },
      undefined,
      state,
    );
    try {
      const base = await t.listen();
      const { key } = await t.newKey({ project: 'p', budget_usd: 1, rpm: 10 });
      const t0 = Date.now();
      const res = await postMessage(base, key);
      expect(res.statusCode).toBe(503);
      expect(res.headers['retry-after']).toBe('1');
      const body = (await res.body.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('budget_state_unavailable');
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(mock.received).toHaveLength(0);
      const health = (await t.app.inject({ url: '/healthz' })).json();
      expect(health.status).toBe('degraded');
      expect(health.checks.state).toMatchObject({
        kind: 'redis',
        ok: false,
        error: expect.stringMatching(/ECONNREFUSED/),
      });
    } finally {
      await t.shutdown();
      await state.close();
      await mock.stop();
    }
  });
});
