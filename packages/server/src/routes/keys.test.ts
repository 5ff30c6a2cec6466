import { MockUpstream } from '@tally/gateway/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../config.js';
import { buildReplica } from '../replica.js';
import { GATEWAY_KEY, type TestApp, testApp, testCatalog } from '../testing/test-app.js';

describe("keys of each role, and the replicas' control routes", () => {
  let t: TestApp;
  let base: string;

  beforeAll(async () => {
    t = await testApp();
    base = await t.listen();
    const made = await t.app.inject({
      method: 'POST',
      url: '/v1/providers',
      headers: t.auth,
      payload: {
        id: 'vllm',
        kind: 'openai-compatible',
        base_url: 'http://127.0.0.1:9/v1',
        api_key: 'sk-secret-9',
      },
    });
    expect(made.statusCode).toBe(201);
  });
  afterAll(() => t.shutdown());

  const as = (key: string) => ({ authorization: `Bearer ${key}` });
  const make = (payload: Record<string, unknown>) =>
    t.app.inject({ method: 'POST', url: '/v1/keys', headers: t.auth, payload });
  const status = async (key: string, method: 'GET' | 'POST', url: string, payload?: unknown) =>
    (await t.app.inject({ method, url, headers: as(key), ...(payload ? { payload } : {}) })).statusCode;

  it("gives the providers' secrets to a gateway key only, not to an admin key", async () => {
    expect((await t.app.inject({ url: '/v1/gateway/providers', headers: t.auth })).statusCode).toBe(403);
    const read = await t.app.inject({ url: '/v1/gateway/providers', headers: t.gatewayAuth });
    expect(read.statusCode).toBe(200);
    expect(read.json().data).toEqual([expect.objectContaining({ id: 'vllm', api_key: 'sk-secret-9' })]);
    // What the admin sees of a provider never holds the secret.
    expect(
      JSON.stringify((await t.app.inject({ url: '/v1/providers', headers: t.auth })).json()),
    ).not.toContain('sk-secret-9');
    for (const url of ['/v1/gateway/budgets', `/v1/gateway/keys/${'0'.repeat(64)}`]) {
      expect((await t.app.inject({ url, headers: t.auth })).statusCode).toBe(403);
    }
    expect(
      (
        await t.app.inject({
          method: 'POST',
          url: '/v1/gateway/alerts',
          headers: t.auth,
          payload: { alerts: [] },
        })
      ).statusCode,
    ).toBe(403);
  });

  it('makes a gateway key that opens the control routes and nothing else, until it is revoked', async () => {
    const made = await make({ role: 'gateway' });
    expect(made.statusCode).toBe(201);
    const { id, key } = made.json() as { id: string; key: string };
    expect(key).toMatch(/^tk-gateway-[A-Za-z0-9_-]{32}$/);
    expect(await status(key, 'GET', '/v1/gateway/providers')).toBe(200);
    expect(await status(key, 'GET', '/v1/gateway/budgets')).toBe(200);
    // Not an admin's, a reader's, nor a model caller's.
    expect(await status(key, 'POST', '/v1/keys', {})).toBe(403);
    expect(await status(key, 'GET', '/v1/calls')).toBe(403);
    expect(await status(key, 'GET', '/v1/spend?group_by=project')).toBe(403);
    const chat = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...as(key), 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hi' }] }),
    });
    expect(chat.status).toBe(401);
    const listed = (await t.app.inject({ url: '/v1/keys', headers: t.auth })).json() as {
      data: { id: string; role: string; prefix: string }[];
    };
    expect(listed.data.find((k) => k.id === id)).toMatchObject({ role: 'gateway', prefix: key.slice(0, 16) });
    expect(
      (await t.app.inject({ method: 'DELETE', url: `/v1/keys/${id}`, headers: t.auth })).statusCode,
    ).toBe(200);
    expect(await status(key, 'GET', '/v1/gateway/providers')).toBe(401);
  });

  it('a replica started with an admin key stops at once, saying which key it needs', async () => {
    const catalog = testCatalog();
    const start = (serverKey: string) =>
      buildReplica({
        config: configSchema.parse({ log_level: 'silent', gateway: { server_url: base } }),
        serverKey,
        price: (i) => catalog.price(i),
        priceVersion: catalog.version,
        processMetrics: false,
      });
    await expect(start(t.auth.authorization.slice(7))).rejects.toMatchObject({
      code: 'gateway_key_refused',
      message: expect.stringContaining('--role gateway'),
    });
    const replica = await start(GATEWAY_KEY);
    expect(replica.gateway.router.providersFor('default').map((p) => p.id)).toContain('vllm');
    await replica.close();
  });

  it('makes finance and member keys that read what their role reads', async () => {
    const financeMade = (await make({ role: 'finance', name: 'finance team' })).json() as {
      id: string;
      key: string;
    };
    const finance = financeMade.key;
    const named = (await t.app.inject({ url: '/v1/keys', headers: t.auth })).json().data;
    expect(named.find((k: { id: string }) => k.id === financeMade.id)).toMatchObject({
      name: 'finance team',
      role: 'finance',
    });
    expect(finance).toMatch(/^tk-finance-/);
    expect(await status(finance, 'GET', '/v1/spend?group_by=project')).toBe(200);
    expect(await status(finance, 'POST', '/v1/keys', {})).toBe(403);
    expect(await status(finance, 'GET', '/v1/gateway/providers')).toBe(403);

    const member = (await make({ role: 'member', project: 'support' })).json().key as string;
    expect(member).toMatch(/^tk-member-/);
    expect(await status(member, 'GET', '/v1/calls')).toBe(200);
    expect(await status(member, 'GET', '/v1/spend?group_by=project')).toBe(403);

    const admin = (await make({ role: 'admin', expires_at: '2099-01-01T00:00:00Z' })).json().key as string;
    expect(admin).toMatch(/^tk-admin-/);
    expect(await status(admin, 'POST', '/v1/keys', {})).toBe(201);
  });

  it('refuses a role it does not know, and fields the role does not take, with nothing stored', async () => {
    const before = (await t.app.inject({ url: '/v1/keys', headers: t.auth })).json().data.length;
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ role: 'root' }, /role must be one of virtual, admin, finance, member, gateway/],
      [{ role: 'gateway', budget_usd: 5 }, /A gateway key takes a name and expires_at only, not budget_usd/],
      [{ role: 'finance', project: 'support' }, /not project/],
      [{ role: 'admin', models: ['gpt-4o'] }, /not models/],
      [{ role: 'member' }, /needs the project/],
      [
        { role: 'member', project: 'support', rpm: 10 },
        /A member key takes a project, a name and expires_at only, not rpm/,
      ],
    ];
    for (const [payload, message] of cases) {
      const res = await make(payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().error).toMatchObject({
        code: 'invalid_request',
        message: expect.stringMatching(message),
      });
    }
    expect((await t.app.inject({ url: '/v1/keys', headers: t.auth })).json().data.length).toBe(before);
  });
});

describe('changing a key in place', () => {
  let t: TestApp;
  let base: string;
  const mock = new MockUpstream();

  beforeAll(async () => {
    await mock.start();
    t = await testApp({
      gateway: {
        providers: [{ id: 'openai', kind: 'openai', base_url: `${mock.url}/v1`, api_key: 'sk-up' }],
      },
    });
    base = await t.listen();
  });
  afterAll(async () => {
    await t.shutdown();
    await mock.stop();
  });

  const patch = (id: string, payload: Record<string, unknown>) =>
    t.app.inject({ method: 'PATCH', url: `/v1/keys/${id}`, headers: t.auth, payload });
  const chat = (key: string, model = 'gpt-4o') =>
    fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model, max_tokens: 50, messages: [{ role: 'user', content: 'Hello' }] }),
    });

  it('changes limits, models, owner and budget at once, and the same secret goes on working under them', async () => {
    const { id, key } = (await t.newKey({ project: 'support', rpm: 1, models: ['gpt-4o-mini'] })) as {
      id: string;
      key: string;
    };
    expect((await chat(key)).status).toBe(403);
    const res = await patch(id, {
      rpm: 100,
      models: ['gpt-4o*'],
      team: 'cx',
      budget_usd: '5',
      period: 'day',
      name: 'support bot',
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      id,
      name: 'support bot',
      rpm: 100,
      models: ['gpt-4o*'],
      team: 'cx',
      project: 'support',
      budget_id: `budget_${id}`,
    });
    expect(JSON.stringify(res.json())).not.toContain(key);
    for (let i = 0; i < 3; i++) expect((await chat(key)).status).toBe(200);
    const budgets = (await t.app.inject({ url: '/v1/budgets', headers: t.auth })).json().data;
    expect(budgets.find((b: { id: string }) => b.id === `budget_${id}`)).toMatchObject({
      limit_usd: '5',
      period: 'day',
      scope: 'key',
      subject: id,
    });
    // The budget's limit changes in place; then it goes, and the key holds to none.
    expect((await patch(id, { budget_usd: 7 })).statusCode).toBe(200);
    const again = (await t.app.inject({ url: '/v1/budgets', headers: t.auth })).json().data;
    expect(again.find((b: { id: string }) => b.id === `budget_${id}`)).toMatchObject({
      limit_usd: '7',
      period: 'day',
    });
    expect((await patch(id, { budget_usd: null, models: null, rpm: null })).json()).toMatchObject({
      budget_id: null,
      models: [],
      rpm: null,
    });
    const gone = (await t.app.inject({ url: '/v1/budgets', headers: t.auth })).json().data;
    expect(gone.find((b: { id: string }) => b.id === `budget_${id}`)).toBeUndefined();
    expect((await chat(key, 'gpt-4.1')).status).not.toBe(403);
  });

  it('rotates a key: a new secret for the same key, and the old one stops working at once', async () => {
    const { id, key } = await t.newKey({ project: 'support', rpm: 100 });
    expect((await chat(key)).status).toBe(200);
    const res = await t.app.inject({ method: 'POST', url: `/v1/keys/${id}/rotate`, headers: t.auth });
    expect(res.statusCode).toBe(200);
    const fresh = res.json() as { id: string; key: string };
    expect(fresh.id).toBe(id);
    expect(fresh.key).toMatch(/^tk-[A-Za-z0-9_-]{32}$/);
    expect(fresh.key).not.toBe(key);
    expect((await chat(key)).status).toBe(401);
    expect((await chat(fresh.key)).status).toBe(200);
    const listed = (await t.app.inject({ url: '/v1/keys', headers: t.auth })).json().data;
    expect(listed.find((k: { id: string }) => k.id === id)).toMatchObject({
      prefix: fresh.key.slice(0, 8),
      rpm: 100,
    });
    // The calls of both secrets are the one key's.
    await t.gateway.flush();
    const calls = (await t.app.inject({ url: `/v1/calls?key_id=${id}`, headers: t.auth })).json().data;
    expect(calls).toHaveLength(2);
    await t.app.inject({ method: 'DELETE', url: `/v1/keys/${id}`, headers: t.auth });
    expect(
      (await t.app.inject({ method: 'POST', url: `/v1/keys/${id}/rotate`, headers: t.auth })).statusCode,
    ).toBe(404);
  });

  it('shows a virtual key its own policy and where it stands on the budgets that hold it', async () => {
    const { id, key } = await t.newKey({
      project: 'self-view',
      rpm: 50,
      budget_usd: '2',
      period: 'day',
      tags: { app: 'self-view-app' },
    });
    // A budget of a tag the key carries holds it; one of another value does not.
    const tagged = (
      await t.app.inject({
        method: 'POST',
        url: '/v1/budgets',
        headers: t.auth,
        payload: { scope: 'tag', subject: 'app=self-view-app', limit_usd: '10' },
      })
    ).json().id as string;
    await t.app.inject({
      method: 'POST',
      url: '/v1/budgets',
      headers: t.auth,
      payload: { scope: 'tag', subject: 'app=other', limit_usd: '10' },
    });
    const project = (
      await t.app.inject({
        method: 'POST',
        url: '/v1/budgets',
        headers: t.auth,
        payload: { scope: 'project', subject: 'self-view', limit_usd: '10', period: 'month' },
      })
    ).json().id as string;
    // The tenant's budget holds it, but its spend is the company's: not shown to a key.
    await t.app.inject({
      method: 'POST',
      url: '/v1/budgets',
      headers: t.auth,
      payload: { scope: 'tenant', subject: 'default', limit_usd: '1000' },
    });
    // Another project's budget does not hold this key.
    await t.app.inject({
      method: 'POST',
      url: '/v1/budgets',
      headers: t.auth,
      payload: { scope: 'project', subject: 'elsewhere', limit_usd: '10' },
    });
    expect((await chat(key)).status).toBe(200);
    await t.gateway.flush();
    const res = await fetch(`${base}/v1/key`, { headers: { authorization: `Bearer ${key}` } });
    expect(res.status).toBe(200);
    const me = (await res.json()) as { budgets: { id: string; spent_usd: string; resets_at: string }[] };
    expect(me).toMatchObject({ id, project: 'self-view', rpm: 50, role: 'virtual' });
    expect(JSON.stringify(me)).not.toContain(key);
    expect(me.budgets.map((b) => b.id).sort()).toEqual([`budget_${id}`, project, tagged].sort());
    for (const b of me.budgets) {
      expect(Number(b.spent_usd)).toBeGreaterThan(0);
      expect(Date.parse(b.resets_at)).toBeGreaterThan(Date.now());
    }
    // An admin key is no virtual key: it reads /v1/keys instead.
    expect((await t.app.inject({ url: '/v1/key', headers: t.auth })).statusCode).toBe(403);
  });

  it('refuses what a key of its role does not have, a role change, bad values, and a revoked key, changing nothing', async () => {
    const { id } = await t.newKey({ project: 'support', rpm: 5 });
    const finance = (
      await t.app.inject({ method: 'POST', url: '/v1/keys', headers: t.auth, payload: { role: 'finance' } })
    ).json().id;
    const cases: [string, Record<string, unknown>, number, RegExp][] = [
      [id, { role: 'admin' }, 400, /role cannot change/],
      [id, { rpm: 0 }, 400, /rpm must be a positive integer/],
      [id, { models: 'gpt-4o' }, 400, /models must be an array/],
      [id, { expires_at: '2020-01-01T00:00:00Z' }, 400, /must be in the future/],
      [id, { period: 'week' }, 400, /give budget_usd with it/],
      [id, { budget_usd: 'lots' }, 400, /budget_usd must be a USD amount/],
      [id, { colour: 'red' }, 400, /colour/],
      [finance, { rpm: 5 }, 400, /A finance key has no rpm to change/],
      ['key_none', { rpm: 5 }, 404, /No active key key_none/],
    ];
    for (const [which, payload, status, message] of cases) {
      const res = await patch(which, payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(status);
      expect(res.json().error.message).toMatch(message);
    }
    const listed = (await t.app.inject({ url: '/v1/keys', headers: t.auth })).json().data;
    expect(listed.find((k: { id: string }) => k.id === id)).toMatchObject({ rpm: 5, budget_id: null });
    await t.app.inject({ method: 'DELETE', url: `/v1/keys/${id}`, headers: t.auth });
    expect((await patch(id, { rpm: 9 })).statusCode).toBe(404);
    // Only an admin changes keys.
    const member = (
      await t.app.inject({
        method: 'POST',
        url: '/v1/keys',
        headers: t.auth,
        payload: { role: 'member', project: 'support' },
      })
    ).json().key;
    const res = await t.app.inject({
      method: 'PATCH',
      url: `/v1/keys/${finance}`,
      headers: { authorization: `Bearer ${member}` },
      payload: { expires_at: null },
    });
    expect(res.statusCode).toBe(403);
  });
});
