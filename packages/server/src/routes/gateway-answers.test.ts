import { MockUpstream, SKIP_WITHOUT_RECORDINGS } from '@tally/gateway/testing';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewaySuite } from '../testing/gateway-suite.js';
import { lastCalls, postChat, postMessage, type TestApp, testApp, until } from '../testing/test-app.js';

type Json = Record<string, Record<string, unknown>>;

const OPENAI_KEY = 'sk-proj-Abc123DEF456ghi789JKL012mno345PQR678';
const ANTHROPIC_KEY = 'sk-ant-api03-Zyx987WVU654tsr321QPO098nml765';

describe.skipIf(SKIP_WITHOUT_RECORDINGS)('gateway: upstream answers unfit to pass on as they are', () => {
  const suite = gatewaySuite((url) => ({
    max_response_bytes: 1024 * 1024,
    providers: [
      { id: 'openai', kind: 'openai', base_url: `${url}/v1`, api_key: OPENAI_KEY, organization: 'org-ours' },
      { id: 'anthropic', kind: 'anthropic', base_url: url, api_key: ANTHROPIC_KEY },
    ],
    routes: [
      {
        model: 'html-then-ok',
        targets: [{ provider: 'openai', model: 'fault-html' }],
        fallbacks: [{ provider: 'openai', model: 'gpt-4o' }],
      },
    ],
  }));
  const { chat, lastCalls, mock } = suite;

  it("sends the provider's own organization upstream, never the one a client names", async () => {
    const res = await postChat(
      suite.base,
      suite.key,
      { model: 'gpt-4o' },
      {
        'openai-organization': 'org-someone-else',
        'openai-project': 'proj_someone_else',
      },
    );
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    const sent = mock.received.at(-1)!.headers;
    expect(sent['openai-organization']).toBe('org-ours');
    expect(sent['openai-project']).toBeUndefined();
  });

  it('answers a 200 that is not JSON (an HTML page, a body cut short) with a 502, recorded as an error', async () => {
    for (const model of ['fault-html', 'fault-short']) {
      const res = await chat({ model });
      expect(res.statusCode).toBe(502);
      expect(((await res.body.json()) as Json).error).toMatchObject({
        type: 'api_error',
        code: 'upstream_invalid_response',
      });
      expect((await lastCalls())[0]).toMatchObject({
        status: 'error',
        error_type: 'upstream_invalid_response',
        model_requested: model,
      });
    }
  });

  it('goes on to the next upstream after a 200 that is not JSON', async () => {
    const res = await chat({ model: 'html-then-ok' });
    expect(res.statusCode).toBe(200);
    expect(((await res.body.json()) as Json)['object']).toBe('chat.completion');
    const [ok, broken] = await lastCalls(2);
    expect(broken).toMatchObject({ status: 'error', error_type: 'upstream_invalid_response' });
    expect(ok).toMatchObject({ status: 'ok', route: { tier: 'fallback', fallback_hops: 1 } });
  });

  it('decodes an answer compressed although the gateway asked for identity, and meters it', async () => {
    for (const model of ['fault-gzip', 'fault-deflate', 'fault-deflate-raw', 'fault-br']) {
      const res = await chat({ model });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-encoding']).toBeUndefined();
      const body = (await res.body.json()) as Json;
      expect(body['choices']).toEqual([
        { index: 0, message: { role: 'assistant', content: 'Packed.' }, finish_reason: 'stop' },
      ]);
      const call = (await lastCalls())[0]!;
      expect(call).toMatchObject({ status: 'ok', pricing_status: 'priced' });
      expect(call.tokens).toMatchObject({ input: 9, output: 2 });
    }
  });

  it('answers 502 when a compressed answer cannot be decoded', async () => {
    for (const model of ['fault-bad-gzip', 'fault-zstd']) {
      const res = await chat({ model });
      expect(res.statusCode).toBe(502);
      expect(((await res.body.json()) as Json).error).toMatchObject({ code: 'upstream_invalid_response' });
      expect((await lastCalls())[0]).toMatchObject({ error_type: 'upstream_invalid_response' });
    }
  });

  it('answers an upstream redirect with a 502, and does not follow it', async () => {
    const before = mock.received.length;
    const res = await chat({ model: 'fault-redirect' });
    expect(res.statusCode).toBe(502);
    expect(res.headers['location']).toBeUndefined();
    expect(((await res.body.json()) as Json).error).toMatchObject({ code: 'upstream_redirect' });
    expect(mock.received.length).toBe(before + 1);
    expect((await lastCalls())[0]).toMatchObject({ status: 'error', error_type: 'upstream_redirect' });
  });

  it("wraps an upstream's HTML error page in the client's error format", async () => {
    const openai = await chat({ model: 'fault-html-502' });
    expect(openai.statusCode).toBe(502);
    expect(openai.headers['content-type']).toBe('application/json');
    expect(((await openai.body.json()) as Json).error).toMatchObject({
      type: 'api_error',
      code: 'upstream_error',
      message: expect.stringContaining('not JSON (text/html)'),
    });
    expect((await lastCalls())[0]).toMatchObject({ status: 'error', error_type: 'upstream_502' });

    const anthropic = await postMessage(suite.base, suite.key, { model: 'fault-html-502' });
    expect(anthropic.statusCode).toBe(502);
    expect(await anthropic.body.json()).toMatchObject({ type: 'error', error: { type: 'api_error' } });

    const count = await request(`${suite.base}/v1/messages/count_tokens`, {
      method: 'POST',
      headers: { 'x-api-key': suite.key, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'fault-html-502', messages: [{ role: 'user', content: 'Hi' }] }),
    });
    expect(count.statusCode).toBe(502);
    expect(await count.body.json()).toMatchObject({ type: 'error', error: { type: 'api_error' } });
  });

  it('does not make up an empty answer when a call translated for Claude gets a 200 that is not JSON', async () => {
    const res = await chat({ model: 'anthropic/fault-html' });
    expect(res.statusCode).toBe(502);
    expect(((await res.body.json()) as Json).error).toMatchObject({ code: 'upstream_invalid_response' });
    expect((await lastCalls())[0]).toMatchObject({
      status: 'error',
      error_type: 'upstream_invalid_response',
      api: 'anthropic-messages',
    });
    const responses = await request(`${suite.base}/v1/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${suite.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'anthropic/fault-html', input: 'Hi' }),
    });
    expect(responses.statusCode).toBe(502);
    expect(((await responses.body.json()) as Json).error).toMatchObject({
      code: 'upstream_invalid_response',
    });
  });

  it("keeps the provider's key, and the account it belongs to, out of what the client sees", async () => {
    const ok = await chat({ model: 'gpt-4o' });
    expect(ok.statusCode).toBe(200);
    await ok.body.dump();
    expect(ok.headers['x-request-id']).toBe('req_mock');
    for (const h of ['openai-organization', 'openai-project', 'anthropic-organization-id'])
      expect(ok.headers[h]).toBeUndefined();

    const count = (model: string) =>
      request(`${suite.base}/v1/messages/count_tokens`, {
        method: 'POST',
        headers: { 'x-api-key': suite.key, 'content-type': 'application/json' },
        body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Hi' }] }),
      });
    const answers: [Promise<Awaited<ReturnType<typeof chat>>>, string][] = [
      [chat({ model: 'fault-key-echo' }), OPENAI_KEY],
      [chat({ model: 'anthropic/fault-key-echo' }), ANTHROPIC_KEY],
      [postMessage(suite.base, suite.key, { model: 'fault-key-echo' }), ANTHROPIC_KEY],
      [count('fault-key-echo'), ANTHROPIC_KEY],
    ];
    for (const [pending, providerKey] of answers) {
      const res = await pending;
      expect(res.statusCode).toBe(401);
      expect(res.headers['openai-organization']).toBeUndefined();
      expect(res.headers['anthropic-organization-id']).toBeUndefined();
      const text = await res.body.text();
      // Neither the key nor the start of it that the message quotes (its first 20 characters).
      expect(text).not.toContain(providerKey.slice(8, 20));
      expect(text).toContain('Incorrect API key provided: [redacted]. Or was it [redacted]...?');
    }
  });

  it('cuts off a whole answer larger than gateway.max_response_bytes, and records the attempt', async () => {
    const started = Date.now();
    const res = await chat({ model: 'fault-huge' });
    expect(res.statusCode).toBe(502);
    expect(((await res.body.json()) as Json).error).toMatchObject({ code: 'upstream_response_too_large' });
    // The upstream call is aborted, not read to its end (200 MB).
    await until(() => mock.openResponses === 0);
    expect(Date.now() - started).toBeLessThan(2000);
    expect((await lastCalls())[0]).toMatchObject({
      status: 'error',
      error_type: 'upstream_response_too_large',
    });
  });

  it('cuts off a stream past gateway.max_response_bytes, and meters what came, estimated', async () => {
    const started = Date.now();
    const res = await chat({ model: 'fault-endless-stream', stream: true });
    expect(res.statusCode).toBe(200);
    // The client's connection is cut as an upstream's that broke off would be: no [DONE].
    let received = 0;
    let tail = '';
    let read = 'ended';
    try {
      for await (const c of res.body as AsyncIterable<Buffer>) {
        received += c.length;
        tail = (tail + c.toString('utf8')).slice(-64);
      }
    } catch {
      read = 'cut';
    }
    expect(read).toBe('cut');
    expect(tail).not.toContain('[DONE]');
    // At most the limit (1 MB) passed on, not the 200 MB the upstream would send.
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThanOrEqual(1024 * 1024);
    await until(() => mock.openResponses === 0);
    expect(Date.now() - started).toBeLessThan(5000);
    const call = (await lastCalls())[0] as Json;
    expect(call).toMatchObject({
      status: 'error',
      error_type: 'upstream_response_too_large',
      pricing_status: 'estimated',
    });
    // Priced from the text that came (1 MB of "lorem ipsum": some 180,000 tokens), not as nothing.
    expect((call['tokens'] as Json)['output']).toBeGreaterThan(100_000);
    expect(Number(call['cost_usd'])).toBeGreaterThan(1);
  });

  it('leaves no upstream response open', async () => {
    await until(() => mock.openResponses === 0);
  });
});

describe.skipIf(SKIP_WITHOUT_RECORDINGS)('an answer that names its model otherwise than the request', () => {
  const mock = new MockUpstream();
  let t: TestApp;
  let base: string;

  beforeAll(async () => {
    await mock.start();
    t = await testApp({
      gateway: { providers: [{ id: 'vllm', kind: 'openai-compatible', base_url: `${mock.url}/v1` }] },
      pricing: {
        overrides: [
          { provider: 'vllm', model: 'served-as-path', input_mtok: '1', output_mtok: '2' },
          { provider: 'vllm', model: 'fault-bad-usage', input_mtok: '1', output_mtok: '2' },
        ],
      },
    });
    base = await t.listen();
  });
  afterAll(async () => {
    await t?.shutdown();
    await mock.stop();
  });

  it('is priced as the model the request named when the name it answers with has no price', async () => {
    const { id, key } = await t.newKey({ project: 'p', budget_usd: 1 });
    const res = await postChat(base, key, { model: 'vllm/served-as-path' });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    // 9 prompt tokens at $1 and 2 completion tokens at $2 a million, the tenant's own prices.
    const [call] = await lastCalls(t, 1);
    expect(call).toMatchObject({
      model_requested: 'vllm/served-as-path',
      model_served: '/models/served-as-path',
      pricing_status: 'priced',
      cost_usd: '0.000013',
    });
    const budgets = (await t.app.inject({ url: '/v1/budgets', headers: t.auth })).json().data;
    expect(budgets.find((b: { id: string }) => b.id === `budget_${id}`)).toMatchObject({
      spent_usd: '0.000013',
      in_flight_usd: '0',
    });
  });

  it('counts a call whose usage cannot be priced against its budget at what was reserved, not at nothing', async () => {
    const { id, key } = await t.newKey({ project: 'p', budget_usd: 1 });
    const res = await postChat(base, key, { model: 'vllm/fault-bad-usage', max_tokens: 100 });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    const [call] = await lastCalls(t, 1);
    expect(call).toMatchObject({ pricing_status: 'unpriced', cost_usd: null });
    expect(String(call!['error_type'])).toMatch(/^usage_unreadable: /);
    const budgets = (await t.app.inject({ url: '/v1/budgets', headers: t.auth })).json().data;
    const b = budgets.find((x: { id: string }) => x.id === `budget_${id}`);
    // The prompt's tokens at $1 and 100 output tokens at $2 a million: at least $0.0002.
    expect(Number(b.spent_usd)).toBeGreaterThanOrEqual(0.0002);
    expect(Number(b.spent_usd)).toBeLessThan(0.0003);
    expect(b.in_flight_usd).toBe('0');
  });
});
