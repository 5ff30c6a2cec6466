import { chatRecordings, MockUpstream, SKIP_WITHOUT_RECORDINGS } from '@tally/gateway/testing';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ListedCall,
  postChat,
  postMessage,
  lastCalls as recordedCalls,
  type TestApp,
  testApp,
  until,
} from '../testing/test-app.js';

describe.skipIf(SKIP_WITHOUT_RECORDINGS)('gateway faults: metered correctly, nothing leaked', () => {
  const mock = new MockUpstream();
  let t: TestApp;
  let base: string;
  let key: string;

  beforeAll(async () => {
    await mock.start();
    t = await testApp({
      gateway: {
        retry_backoff_ms: 5,
        retry_max_wait_ms: 300,
        providers: [
          { id: 'openai', kind: 'openai', base_url: `${mock.url}/v1`, timeout_ms: 400 },
          { id: 'flaky', kind: 'openai', base_url: `${mock.url}/v1` },
          { id: 'cutter', kind: 'openai', base_url: `${mock.url}/v1` },
          { id: 'down', kind: 'openai', base_url: 'http://127.0.0.1:9/v1' },
          { id: 'anthropic', kind: 'anthropic', base_url: mock.url },
          // For the requests' own routing: failures of their own, apart from the others' circuits.
          { id: 'asked', kind: 'openai', base_url: `${mock.url}/v1` },
          { id: 'asked2', kind: 'openai', base_url: `${mock.url}/v1` },
        ],
        routes: [
          {
            model: 'resilient',
            targets: [{ provider: 'flaky', model: 'fault-500' }],
            fallbacks: [{ provider: 'openai', model: 'gpt-4o' }],
          },
          { model: 'ghost', targets: [{ provider: 'nosuch' }] },
          {
            model: 'ghost-long',
            targets: [{ provider: 'nosuch' }],
            context_fallbacks: [{ provider: 'openai', model: 'gpt-4o' }],
          },
          {
            model: 'to-claude',
            targets: [{ provider: 'cutter', model: 'fault-500' }],
            fallbacks: [{ provider: 'anthropic', model: 'claude-sonnet-4-5' }],
          },
          {
            model: 'cut-then-ok',
            targets: [{ provider: 'cutter', model: 'fault-cut' }],
            fallbacks: [{ provider: 'openai', model: 'gpt-4o' }],
          },
          {
            model: 'unreachable',
            targets: [{ provider: 'down', model: 'gpt-4o' }],
            fallbacks: [{ provider: 'openai', model: 'gpt-4o' }],
          },
          // A prompt too long for the model goes to a model with a larger context window.
          {
            model: 'long-chat',
            targets: [{ provider: 'openai', model: 'fault-context' }],
            fallbacks: [{ provider: 'flaky', model: 'fault-context' }],
            context_fallbacks: [{ provider: 'openai', model: 'gpt-4o' }],
          },
          {
            model: 'long-chat-500',
            targets: [{ provider: 'cutter', model: 'fault-500' }],
            context_fallbacks: [{ provider: 'openai', model: 'gpt-4o' }],
          },
          {
            model: 'long-claude',
            targets: [{ provider: 'anthropic', model: 'fault-too-long' }],
            context_fallbacks: [{ provider: 'anthropic', model: 'claude-sonnet-4-5' }],
          },
          // An upstream tried again before the next.
          { model: 'retry-ok', targets: [{ provider: 'flaky', model: 'fault-500x2' }], retries: 2 },
          {
            model: 'retry-out',
            targets: [{ provider: 'flaky', model: 'fault-500x5' }],
            fallbacks: [{ provider: 'openai', model: 'gpt-4o' }],
            retries: 1,
          },
          { model: 'retry-after', targets: [{ provider: 'flaky', model: 'fault-429x1' }], retries: 1 },
          // A stream that opens with an error (an overloaded Anthropic) goes to the next.
          {
            model: 'overloaded-claude',
            targets: [{ provider: 'anthropic', model: 'fault-stream-error' }],
            fallbacks: [{ provider: 'anthropic', model: 'claude-sonnet-4-5' }],
          },
          {
            model: 'overloaded-late',
            targets: [{ provider: 'anthropic', model: 'fault-stream-error-late' }],
            fallbacks: [{ provider: 'anthropic', model: 'claude-sonnet-4-5' }],
          },
          {
            model: 'asked-route',
            targets: [{ provider: 'asked', model: 'fault-500' }],
            fallbacks: [{ provider: 'openai', model: 'gpt-4o' }],
            retries: 1,
          },
          // A request a content filter refuses goes to a model another filter judges.
          {
            model: 'filtered',
            targets: [{ provider: 'openai', model: 'fault-filtered' }],
            context_fallbacks: [{ provider: 'openai', model: 'fault-context' }],
            content_policy_fallbacks: [{ provider: 'openai', model: 'gpt-4o' }],
          },
          {
            model: 'filtered-only',
            targets: [{ provider: 'openai', model: 'fault-context' }],
            content_policy_fallbacks: [{ provider: 'openai', model: 'gpt-4o' }],
          },
          {
            model: 'gpt-4-long',
            targets: [{ provider: 'openai', model: 'gpt-4' }],
            context_fallbacks: [
              { provider: 'openai', model: 'gpt-4o' },
              { provider: 'openai', model: 'fault-context' },
            ],
          },
        ],
      },
    });
    base = await t.listen();
    key = (
      await t.app.inject({ method: 'POST', url: '/v1/keys', headers: t.auth, payload: { project: 'p' } })
    ).json().key;
  });
  afterAll(async () => {
    await t?.shutdown();
    await mock.stop();
  });

  const chat = (body: Record<string, unknown>, headers: Record<string, string> = {}) =>
    postChat(base, key, body, headers);

  const lastCalls = (n = 1) => recordedCalls(t, n);

  /** Sends a chat call and leaves 100 ms later, as a client that gives up does. */
  const leftAfter100ms = async (body: Record<string, unknown>, headers: Record<string, string> = {}) => {
    const ac = new AbortController();
    const pending = request(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'Say a few words.' }], ...body }),
      signal: ac.signal,
    }).catch(() => null);
    await new Promise((r) => setTimeout(r, 100));
    ac.abort();
    await pending;
  };

  it("records an upstream's error answer with the code its body gives, on OpenAI's recorded errors", async () => {
    // The recorded answers of OpenAI's API that refused a request (FauxpenAI), one for each code.
    const codes = ['context_length_exceeded', 'unsupported_parameter', 'model_not_found', null];
    for (const code of codes) {
      const rec = chatRecordings().find(
        (r) =>
          r.status >= 400 &&
          r.request['stream'] !== true &&
          (r.body as { error?: { code?: unknown } }).error?.code === code,
      )!;
      const error = (rec.body as { error: { type: string } }).error;
      // The recorded request as it was sent, byte for byte, so that its recorded answer comes back.
      const res = await request(`${base}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify(rec.request),
      });
      expect(res.statusCode, String(code)).toBe(rec.status);
      expect(((await res.body.json()) as { error: unknown }).error).toEqual(error);
      expect((await lastCalls())[0], String(code)).toMatchObject({
        status: 'error',
        error_type: `upstream_${rec.status}:${code ?? error.type}`,
        cost_usd: '0',
      });
    }
    // The calls API finds them by the start of their error type.
    const found = await t.app.inject({
      url: '/v1/calls?error_type=upstream_400:context_length',
      headers: t.auth,
    });
    expect(found.json().data.map((c: { error_type: string }) => c.error_type)).toEqual([
      'upstream_400:context_length_exceeded',
    ]);
  });

  it("sends a prompt too long for the model to the route's model for longer prompts, every attempt metered", async () => {
    const res = await chat({ model: 'long-chat' });
    expect(res.statusCode).toBe(200);
    expect(((await res.body.json()) as { model: string }).model).toMatch(/^gpt-4o/);
    const [ok, tooLong] = await lastCalls(2);
    // The attempt that was refused costs nothing; the ordinary fallback after it (another model
    // with the same window) is not tried: the model for longer prompts takes its place.
    expect(tooLong).toMatchObject({
      status: 'error',
      error_type: 'upstream_400:context_length_exceeded',
      model_requested: 'long-chat',
      cost_usd: '0',
      route: { tier: null, fallback_hops: 0 },
    });
    expect(ok).toMatchObject({
      status: 'ok',
      pricing_status: 'priced',
      model_requested: 'long-chat',
      request_id: tooLong!['id'],
      route: { tier: 'context_fallback', fallback_hops: 1 },
    });
    expect(Number(ok!['cost_usd'])).toBeGreaterThan(0);
    expect(res.headers['x-tally-request-id']).toBe(tooLong!['id']);
    // Streamed: the refusal comes as JSON before any event, and the stream comes from the model for
    // longer prompts, metered from its usage.
    const streamed = await chat({ model: 'long-chat', stream: true });
    expect(streamed.statusCode).toBe(200);
    expect(await streamed.body.text()).toContain('data: [DONE]');
    const [okStream, tooLongStream] = await lastCalls(2);
    expect(tooLongStream).toMatchObject({
      status: 'error',
      error_type: 'upstream_400:context_length_exceeded',
    });
    expect(okStream).toMatchObject({
      status: 'ok',
      pricing_status: 'priced',
      route: { tier: 'context_fallback', fallback_hops: 1 },
    });
  });

  it("sends a request a content filter refused to the route's content_policy_fallbacks, and only such a one", async () => {
    const before = mock.received.length;
    const res = await chat({ model: 'filtered' });
    expect(res.statusCode).toBe(200);
    await res.body.json();
    // The model for longer prompts is not what a filtered request calls for.
    expect(mock.received.slice(before).map((r) => r.body['model'])).toEqual(['fault-filtered', 'gpt-4o']);
    const [ok, filtered] = await lastCalls(2);
    expect(filtered).toMatchObject({
      status: 'error',
      error_type: 'upstream_400:content_filter',
      cost_usd: '0',
    });
    expect(ok).toMatchObject({ status: 'ok', route: { tier: 'policy_fallback', fallback_hops: 1 } });
    // A prompt too long is not what a content-policy fallback is for: its 400 reaches the client.
    const long = await chat({ model: 'filtered-only' });
    expect(long.statusCode).toBe(400);
    expect(await long.body.json()).toMatchObject({ error: { code: 'context_length_exceeded' } });
  });

  it('takes the model for longer prompts on a context error alone, not on a 5xx', async () => {
    const before = mock.received.length;
    const res = await chat({ model: 'long-chat-500' });
    expect(res.statusCode).toBe(500);
    await res.body.dump();
    expect(mock.received.slice(before).map((r) => r.body['model'])).toEqual(['fault-500']);
  });

  it("takes Anthropic's prompt-too-long error for one, for the Anthropic and the OpenAI client alike", async () => {
    const res = await postMessage(base, key, { model: 'long-claude' });
    expect(res.statusCode).toBe(200);
    expect(((await res.body.json()) as { type: string }).type).toBe('message');
    const [ok, tooLong] = await lastCalls(2);
    expect(tooLong).toMatchObject({ status: 'error', error_type: 'upstream_400:invalid_request_error' });
    expect(ok).toMatchObject({
      status: 'ok',
      model_served: expect.stringMatching(/^claude-sonnet-4-5/),
      route: { tier: 'context_fallback', fallback_hops: 1 },
    });
    // Asked in OpenAI's format, translated for Claude: the same.
    const translated = await chat({ model: 'long-claude' });
    expect(translated.statusCode).toBe(200);
    expect(((await translated.body.json()) as { object: string }).object).toBe('chat.completion');
    expect((await lastCalls())[0]).toMatchObject({ status: 'ok', route: { tier: 'context_fallback' } });
  });

  it('answers the last error when no model for longer prompts takes the prompt, on the recorded request', async () => {
    // OpenAI's recorded refusal of a prompt (with 1,000,000,000 tokens of output asked) too long for
    // gpt-4, sent through a route whose models for longer prompts cannot take it either.
    const rec = chatRecordings().find(
      (r) =>
        r.request['model'] === 'gpt-4' &&
        (r.body as { error?: { code?: unknown } }).error?.code === 'context_length_exceeded',
    )!;
    const before = mock.received.length;
    const res = await request(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ...rec.request, model: 'gpt-4-long' }),
    });
    expect(res.statusCode).toBe(400);
    expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe(
      'context_length_exceeded',
    );
    expect(mock.received.slice(before).map((r) => r.body['model'])).toEqual([
      'gpt-4',
      'gpt-4o',
      'fault-context',
    ]);
    const calls = await lastCalls(3);
    expect(
      calls.map((c) => [c['status'], c['error_type'], (c['route'] as { tier: unknown }).tier, c['cost_usd']]),
    ).toEqual([
      ['error', 'upstream_400:context_length_exceeded', 'context_fallback', '0'],
      ['error', 'upstream_400:context_length_exceeded', 'context_fallback', '0'],
      ['error', 'upstream_400:context_length_exceeded', null, '0'],
    ]);
  });

  it("tries an upstream again, as its route's retries say, every try metered", async () => {
    const res = await chat({ model: 'retry-ok' });
    expect(res.statusCode).toBe(200);
    await res.body.json();
    const calls = await lastCalls(3);
    expect(calls.map((c) => [c['status'], c['error_type'], c['route']])).toEqual([
      ['ok', null, { tier: null, fallback_hops: 2 }],
      ['error', 'upstream_500:server_error', { tier: null, fallback_hops: 1 }],
      ['error', 'upstream_500:server_error', { tier: null, fallback_hops: 0 }],
    ]);
    expect(new Set(calls.map((c) => c['request_id']))).toEqual(new Set([calls[2]!['id']]));
    expect(Number(calls[0]!['cost_usd'])).toBeGreaterThan(0);
  });

  it('goes on to the fallback once the tries of an upstream are spent', async () => {
    const before = mock.received.length;
    const res = await chat({ model: 'retry-out' });
    expect(res.statusCode).toBe(200);
    await res.body.json();
    expect(mock.received.slice(before).map((r) => r.body['model'])).toEqual([
      'fault-500x5',
      'fault-500x5',
      'gpt-4o',
    ]);
    expect((await lastCalls())[0]).toMatchObject({
      status: 'ok',
      route: { tier: 'fallback', fallback_hops: 2 },
    });
  });

  it("waits what an upstream's retry-after asks before it tries again, up to retry_max_wait_ms", async () => {
    // The 429 asks for a second; the gateway waits 300 ms at most.
    const t0 = performance.now();
    const res = await chat({ model: 'retry-after' });
    expect(res.statusCode).toBe(200);
    await res.body.json();
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(300);
    expect(took).toBeLessThan(1000);
    const [ok, limited] = await lastCalls(2);
    expect(limited).toMatchObject({ status: 'error', error_type: 'upstream_429:rate_limit_exceeded' });
    expect(ok).toMatchObject({ status: 'ok', route: { fallback_hops: 1 } });
  });

  it("takes a request's own retries over its route's (x-tally-retries)", async () => {
    // No route sets retries here: the header asks for three.
    const more = await chat({ model: 'asked/fault-500x3' }, { 'x-tally-retries': '3' });
    expect(more.statusCode).toBe(200);
    await more.body.json();
    const calls = await lastCalls(4);
    expect(calls.map((c) => [c['status'], (c['route'] as { fallback_hops: number }).fallback_hops])).toEqual([
      ['ok', 3],
      ['error', 2],
      ['error', 1],
      ['error', 0],
    ]);
    // The route's one retry is asked away: its upstream once, then the fallback.
    const before = mock.received.length;
    const none = await chat({ model: 'asked-route' }, { 'x-tally-retries': '0' });
    expect(none.statusCode).toBe(200);
    await none.body.json();
    expect(mock.received.slice(before).map((r) => r.body['model'])).toEqual(['fault-500', 'gpt-4o']);
  });

  it("times out an attempt at the request's own timeout (x-tally-timeout-ms), then tries its fallback", async () => {
    // The provider sets no timeout (the gateway's is 10 minutes).
    const t0 = performance.now();
    const res = await chat({ model: 'asked2/fault-timeout' }, { 'x-tally-timeout-ms': '150' });
    expect(res.statusCode).toBe(504);
    expect(await res.body.json()).toMatchObject({ error: { code: 'upstream_timeout' } });
    // About 150 ms: not ten minutes, nor the second late undici's own timers would be.
    expect(performance.now() - t0).toBeLessThan(700);
    const saved = await chat(
      { model: 'asked2/fault-timeout' },
      { 'x-tally-timeout-ms': '150', 'x-tally-fallbacks': 'gpt-4o' },
    );
    expect(saved.statusCode).toBe(200);
    await saved.body.json();
    const [ok, timedOut] = await lastCalls(2);
    expect(timedOut).toMatchObject({
      status: 'error',
      error_type: 'upstream_timeout',
      model_requested: 'asked2/fault-timeout',
    });
    expect(ok).toMatchObject({
      status: 'ok',
      model_served: expect.stringMatching(/^gpt-4o/),
      route: { tier: 'fallback', fallback_hops: 1 },
    });
    await until(() => mock.openResponses === 0);
  });

  it("tries the fallbacks a request names (x-tally-fallbacks) after its route's own, each once", async () => {
    const before = mock.received.length;
    const res = await chat(
      { model: 'asked-route' },
      // gpt-4o is the route's own fallback already: it is not tried twice.
      { 'x-tally-fallbacks': 'gpt-4o, cutter/gpt-4o-mini', 'x-tally-retries': '0' },
    );
    expect(res.statusCode).toBe(200);
    await res.body.json();
    expect(mock.received.slice(before).map((r) => r.body['model'])).toEqual(['fault-500', 'gpt-4o']);
    // When the route's own cannot answer, the request's fallbacks come next, in order.
    const after = mock.received.length;
    const next = await chat(
      { model: 'asked/fault-500' },
      { 'x-tally-fallbacks': 'asked2/fault-500,cutter/gpt-4o-mini' },
    );
    expect(next.statusCode).toBe(200);
    await next.body.json();
    expect(mock.received.slice(after).map((r) => r.body['model'])).toEqual([
      'fault-500',
      'fault-500',
      'gpt-4o-mini',
    ]);
    expect((await lastCalls(3)).map((c) => [c['model_requested'], c['route']])).toEqual([
      ['asked/fault-500', { tier: 'fallback', fallback_hops: 2 }],
      ['asked/fault-500', { tier: 'fallback', fallback_hops: 1 }],
      ['asked/fault-500', { tier: null, fallback_hops: 0 }],
    ]);
  });

  it('refuses a routing header that is not well formed, or a fallback the key may not use, sending nothing', async () => {
    const before = mock.received.length;
    for (const [header, value] of [
      ['x-tally-retries', '11'],
      ['x-tally-retries', 'two'],
      ['x-tally-timeout-ms', '0'],
      ['x-tally-timeout-ms', '1.5'],
      ['x-tally-fallbacks', ' , '],
      ['x-tally-fallbacks', 'a,b,c,d,e,f'],
    ] as const) {
      const res = await chat({ model: 'gpt-4o' }, { [header]: value });
      expect(res.statusCode, `${header}: ${value}`).toBe(400);
      const body = (await res.body.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('invalid_header');
      expect(body.error.message).toContain(header);
    }
    const refused = await lastCalls();
    expect(refused[0]).toMatchObject({
      status: 'refused',
      error_type: 'invalid_header',
      model_requested: 'gpt-4o',
    });
    // A key held to some models may not reach another through a fallback.
    const held = (
      await t.app.inject({
        method: 'POST',
        url: '/v1/keys',
        headers: t.auth,
        payload: { project: 'p', models: ['gpt-4o'] },
      })
    ).json().key;
    const res = await postChat(base, held, { model: 'gpt-4o' }, { 'x-tally-fallbacks': 'claude-sonnet-4-5' });
    expect(res.statusCode).toBe(403);
    expect(await res.body.json()).toMatchObject({ error: { code: 'model_not_allowed' } });
    // A fallback no provider serves is named.
    const none = await chat({ model: 'gpt-4o' }, { 'x-tally-fallbacks': 'ghost' });
    expect(none.statusCode).toBe(404);
    expect(await none.body.json()).toMatchObject({
      error: { code: 'model_not_found', message: expect.stringContaining('nosuch') },
    });
    expect(mock.received.length).toBe(before);
  });

  it("gives up a stream that opens with an overloaded error for the plan's next, the client none the wiser", async () => {
    // Anthropic's client, then OpenAI's translated for Claude.
    const messages = await postMessage(base, key, { model: 'overloaded-claude', stream: true });
    expect(messages.statusCode).toBe(200);
    const told = await messages.body.text();
    expect(told).toContain('event: message_stop');
    expect(told).not.toContain('overloaded');
    const chat2 = await chat({ model: 'overloaded-claude', stream: true });
    expect(chat2.statusCode).toBe(200);
    const chatTold = await chat2.body.text();
    expect(chatTold).toContain('data: [DONE]');
    expect(chatTold).not.toContain('error');
    // Each client's call: the overloaded attempt at $0, then the fallback's answer.
    const calls = await lastCalls(4);
    expect(calls.map((c) => [c['status'], c['error_type'], c['route'], c['cost_usd'] === '0'])).toEqual([
      ['ok', null, { tier: 'fallback', fallback_hops: 1 }, false],
      ['error', 'upstream_stream_error:overloaded_error', { tier: null, fallback_hops: 0 }, true],
      ['ok', null, { tier: 'fallback', fallback_hops: 1 }, false],
      ['error', 'upstream_stream_error:overloaded_error', { tier: null, fallback_hops: 0 }, true],
    ]);
  });

  it("tries an upstream again whose stream opened with a server error chunk, as its request's retries say", async () => {
    const res = await chat({ model: 'asked/fault-stream-errorx1', stream: true }, { 'x-tally-retries': '1' });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toContain('data: [DONE]');
    const [ok, failed] = await lastCalls(2);
    expect(failed).toMatchObject({
      status: 'error',
      error_type: 'upstream_stream_error:server_error',
      route: { fallback_hops: 0 },
    });
    expect(ok).toMatchObject({ status: 'ok', route: { fallback_hops: 1 } });
    // With nothing left to try, the error is passed on as it came.
    const last = await chat({ model: 'asked/fault-stream-error', stream: true });
    expect(last.statusCode).toBe(200);
    expect(await last.body.text()).toContain('"server_error"');
    expect((await lastCalls())[0]).toMatchObject({ status: 'error', error_type: 'upstream_stream_error' });
  });

  it('gives up an Anthropic stream overloaded past its message_start, which is held back until then', async () => {
    const messages = await postMessage(base, key, { model: 'overloaded-late', stream: true });
    const told = await messages.body.text();
    expect(told).toContain('event: message_stop');
    expect(told).not.toContain('overloaded');
    expect(told).not.toContain('msg_overloaded');
    expect(told.split('event: message_start').length - 1).toBe(1);
    const translated = await chat({ model: 'overloaded-late', stream: true });
    const chatTold = await translated.body.text();
    expect(chatTold).toContain('data: [DONE]');
    expect(chatTold).not.toContain('error');
    const calls = await lastCalls(4);
    expect(calls.map((c) => [c['status'], c['error_type'], c['route']])).toEqual([
      ['ok', null, { tier: 'fallback', fallback_hops: 1 }],
      ['error', 'upstream_stream_error:overloaded_error', { tier: null, fallback_hops: 0 }],
      ['ok', null, { tier: 'fallback', fallback_hops: 1 }],
      ['error', 'upstream_stream_error:overloaded_error', { tier: null, fallback_hops: 0 }],
    ]);
  });

  it("gives up a stream that sends nothing within the attempt's timeout after its head, for the plan's next", async () => {
    const t0 = performance.now();
    const res = await chat(
      { model: 'asked2/fault-silent-stream', stream: true },
      { 'x-tally-timeout-ms': '200', 'x-tally-fallbacks': 'gpt-4o' },
    );
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toContain('data: [DONE]');
    expect(performance.now() - t0).toBeLessThan(1000);
    const [ok, stalled] = await lastCalls(2);
    expect(stalled).toMatchObject({
      status: 'error',
      error_type: 'upstream_timeout',
      route: { fallback_hops: 0 },
    });
    expect(ok).toMatchObject({ status: 'ok', route: { tier: 'fallback', fallback_hops: 1 } });
    await until(() => mock.openResponses === 0);
  });

  it('gives up a Responses stream that fails past its opening events (a rate limit), keeping those back until then', async () => {
    const responses = (model: string, headers: Record<string, string> = {}) =>
      request(`${base}/v1/responses`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ model, input: 'Say a few words.', stream: true }),
      });
    const saved = await responses('asked/fault-stream-error', { 'x-tally-fallbacks': 'gpt-4o' });
    expect(saved.statusCode).toBe(200);
    const told = await saved.body.text();
    expect(told).not.toContain('rate_limit_exceeded');
    expect(told).not.toContain('resp_mock_failed');
    // The fallback's stream, whole and in order: its opening events first.
    const order = ['response.created', 'response.output_text.delta', 'response.completed'].map((e) =>
      told.indexOf(`event: ${e}`),
    );
    expect(order[0]).toBeGreaterThanOrEqual(0);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    const [ok, failed] = await lastCalls(2);
    expect(failed).toMatchObject({
      status: 'error',
      error_type: 'upstream_stream_error:rate_limit_exceeded',
      cost_usd: '0',
      route: { fallback_hops: 0 },
    });
    expect(ok).toMatchObject({ status: 'ok', route: { tier: 'fallback', fallback_hops: 1 } });
    // With nothing left to try, the stream is passed on as it came, its opening events at once.
    const alone = await responses('asked/fault-stream-error');
    const aloneTold = await alone.body.text();
    expect(aloneTold.indexOf('event: response.created')).toBe(0);
    expect(aloneTold).toContain('rate_limit_exceeded');
  });

  it('passes an upstream 500 on and records the failed call at no cost', async () => {
    const res = await chat({ model: 'fault-500' });
    expect(res.statusCode).toBe(500);
    expect(await res.body.json()).toMatchObject({ error: { message: 'mock 500' } });
    const call = (await lastCalls())[0]!;
    expect(call).toMatchObject({
      status: 'error',
      error_type: 'upstream_500:server_error',
      cost_usd: '0',
      pricing_status: 'priced',
    });
  });

  it('times out an upstream that never answers, with a 504', async () => {
    const res = await chat({ model: 'fault-timeout' });
    expect(res.statusCode).toBe(504);
    expect(await res.body.json()).toMatchObject({ error: { code: 'upstream_timeout' } });
    const call = (await lastCalls())[0]!;
    expect(call).toMatchObject({ status: 'error', error_type: 'upstream_timeout' });
    // The error names the request, as an answer would.
    expect(res.headers['x-tally-request-id']).toBe(call['id']);
    expect(call['request_id']).toBe(call['id']);
    await until(() => mock.openResponses === 0);
  });

  it('relays malformed SSE and records the call as an estimated error', async () => {
    const res = await chat({ model: 'fault-malformed', stream: true });
    const text = await res.body.text();
    expect(text).toContain('broken');
    expect(text).toContain(' world');
    const call = (await lastCalls())[0]!;
    expect(call).toMatchObject({ status: 'error', error_type: 'malformed_sse', pricing_status: 'estimated' });
    expect(call.tokens.output).toBeGreaterThan(0);
  });

  it('bills a stream the client cuts off from the tokens seen so far, and closes the upstream', async () => {
    const res = await chat({ model: 'fault-slow', stream: true });
    let seen = 0;
    for await (const chunk of res.body) {
      seen += String(chunk).split('data: ').length - 1;
      if (seen >= 5) break; // leaving the loop destroys the connection
    }
    await until(() => mock.openResponses === 0);
    const call = (await lastCalls())[0]!;
    expect(call).toMatchObject({
      status: 'error',
      error_type: 'client_disconnected',
      pricing_status: 'estimated',
    });
    expect(call.tokens.output).toBeGreaterThanOrEqual(5);
    expect(call.tokens.input).toBeGreaterThan(0);
    expect(Number(call['cost_usd'])).toBeGreaterThan(0);
  });

  it("answers an Anthropic client's call to an OpenAI model that failed in Anthropic's error format", async () => {
    const res = await postMessage(base, key, { model: 'openai/fault-500' });
    expect(res.statusCode).toBe(500);
    expect(await res.body.json()).toEqual({
      type: 'error',
      error: { type: 'api_error', message: 'mock 500' },
    });
    expect((await lastCalls())[0]).toMatchObject({
      status: 'error',
      error_type: 'upstream_500:server_error',
      api: 'openai-chat',
    });
  });

  it("bills an Anthropic client's stream from an OpenAI model that it cuts off, and closes the upstream", async () => {
    const res = await postMessage(base, key, { model: 'openai/fault-slow', stream: true });
    expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
    let seen = '';
    for await (const chunk of res.body) {
      seen += String(chunk);
      if (seen.split('event: content_block_delta').length > 5) break;
    }
    expect(seen).toMatch(/^event: message_start\n/);
    await until(() => mock.openResponses === 0);
    const call = (await lastCalls())[0]!;
    expect(call).toMatchObject({
      status: 'error',
      error_type: 'client_disconnected',
      pricing_status: 'estimated',
      api: 'openai-chat',
    });
    expect(call.tokens.output).toBeGreaterThanOrEqual(5);
    expect(Number(call['cost_usd'])).toBeGreaterThan(0);
  });

  it('serves a slow reader in full and meters it once', async () => {
    const res = await chat({ model: 'gpt-4o', stream: true });
    let text = '';
    for await (const chunk of res.body) {
      text += String(chunk);
      await new Promise((r) => setTimeout(r, 15));
    }
    expect(text.trim().endsWith('data: [DONE]')).toBe(true);
    const call = (await lastCalls())[0]!;
    expect(call).toMatchObject({ status: 'ok', pricing_status: 'priced' });
  });

  it('passes the last event on at once when the upstream holds back the end of its body', async () => {
    const res = await chat({ model: 'fault-late-end', stream: true });
    let text = '';
    let doneAt = 0;
    for await (const chunk of res.body) {
      text += String(chunk);
      if (!doneAt && text.includes('data: [DONE]')) doneAt = performance.now();
    }
    const endAt = performance.now();
    expect(doneAt).toBeGreaterThan(0);
    // The mock ends its body 300 ms after [DONE]: the event must not have waited for it.
    expect(endAt - doneAt).toBeGreaterThan(150);
    expect(text).not.toContain('"usage"');
    const call = (await lastCalls())[0]!;
    expect(call).toMatchObject({ status: 'ok', pricing_status: 'priced', model_served: 'gpt-4o-2024-08-06' });
    expect(call.tokens).toMatchObject({ input: 12, output: 2 });
  });

  it('keeps multi-byte text whole when events and characters are cut across chunks', async () => {
    const res = await chat({ model: 'fault-split-utf8', stream: true });
    const text = await res.body.text();
    const content = text
      .split('\n\n')
      .filter((e) => e.startsWith('data: {'))
      .map((e) => JSON.parse(e.slice(6)).choices[0]?.delta?.content ?? '')
      .join('');
    expect(content).toBe('héllo 😀 日本語 — ok');
    // The usage chunk the gateway asked for is not the client's: it is hidden, and metered.
    expect(text).not.toContain('"usage"');
    expect(text.trim().endsWith('data: [DONE]')).toBe(true);
    const call = (await lastCalls())[0]!;
    expect(call).toMatchObject({ status: 'ok', pricing_status: 'priced' });
    expect(call.tokens).toMatchObject({ input: 12, output: 4 });
  });

  it('records a stream the upstream drops mid-way as an estimated error, and cuts the client off too', async () => {
    const res = await chat({ model: 'fault-cut', stream: true });
    expect(res.statusCode).toBe(200);
    // The client's connection is broken as the upstream's was: its read fails, rather than ending
    // as if the answer were whole.
    await expect(res.body.text()).rejects.toThrow();
    const call = (await lastCalls())[0]!;
    expect(call).toMatchObject({ status: 'error', pricing_status: 'estimated' });
    expect(String(call['error_type'])).toMatch(/upstream_stream_error|upstream_no_usage/);
    await until(() => mock.openResponses === 0);
  });

  it('estimates a cut-off Claude stream with the cache reads its message_start gave', async () => {
    const res = await postMessage(base, key, { model: 'fault-cut', stream: true });
    await expect(res.body.text()).rejects.toThrow();
    const call = (await lastCalls())[0]!;
    expect(call).toMatchObject({
      status: 'error',
      error_type: 'upstream_stream_error',
      pricing_status: 'unpriced',
    });
    // 2,095 uncached and 1,800 cached prompt tokens, as the upstream counted them; the output from
    // the text seen ("Hello, ", three tokens).
    expect(call.tokens).toMatchObject({ input: 3895, cache_read: 1800, output: 3 });
    // Cache writes kept for an hour, which cost more than the five-minute ones, stay apart.
    const res1h = await postMessage(base, key, { model: 'fault-cut-1h', stream: true });
    await expect(res1h.body.text()).rejects.toThrow();
    expect((await lastCalls())[0]!.tokens).toMatchObject({
      input: 8895,
      cache_read: 1800,
      cache_write: 5000,
      cache_write_1h: 5000,
      output: 3,
    });
  });

  it('answers a caller without a key before reading its body, and refuses a model name with control characters', async () => {
    // A body that never ends: the 401 comes at once, not after the body.
    const { Readable } = await import('node:stream');
    const endless = new Readable({ read() {} });
    endless.push('{"model":"gpt-4o","messages":[');
    const res = await request(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: endless,
    });
    expect(res.statusCode).toBe(401);
    expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe('invalid_api_key');
    endless.destroy();
    for (const model of ['gpt-4o\r\nset-cookie: x=1', 'gpt\u0000', 'm'.repeat(257)]) {
      const bad = await chat({ model, messages: [{ role: 'user', content: 'Hi' }] });
      expect(bad.statusCode).toBe(400);
      expect(((await bad.body.json()) as { error: { code: string } }).error.code).toBe('invalid_model');
    }
  });

  it('reserves a budget for every choice a call asks for, and for its images', async () => {
    const { id, key: held } = await t.newKey({ project: 'reserve-all' });
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/budgets',
      headers: t.auth,
      payload: { scope: 'key', subject: id, limit_usd: '0.03', action: 'block' },
    });
    expect(res.statusCode).toBe(201);
    const ask = async (body: Record<string, unknown>) => {
      const r = await postChat(base, held, {
        model: 'gpt-4o',
        messages: [{ role: 'user', content: 'Hi' }],
        ...body,
      });
      return { status: r.statusCode, text: await r.body.text() };
    };
    // One answer of 1,000 tokens at most fits under $0.03 ($0.01 of output); eight do not.
    expect((await ask({ max_tokens: 1000 })).status).toBe(200);
    const eight = await ask({ max_tokens: 1000, n: 8 });
    expect(eight.status).toBe(429);
    expect(eight.text).toMatch(/may cost up to \$0\.080\d*/);
    // Ten high-detail images may be billed as 1,445 tokens each: $0.036 of prompt, over $0.03.
    const image = { type: 'image_url', image_url: { url: 'https://example.com/a.png', detail: 'high' } };
    const images = await ask({
      max_tokens: 10,
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'What is this?' }, ...Array(10).fill(image)] },
      ],
    });
    expect(images.status).toBe(429);
    expect(images.text).toMatch(/may cost up to \$0\.036\d*/);
    // An output limit past what any usage may hold is a cost no budget holds, not a failure.
    const absurd = await ask({ max_tokens: 1e12, n: 128 });
    expect(absurd.status).toBe(429);
    expect(absurd.text).toMatch(/may cost up to \$/);
  });

  it('falls back on a 5xx and on a connection error, recording every attempt', async () => {
    const res = await chat({ model: 'resilient' });
    expect(res.statusCode).toBe(200);
    await res.body.json();
    const [ok, failed] = await lastCalls(2);
    expect(failed).toMatchObject({
      status: 'error',
      error_type: 'upstream_500:server_error',
      route: { tier: null, fallback_hops: 0 },
      model_requested: 'resilient',
    });
    expect(ok).toMatchObject({ status: 'ok', route: { tier: 'fallback', fallback_hops: 1 } });
    // The two attempts are one request: the first attempt's id, which the answer names.
    const requestId = res.headers['x-tally-request-id'];
    expect(requestId).toBe(failed!['id']);
    expect(res.headers['x-tally-call-id']).toBe(ok!['id']);
    expect([ok!['request_id'], failed!['request_id']]).toEqual([requestId, requestId]);
    const listed = await t.app.inject({ url: `/v1/calls?request_id=${requestId}`, headers: t.auth });
    expect(listed.json().data.map((c: { id: string }) => c.id)).toEqual([ok!['id'], failed!['id']]);
    const res2 = await chat({ model: 'unreachable' });
    expect(res2.statusCode).toBe(200);
    await res2.body.json();
    const [ok2, failed2] = await lastCalls(2);
    expect(failed2).toMatchObject({ status: 'error', error_type: 'upstream_connection_error' });
    expect(ok2).toMatchObject({ status: 'ok', route: { fallback_hops: 1 } });
  });

  it('opens the circuit on an upstream that keeps failing, and stops sending it calls', async () => {
    // 'resilient' sends to flaky (a 500 every time) and falls back. After five failures in a row
    // the breaker opens, and calls go straight to the fallback.
    for (let i = 0; i < 5; i++) await (await chat({ model: 'resilient' })).body.dump();
    const before = mock.received.length;
    const res = await chat({ model: 'resilient' });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    const sent = mock.received.slice(before);
    expect(sent.map((r) => r.body['model'])).toEqual(['gpt-4o']);
    // The metrics say so, upstream by upstream.
    const metrics = (await t.app.inject({ url: '/metrics' })).body;
    expect(metrics).toMatch(/^tally_gateway_upstream_circuit_open\{provider="flaky"\} 1$/m);
    expect(metrics).toMatch(/^tally_gateway_upstream_circuit_open\{provider="openai"\} 0$/m);
    expect(metrics).toMatch(/^tally_gateway_upstream_failures\{provider="flaky"\} ([5-9]|\d\d)$/m);
    expect(metrics).toMatch(/^tally_gateway_upstream_failures\{provider="openai"\} 0$/m);
    // And every attempt, by upstream, tier and outcome: flaky's 500s, then the fallback's answers.
    const attempts = (labels: string) =>
      Number(
        new RegExp(`^tally_gateway_upstream_attempts_total\\{${labels}\\} (\\d+)$`, 'm').exec(metrics)?.[1],
      );
    expect(attempts('provider="flaky",tier="primary",outcome="upstream_500"')).toBeGreaterThanOrEqual(5);
    expect(attempts('provider="openai",tier="fallback",outcome="ok"')).toBeGreaterThanOrEqual(6);
    expect(
      attempts('provider="asked",tier="primary",outcome="upstream_stream_error"'),
    ).toBeGreaterThanOrEqual(1);
  });

  it('estimates a whole answer that comes without usage from its text, rather than pricing it at nothing', async () => {
    const res = await chat({ model: 'fault-no-usage' });
    expect(res.statusCode).toBe(200);
    await res.body.json();
    const call = (await lastCalls())[0]!;
    expect(call).toMatchObject({
      status: 'ok',
      error_type: 'upstream_no_usage',
      pricing_status: 'estimated',
      model_served: 'gpt-4o-2024-08-06',
    });
    // "Hello there, friend." is five tokens; the prompt is counted by the tokenizer.
    expect(call.tokens.output).toBe(5);
    expect(call.tokens.input).toBeGreaterThan(0);
    expect(Number(call['cost_usd'])).toBeGreaterThan(0);
  });

  it('tries the next upstream when a whole answer breaks off before anything reached the client', async () => {
    const res = await chat({ model: 'cut-then-ok' });
    expect(res.statusCode).toBe(200);
    await res.body.json();
    const [ok, cut] = await lastCalls(2);
    expect(cut).toMatchObject({ status: 'error', error_type: 'upstream_body_error' });
    expect(ok).toMatchObject({ status: 'ok', route: { tier: 'fallback', fallback_hops: 1 } });
  });

  it('counts the prompt of a stream its client leaves before the upstream answers', async () => {
    await leftAfter100ms({ model: 'fault-timeout', stream: true });
    let call: ListedCall | undefined;
    for (let i = 0; i < 100 && call?.['error_type'] !== 'client_disconnected'; i++) {
      await new Promise((r) => setTimeout(r, 20));
      call = (await lastCalls())[0];
    }
    expect(call).toMatchObject({ error_type: 'client_disconnected' });
    expect(call!.tokens.input).toBeGreaterThan(0);
    expect(call!.tokens.output).toBe(0);
  });

  it('sends no fallback for a client that has gone, plain or streamed', async () => {
    for (const stream of [false, true]) {
      const before = mock.received.length;
      await leftAfter100ms(
        { model: 'asked2/fault-timeout', stream },
        { 'x-tally-timeout-ms': '300', 'x-tally-fallbacks': 'cutter/gpt-4o-mini' },
      );
      // Past the first attempt's timeout: the fallback would have gone by now.
      await new Promise((r) => setTimeout(r, 600));
      expect(
        mock.received.slice(before).map((r) => r.body['model']),
        stream ? 'streamed' : 'plain',
      ).toEqual(['fault-timeout']);
      const [last] = await lastCalls();
      expect(last).toMatchObject({
        model_requested: 'asked2/fault-timeout',
        error_type: stream ? 'client_disconnected' : 'upstream_timeout',
      });
    }
  });

  it('leaves out a Claude fallback that cannot take the request, rather than hiding the error before it', async () => {
    const plain = await chat({ model: 'to-claude' });
    expect(plain.statusCode).toBe(200);
    await plain.body.dump();
    // A "function" message has no Anthropic form: the first upstream's 500 is the answer.
    const res = await chat({ model: 'to-claude', messages: [{ role: 'function', name: 'f', content: 'x' }] });
    expect(res.statusCode).toBe(500);
    expect(await res.body.json()).toMatchObject({ error: { message: 'mock 500' } });
  });

  it('says which providers a route names that are not configured', async () => {
    const res = await chat({ model: 'ghost' });
    expect(res.statusCode).toBe(404);
    expect(await res.body.json()).toMatchObject({
      error: { code: 'model_not_found', message: expect.stringContaining('names provider nosuch') },
    });
    // A model for longer prompts stands in for none of the route's own.
    const long = await chat({ model: 'ghost-long' });
    expect(long.statusCode).toBe(404);
    expect(await long.body.json()).toMatchObject({ error: { code: 'model_not_found' } });
  });

  it('leaves no upstream response open', async () => {
    await until(() => mock.openResponses === 0);
  });
});
