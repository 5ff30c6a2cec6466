import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chatRecordings, MockUpstream, SKIP_WITHOUT_RECORDINGS } from '@tally/gateway/testing';
import { CsvCallBatch } from '@tally/store';
import OpenAI from 'openai';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { configSchema } from './config.js';
import { buildReplica, type GatewayReplica } from './replica.js';
import { callsOfCsv } from './replica-csv.js';
import { callToWire } from './replica-wire.js';
import {
  ADMIN_KEY,
  foreignKey,
  GATEWAY_KEY,
  type TestApp,
  testApp,
  testCatalog,
} from './testing/test-app.js';

type Call = Record<string, unknown> & { id: string; cost_usd: string; tokens: Record<string, number> };

/** A replica of the server at `base`, with the mock upstream as its provider, listening. */
async function startReplica(
  base: string,
  upstream: string,
  cacheMs: number,
  extra: Pick<Parameters<typeof buildReplica>[0], 'onError' | 'spoolDir'>,
  corsOrigins: string[] = [],
  tls?: { cert_file: string; key_file: string },
): Promise<{ replica: GatewayReplica; gw: string }> {
  const catalog = testCatalog();
  const replica = await buildReplica({
    config: configSchema.parse({
      gateway_key: GATEWAY_KEY,
      log_level: 'silent',
      cors_origins: corsOrigins,
      ...(tls ? { tls } : {}),
      gateway: {
        server_url: base,
        replica_cache_ms: cacheMs,
        providers: [{ id: 'openai', kind: 'openai', base_url: `${upstream}/v1`, api_key: 'sk-upstream' }],
      },
    }),
    serverKey: GATEWAY_KEY,
    price: (i) => catalog.price(i),
    priceVersion: catalog.version,
    ...extra,
  });
  await new Promise<void>((r) => replica.server.listen(0, '127.0.0.1', r));
  const port = (replica.server.address() as AddressInfo).port;
  return { replica, gw: `${tls ? 'https' : 'http'}://127.0.0.1:${port}` };
}

describe.skipIf(SKIP_WITHOUT_RECORDINGS)('a gateway replica in front of the server', () => {
  const mock = new MockUpstream();
  let t: TestApp;
  let replica: GatewayReplica;
  let gw: string;
  let key: string;
  let keyId: string;
  const errors: string[] = [];

  beforeAll(async () => {
    await mock.start();
    t = await testApp();
    const base = await t.listen();
    const made = await t.app.inject({
      method: 'POST',
      url: '/v1/keys',
      headers: t.auth,
      payload: { project: 'support', team: 'cx', rpm: 1000 },
    });
    key = made.json().key;
    keyId = made.json().id;
    ({ replica, gw } = await startReplica(
      base,
      mock.url,
      300,
      { onError: (err, what) => errors.push(`${what}: ${(err as Error).message}`) },
      ['https://app.example.com'],
    ));
  });
  afterAll(async () => {
    await replica?.close();
    await t?.shutdown();
    await mock.stop();
  });

  const client = (k = key) => new OpenAI({ apiKey: k, baseURL: `${gw}/v1`, maxRetries: 0 });
  const serverCalls = async (n: number): Promise<Call[]> => {
    await replica.gateway.flush();
    return (await t.app.inject({ url: `/v1/calls?limit=${n}`, headers: t.auth })).json().data;
  };
  const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('serves the openai client and meters into the server, priced to the nano-dollar', async () => {
    // The replica's batches go into the store as sent, not call by call (replica-csv.ts).
    const byCall = vi.spyOn(t.store, 'appendCalls');
    const rec = chatRecordings().find(
      (r) => r.status === 200 && r.request['model'] === 'gpt-4' && r.request['stream'] === undefined,
    )!;
    const out = await client().chat.completions.create(rec.request as never, {
      headers: { 'x-tally-use-case': 'triage', 'x-tally-project': 'ignored' },
    });
    const body = rec.body as {
      choices: unknown;
      usage: { prompt_tokens: number; completion_tokens: number };
    };
    expect(out.choices).toEqual(body.choices);
    const stream = await client().chat.completions.create({
      model: 'gpt-4o',
      stream: true,
      messages: [{ role: 'user', content: 'Hello' }],
    });
    for await (const _ of stream);
    const [streamed, plain] = await serverCalls(2);
    const nano = BigInt(body.usage.prompt_tokens) * 30_000n + BigInt(body.usage.completion_tokens) * 60_000n;
    expect(plain).toMatchObject({
      project: 'support',
      team: 'cx',
      use_case: 'triage',
      key_id: keyId,
      model_served: 'gpt-4-0613',
      status: 'ok',
      pricing_status: 'priced',
      cost_usd: (Number(nano) / 1e9).toString(),
    });
    expect(streamed).toMatchObject({
      status: 'ok',
      pricing_status: 'priced',
      model_served: 'gpt-4o-2024-08-06',
    });
    expect(streamed!['ttft_ms']).not.toBeNull();
    expect(errors).toEqual([]);
    expect(byCall).not.toHaveBeenCalled();
    byCall.mockRestore();
  });

  it('sends metered calls as encoded on the replica: the body is the calls the server reads back', async () => {
    const [call] = await serverCalls(1);
    const stored = (await t.store.getCall('default', call!.id))!;
    const chunk = new CsvCallBatch();
    expect(chunk.bytes.length).toBe(0);
    const other = { ...stored, id: 'wire-2', project: 'é "q", \n', cost_list_nano: 2n ** 62n };
    chunk.add(stored);
    chunk.add(other);
    expect(chunk.rows).toBe(2);
    expect(callsOfCsv(chunk.bytes)).toEqual([stored, other]);
  });

  it('a resent metering batch is stored once, and a bad call is refused with its index', async () => {
    const [call] = await serverCalls(1);
    const stored = await t.store.getCall('default', call!.id);
    const wire = callToWire(stored!);
    const post = (calls: unknown[], auth = t.gatewayAuth) =>
      t.app.inject({ method: 'POST', url: '/v1/gateway/calls', headers: auth, payload: { calls } });
    const again = await post([wire]);
    expect(again.json()).toMatchObject({ accepted: 1, duplicates: 1, rejected: [] });
    expect((await t.store.counts('default')).calls).toBe(2);
    const bad = await post([
      wire,
      { ...wire, id: 'x-1', cost_effective_nano: 1.5 },
      { ...wire, tenant: 'other' },
    ]);
    expect(bad.json().rejected.map((r: { index: number; code: string }) => [r.index, r.code])).toEqual([
      [1, 'invalid_event'],
      [2, 'forbidden'],
    ]);
    expect(bad.json().rejected[0].message).toContain('cost_effective_nano');
    // A virtual key is not a gateway key: it may call models, not write metering. Nor is an
    // admin's: only a replica's key writes metering.
    const denied = await post([wire], { authorization: `Bearer ${key}` });
    expect(denied.statusCode).toBe(403);
    expect((await post([wire], t.auth)).statusCode).toBe(403);
  });

  it('an unknown key, another tenant key and a revoked key get a 401 in OpenAI format', async () => {
    const unknown = await client('tk-not-a-key')
      .chat.completions.create({ model: 'gpt-4o', messages: [] })
      .catch((e) => e);
    expect(unknown.status).toBe(401);
    expect(unknown.error?.code).toBe('invalid_api_key');

    const other = await foreignKey(t.store);
    const before = mock.received.length;
    const cross = await client(other)
      .chat.completions.create({ model: 'gpt-4o', messages: [] })
      .catch((e) => e);
    expect(cross.status).toBe(401);
    expect(mock.received.length).toBe(before);

    const revoked = await t.app.inject({ method: 'DELETE', url: `/v1/keys/${keyId}`, headers: t.auth });
    expect(revoked.statusCode).toBe(200);
    t.ctx.auth.forget();
    await wait(400); // the replica's cache lifetime
    const after = await client()
      .chat.completions.create({ model: 'gpt-4o', messages: [] })
      .catch((e) => e);
    expect(after.status).toBe(401);
  });

  it('budgets set on the server hold on the replica, and its alerts reach the server', async () => {
    const made = await t.app.inject({
      method: 'POST',
      url: '/v1/keys',
      headers: t.auth,
      payload: { project: 'billing', team: 'cx' },
    });
    const k = made.json().key;
    // A budget smaller than one call's reservation: the first call is blocked.
    const budget = await t.app.inject({
      method: 'POST',
      url: '/v1/budgets',
      headers: t.auth,
      payload: {
        id: 'b-billing',
        scope: 'project',
        subject: 'billing',
        limit_usd: '0.000001',
        action: 'block',
      },
    });
    expect(budget.statusCode).toBe(201);
    await wait(400);
    const res = await request(`${gw}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${k}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hello' }] }),
    });
    expect(res.statusCode).toBe(429);
    const err = (await res.body.json()) as { error: { code: string; message: string } };
    expect(err.error.code).toBe('budget_exceeded');
    expect(err.error.message).toContain('b-billing');
    expect(res.headers['x-tally-budget']).toBe('b-billing');
    // The refusal reaches the server as a call of its own, under the key's attribution.
    const [refused] = await serverCalls(1);
    expect(refused).toMatchObject({
      id: res.headers['x-tally-call-id'],
      status: 'refused',
      error_type: 'budget_exceeded',
      project: 'billing',
      team: 'cx',
      model_requested: 'gpt-4o',
      cost_usd: '0',
    });

    // An alert-only budget lets the call through; crossing it raises an alert the server stores.
    await t.app.inject({ method: 'DELETE', url: '/v1/budgets/b-billing', headers: t.auth });
    await t.app.inject({
      method: 'POST',
      url: '/v1/budgets',
      headers: t.auth,
      payload: {
        id: 'b-alert',
        scope: 'project',
        subject: 'billing',
        limit_usd: '0.000001',
        action: 'alert',
      },
    });
    await wait(400);
    const ok = await client(k).chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'Hello' }],
    });
    expect(ok.choices.length).toBeGreaterThan(0);
    let alerts: { budgetId: string; threshold: number }[] = [];
    for (let i = 0; i < 50 && alerts.length === 0; i++) {
      await wait(50);
      alerts = (await t.app.inject({ url: '/v1/alerts', headers: t.auth })).json().data;
    }
    expect(alerts.map((a) => [a.budgetId, a.threshold])).toEqual(
      expect.arrayContaining([
        ['b-alert', 0.5],
        ['b-alert', 1],
      ]),
    );
  });

  it("takes a replica's alert of a tag budget", async () => {
    const alert = {
      kind: 'budget.threshold',
      tenant: 'default',
      budgetId: 'b-tag-alert',
      scope: 'tag',
      subject: 'feature=summarize',
      threshold: 0.5,
      spentUsd: '0.6',
      limitUsd: '1',
      period: '2026-12',
      resetsAt: '2027-01-01T00:00:00.000Z',
      time: '2026-12-05T10:00:00.000Z',
    };
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/gateway/alerts',
      headers: t.gatewayAuth,
      payload: { alerts: [alert] },
    });
    expect(res.json()).toEqual({ accepted: 1 });
    await t.ctx.alerts.stored();
    const alerts = (await t.app.inject({ url: '/v1/alerts', headers: t.auth })).json().data;
    expect(alerts).toEqual(
      expect.arrayContaining([expect.objectContaining({ budgetId: 'b-tag-alert', scope: 'tag' })]),
    );
  });

  it('rate limits of a scope set on the server hold on the replica', async () => {
    const team = `rl-${randomUUID().slice(0, 6)}`;
    expect(await t.newRateLimit({ id: `rl-${team}`, scope: 'team', subject: team, rpm: 1 })).toBe(201);
    const keyOf = async () =>
      (await t.app.inject({ method: 'POST', url: '/v1/keys', headers: t.auth, payload: { team } })).json()
        .key;
    const [a, b] = [await keyOf(), await keyOf()];
    await wait(400); // the replica's cache lifetime
    const send = (k: string) =>
      request(`${gw}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${k}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hello' }] }),
      });
    const first = await send(a);
    expect(first.statusCode).toBe(200);
    await first.body.dump();
    const second = await send(b);
    expect(second.statusCode).toBe(429);
    expect(second.headers['x-tally-rate-limit']).toBe(`rl-${team}`);
    const err = (await second.body.json()) as { error: { code: string; message: string } };
    expect(err.error.code).toBe('rate_limit_exceeded');
    expect(err.error.message).toContain(`(team ${team})`);
  });

  it('uses providers added through the server API, with their decrypted secret', async () => {
    const made = await t.app.inject({
      method: 'POST',
      url: '/v1/providers',
      headers: t.auth,
      payload: {
        id: 'vllm',
        kind: 'openai-compatible',
        base_url: `${mock.url}/v1`,
        api_key: 'sk-vllm-9',
        price_provider: 'openai',
      },
    });
    expect(made.statusCode).toBe(201);
    await replica.refreshProviders();
    const k = (await t.app.inject({ method: 'POST', url: '/v1/keys', headers: t.auth, payload: {} })).json()
      .key;
    const out = await client(k).chat.completions.create({
      model: 'vllm/gpt-4o',
      messages: [{ role: 'user', content: 'Hello' }],
    });
    expect(out.choices.length).toBeGreaterThan(0);
    expect(mock.received.at(-1)!.headers.authorization).toBe('Bearer sk-vllm-9');
  });

  it('lets the pages of the origins its config lists call it (CORS), as the server does', async () => {
    const origin = 'https://app.example.com';
    const pre = await request(`${gw}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization',
      },
    });
    expect(pre.statusCode).toBe(204);
    expect(pre.headers).toMatchObject({
      'access-control-allow-origin': origin,
      'access-control-allow-headers': 'authorization',
    });
    const fresh = (await t.newKey({ project: 'web' })).key;
    const res = await request(`${gw}/v1/models`, { headers: { origin, authorization: `Bearer ${fresh}` } });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    expect(res.headers['access-control-allow-origin']).toBe(origin);
    const stranger = await request(`${gw}/v1/models`, {
      headers: { origin: 'https://elsewhere.example.com', authorization: `Bearer ${fresh}` },
    });
    await stranger.body.dump();
    expect(stranger.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('answers its health check and a 404 for what is not a gateway route', async () => {
    const h = await request(`${gw}/healthz`);
    expect(h.statusCode).toBe(200);
    expect(await h.body.json()).toMatchObject({ status: 'ok', role: 'gateway' });
    const n = await request(`${gw}/v1/spend`);
    expect(n.statusCode).toBe(404);
    expect(((await n.body.json()) as { error: { code: string } }).error.code).toBe('not_found');
  });

  it('counts its requests, its metering and its process in its own /metrics', async () => {
    const metrics = async () => {
      const m = await request(`${gw}/metrics`);
      expect(m.statusCode).toBe(200);
      expect(m.headers['content-type']).toMatch(/^text\/plain/);
      return m.body.text();
    };
    const of = (text: string, line: string) =>
      Number(new RegExp(`^${line.replace(/[{}]/g, '\\$&')} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
    const answered = 'tally_gateway_requests_total{endpoint="chat",status="200",code=""}';
    const refused = 'tally_gateway_requests_total{endpoint="chat",status="401",code="invalid_api_key"}';
    const fresh = (
      await t.app.inject({ method: 'POST', url: '/v1/keys', headers: t.auth, payload: {} })
    ).json().key as string;
    const before = await metrics();
    await client(fresh).chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'Hello' }],
    });
    await expect(
      client('tk-not-a-key').chat.completions.create({
        model: 'gpt-4o',
        messages: [{ role: 'user', content: 'Hi' }],
      }),
    ).rejects.toMatchObject({ status: 401 });
    await expect.poll(async () => of(await metrics(), refused)).toBe(of(before, refused) + 1);
    const after = await metrics();
    expect(of(after, answered)).toBe(of(before, answered) + 1);
    expect(after).toMatch(/^tally_metering_calls\{state="pending"\} \d+$/m);
    expect(after).toMatch(/^tally_metering_dropped_calls_total 0$/m);
    expect(after).toMatch(/^tally_process_resident_memory_bytes \d+$/m);
    // None of the server's own (its HTTP routes, its ingest, its store).
    expect(after).not.toContain('tally_http_requests_total');
    expect(after).not.toContain('tally_store_memory_bytes');
  });

  it('relays a realtime session and meters its responses into the server', async () => {
    const made = await t.app.inject({
      method: 'POST',
      url: '/v1/keys',
      headers: t.auth,
      payload: { project: 'voice' },
    });
    const ws = new WebSocket(`${gw.replace('http', 'ws')}/v1/realtime?model=gpt-realtime`, {
      headers: { authorization: `Bearer ${made.json().key}` },
    });
    const done = new Promise<void>((resolve) =>
      ws.on('message', (d) => {
        if (d.toString().includes('"response.done"')) resolve();
      }),
    );
    await once(ws, 'open');
    ws.send(JSON.stringify({ type: 'response.create' }));
    await done;
    ws.close();
    const [call] = await serverCalls(1);
    expect(call).toMatchObject({
      api: 'openai-realtime',
      project: 'voice',
      key_id: made.json().id,
      cost_usd: '0.00664',
    });
  });
});

describe.skipIf(SKIP_WITHOUT_RECORDINGS)('a gateway replica serving HTTPS', () => {
  it('serves the openai client over TLS with its certificate, and meters into the server', async () => {
    const mock = await new MockUpstream().start();
    const t = await testApp();
    const file = (name: string) => fileURLToPath(new URL(`./testing/tls/${name}`, import.meta.url));
    const { replica, gw } = await startReplica(await t.listen(), mock.url, 300, {}, [], {
      cert_file: file('cert.pem'),
      key_file: file('key.pem'),
    });
    const dispatcher = new Agent({ connect: { ca: readFileSync(file('cert.pem')) } });
    try {
      const { key } = await t.newKey({ project: 'tls' });
      const openai = new OpenAI({ apiKey: key, baseURL: `${gw}/v1`, fetchOptions: { dispatcher } as never });
      await openai.chat.completions.create({
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'Hi' }],
      });
      await replica.gateway.flush();
      const calls = (await t.app.inject({ url: '/v1/calls?limit=1', headers: t.auth })).json().data;
      expect(calls[0]).toMatchObject({ project: 'tls', status: 'ok', pricing_status: 'priced' });
    } finally {
      await dispatcher.close();
      await replica.close();
      await t.shutdown();
      await mock.stop();
    }
  });
});

describe('a gateway replica without a server', () => {
  it('refuses to start, saying what to set', async () => {
    const catalog = testCatalog();
    await expect(
      buildReplica({
        config: configSchema.parse({ admin_key: ADMIN_KEY }),
        serverKey: GATEWAY_KEY,
        price: (i) => catalog.price(i),
        priceVersion: catalog.version,
      }),
    ).rejects.toMatchObject({ code: 'config_invalid', message: expect.stringContaining('TALLY_SERVER_URL') });
  });
});

describe.skipIf(SKIP_WITHOUT_RECORDINGS)('a gateway replica whose server goes away', () => {
  const mock = new MockUpstream();
  let t: TestApp;
  let replica: GatewayReplica;
  let dir: string;

  beforeAll(async () => {
    await mock.start();
    t = await testApp();
    dir = mkdtempSync(join(os.tmpdir(), 'tally-replica-spool-'));
  });
  afterAll(async () => {
    await replica?.close();
    await t?.shutdown();
    await mock.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps its metered calls on disk while the server is down, and sends each once when it is back', async () => {
    const base = await t.listen();
    const port = Number(new URL(base).port);
    const key = (await t.app.inject({ method: 'POST', url: '/v1/keys', headers: t.auth, payload: {} })).json()
      .key;
    let gw: string;
    ({ replica, gw } = await startReplica(base, mock.url, 60_000, { spoolDir: dir }));
    const openai = new OpenAI({ apiKey: key, baseURL: `${gw}/v1`, maxRetries: 0 });
    const say = () =>
      openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hi' }] });
    const health = async () =>
      (await (await request(`${gw}/healthz`)).body.json()) as Record<string, unknown>;
    const until = async (check: () => Promise<boolean>) => {
      for (let i = 0; i < 400 && !(await check()); i++) await new Promise((r) => setTimeout(r, 20));
      expect(await check()).toBe(true);
    };
    await say();
    await replica.gateway.flush();
    expect((await t.store.counts('default')).calls).toBe(1);

    // The server stops listening; the replica still serves from its cache, and cannot meter.
    await new Promise<void>((r) => {
      t.app.server.close(() => r());
      t.app.server.closeAllConnections();
    });
    for (let i = 0; i < 4; i++) await say();
    void replica.gateway.flush();
    await until(async () => (await health())['spooled_calls'] === 4);
    expect(await health()).toMatchObject({ status: 'degraded', pending_calls: 0, dropped_calls: 0 });

    // Back on the same port: the spooled calls arrive, once each.
    await new Promise<void>((r) => t.app.server.listen(port, '127.0.0.1', () => r()));
    await until(async () => (await health())['spooled_calls'] === 0);
    expect((await t.store.counts('default')).calls).toBe(5);
    expect(await health()).toMatchObject({ status: 'ok', failed_writes: 0 });
    expect(readdirSync(dir)).toEqual([]);
  });
});
