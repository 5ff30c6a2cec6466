import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Catalog, type CatalogData, type Clock, type PriceSet } from '@tally/core';
import { MemoryState, RedisState, type SharedState } from '@tally/gateway';
import { createDuckDbStore, type Store } from '@tally/store';
import { request } from 'undici';
import { buildApp, type TallyApp } from '../app.js';
import { hashKey } from '../auth.js';
import { configSchema, type TallyConfig } from '../config.js';

export const ADMIN_KEY = 'tk-admin-test-0123456789abcdef';
/** The config's gateway key: what replicas present to the control routes. */
export const GATEWAY_KEY = 'tk-gateway-test-0123456789abcdef';
const catalogFile = fileURLToPath(new URL('../../../core/catalog/catalog.json', import.meta.url));
let data: CatalogData | null = null;

/** The catalog, with a config's price overrides (`pricing.overrides`) as the CLI applies them. */
export function testCatalog(overrides: TallyConfig['pricing']['overrides'] = []): Catalog {
  data ??= JSON.parse(readFileSync(catalogFile, 'utf8')) as CatalogData;
  return new Catalog(data, {
    overrides: overrides.map(({ tenant, provider, model, discount_pct, ...given }) => {
      const prices = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) as PriceSet;
      return {
        tenant,
        provider,
        model,
        ...(discount_pct === undefined ? {} : { discount_pct }),
        ...(Object.keys(prices).length > 0 ? { prices } : {}),
      };
    }),
  });
}

export interface TestApp extends TallyApp {
  store: Store;
  auth: { authorization: string };
  /** The gateway key's header, for the replicas' control routes. */
  gatewayAuth: { authorization: string };
  /** Listens on a free loopback port; returns the base URL. */
  listen(): Promise<string>;
  /** Makes a virtual key through POST /v1/keys. */
  newKey(payload: Record<string, unknown>): Promise<{ id: string; key: string }>;
  /** Makes a scope's rate limit through POST /v1/rate-limits; its status code. */
  newRateLimit(payload: Record<string, unknown>): Promise<number>;
  /** Closes the app and the store. */
  shutdown(): Promise<void>;
}

/** A real app on a real (in-memory) DuckDB store, for app.inject() tests. */
export async function testApp(
  overrides: Record<string, unknown> = {},
  clock?: Clock,
  state?: SharedState,
  /** A store to run on (a restart's); by default a new in-memory one, closed with the app. */
  given?: Store,
  /** Where the gateway keeps metering it could not write, and what it watches (background calls,
   * batches) beside it; none by default. */
  spoolDir?: string,
): Promise<TestApp> {
  const config: TallyConfig = configSchema.parse({
    admin_key: ADMIN_KEY,
    gateway_key: GATEWAY_KEY,
    log_level: 'silent',
    ...overrides,
  });
  const store = given ?? (await createDuckDbStore({ path: ':memory:' }));
  if (!given) await store.migrate();
  const catalog = testCatalog(config.pricing.overrides);
  const tally = await buildApp({
    config,
    store,
    price: (i) => catalog.price(i),
    priceVersion: catalog.version,
    maxOutput: (provider, model, tenant) => catalog.maxOutputTokens(provider, model, tenant),
    processMetrics: false,
    ...(clock ? { clock } : {}),
    ...(state ? { state } : {}),
    ...(spoolDir ? { spoolDir } : {}),
    secretKey: randomBytes(32),
  });
  const auth = { authorization: `Bearer ${ADMIN_KEY}` };
  return {
    ...tally,
    store,
    auth,
    gatewayAuth: { authorization: `Bearer ${GATEWAY_KEY}` },
    async listen() {
      return tally.app.listen({ port: 0, host: '127.0.0.1' });
    },
    async newKey(payload) {
      const res = await tally.app.inject({ method: 'POST', url: '/v1/keys', headers: auth, payload });
      return res.json() as { id: string; key: string };
    },
    async newRateLimit(payload) {
      return (await tally.app.inject({ method: 'POST', url: '/v1/rate-limits', headers: auth, payload }))
        .statusCode;
    },
    async shutdown() {
      await tally.close();
      if (!given) await store.close();
    },
  };
}

/** A virtual key of another tenant, stored directly: for proving that tenants are isolated. */
export async function foreignKey(store: Store, tenant = 'other'): Promise<string> {
  const key = `tk-${tenant}-tenant-key-0123456789`;
  await store.createKey({
    tenant,
    id: `k-${tenant}`,
    hash: hashKey(key),
    prefix: key.slice(0, 12),
    name: null,
    tags: {},
    role: 'virtual',
    project: null,
    team: null,
    user: null,
    models: [],
    rpm: null,
    tpm: null,
    budget_id: null,
    created_at: Date.now(),
    expires_at: null,
    revoked_at: null,
  });
  return key;
}

/** An Anthropic messages call to a gateway at `base` (claude-sonnet-4-5, 1,024 tokens at most, one
 * user turn), with `extra` fields in its body. */
/** The states a gateway's budgets and limits run on: in-process, and the machine's Redis under a
 * prefix of its own. */
export const SHARED_STATES: [string, () => SharedState][] = [
  ['in-process', () => new MemoryState()],
  ['redis', () => new RedisState('redis://127.0.0.1:6379', `tally-test:${randomUUID()}:`)],
];

export function postMessage(
  base: string,
  key: string,
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {},
) {
  return request(`${base}/v1/messages`, {
    method: 'POST',
    headers: {
      'x-api-key': key,
      'content-type': 'application/json',
      'anthropic-version': '2023-06-01',
      ...headers,
    },
    body: JSON.stringify({
      model: 'claude-sonnet-4-5',
      max_tokens: 1024,
      messages: [{ role: 'user', content: 'Hello' }],
      ...extra,
    }),
  });
}

/** Waits until `check` holds; throws after `ms`. */
export async function until(check: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A chat completions call to a gateway at `base` (one user turn, unless `body` gives messages). */
export function postChat(
  base: string,
  key: string,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
) {
  return request(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'Say a few words.' }], ...body }),
  });
}

/** A call as /v1/calls lists it. */
export type ListedCall = Record<string, unknown> & { tokens: Record<string, number> };

/** The app's last `n` calls, newest first, once the gateway has handed over what it metered. */
export async function lastCalls(t: TestApp, n = 1): Promise<ListedCall[]> {
  await t.gateway.flush();
  return (await t.app.inject({ url: `/v1/calls?limit=${n}`, headers: t.auth })).json().data;
}

/** An app whose gateway reaches one OpenAI provider, the mock upstream at `url` (with the key
 * sk-upstream), listening on a free port; `gateway` adds to its gateway config. */
export async function mockedGateway(
  url: string,
  gateway: Record<string, unknown> = {},
): Promise<{ t: TestApp; base: string }> {
  const t = await testApp({
    gateway: {
      providers: [{ id: 'openai', kind: 'openai', base_url: `${url}/v1`, api_key: 'sk-upstream' }],
      ...gateway,
    },
  });
  return { t, base: await t.listen() };
}
