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
    const finance = (await make({ role: 'finance' })).json().key as string;
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
      [{ role: 'gateway', budget_usd: 5 }, /A gateway key takes expires_at only, not budget_usd/],
      [{ role: 'finance', project: 'support' }, /not project/],
      [{ role: 'admin', models: ['gpt-4o'] }, /not models/],
      [{ role: 'member' }, /needs the project/],
      [
        { role: 'member', project: 'support', rpm: 10 },
        /A member key takes a project and expires_at only, not rpm/,
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
