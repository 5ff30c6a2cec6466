import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MemoryState } from '@tally/gateway';
import { MockUpstream, SKIP_WITHOUT_RECORDINGS } from '@tally/gateway/testing';
import OpenAI from 'openai';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { foreignKey, lastCalls, mockedGateway, type TestApp, testApp } from '../testing/test-app.js';

type Event = Record<string, unknown> & { type: string };

describe.skipIf(SKIP_WITHOUT_RECORDINGS)('gateway: realtime sessions', () => {
  const mock = new MockUpstream();
  let t: TestApp;
  let base: string;

  beforeAll(async () => {
    await mock.start();
    ({ t, base } = await mockedGateway(mock.url));
  });
  afterAll(async () => {
    await t?.shutdown();
    await mock.stop();
  });

  /** A session as the openai client opens one (its URL, its headers), with its events as they come;
   * through this test's gateway, or the one at `at`. */
  const open = async (key: string, model = 'gpt-realtime', protocols?: string[], at = base) => {
    const ws = new WebSocket(
      `${at.replace('http', 'ws')}/v1/realtime?model=${model}`,
      protocols,
      protocols ? {} : { headers: { authorization: `Bearer ${key}` } },
    );
    const events: Event[] = [];
    ws.on('message', (d) => events.push(JSON.parse(d.toString()) as Event));
    const closed = once(ws, 'close') as Promise<[number, Buffer]>;
    await once(ws, 'open');
    const next = async (type: string): Promise<Event> => {
      for (let i = 0; i < 200; i++) {
        const at = events.findIndex((e) => e.type === type);
        if (at >= 0) return events.splice(at, 1)[0]!;
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error(`no ${type} came`);
    };
    return { ws, next, closed, send: (e: object) => ws.send(JSON.stringify(e)) };
  };
  /** Sets a session's input audio to G.711 (8,000 bytes a second). */
  const g711 = async (s: Awaited<ReturnType<typeof open>>) => {
    s.send({
      type: 'session.update',
      session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcmu' } } } },
    });
    await s.next('session.updated');
  };
  /** Why an upgrade was refused: its HTTP status and error code. */
  const refusal = async (url: string, headers: Record<string, string>) => {
    const ws = new WebSocket(url, { headers });
    ws.on('error', () => undefined);
    const [, res] = (await once(ws, 'unexpected-response')) as [unknown, import('node:http').IncomingMessage];
    let body = '';
    for await (const c of res) body += c;
    ws.terminate();
    return { status: res.statusCode, code: (JSON.parse(body) as { error: { code: string } }).error.code };
  };

  it("relays a session both ways with the provider's key, and meters each response from its usage", async () => {
    const { key } = await t.newKey({ project: 'voice' });
    const s = await open(key);
    expect((await s.next('session.created'))['session']).toMatchObject({ model: 'gpt-realtime' });
    const upstream = mock.realtime.sessions.at(-1)!;
    expect(upstream.url).toBe('/v1/realtime?model=gpt-realtime');
    expect((await t.app.inject({ url: '/metrics' })).body).toMatch(/^tally_gateway_realtime_sessions 1$/m);
    expect(upstream.headers.authorization).toBe('Bearer sk-upstream');
    s.send({ type: 'session.update', session: { type: 'realtime', instructions: 'Be brief.' } });
    await s.next('session.updated');
    // Audio goes as it came, binary frames too.
    s.ws.send(Buffer.alloc(3200, 1));
    s.send({ type: 'response.create' });
    const done = await s.next('response.done');
    expect(done['response']).toMatchObject({ status: 'completed' });
    s.send({ type: 'response.create' });
    await s.next('response.done');
    s.ws.close();
    expect(upstream.events.map((e) => e['type'])).toEqual([
      'session.update',
      'response.create',
      'response.create',
    ]);
    expect(upstream.binary).toBe(1);
    const calls = await lastCalls(t, 2);
    for (const c of calls)
      expect(c).toMatchObject({
        api: 'openai-realtime',
        model_requested: 'gpt-realtime',
        status: 'ok',
        pricing_status: 'priced',
        project: 'voice',
        tokens: { input: 120, output: 60, input_audio: 100, output_audio: 50 },
        // 20 text tokens in at $4, 100 audio at $32; 10 text out at $16, 50 audio at $64 a million.
        cost_usd: '0.00664',
      });
    // One session: its responses share its request id.
    expect(calls[0]!.request_id).toBe(calls[1]!.request_id);
    expect(calls[0]!.id).not.toBe(calls[1]!.id);
    // Closed by the client: the provider's side is closed too, and nothing stays open.
    for (let i = 0; i < 100 && mock.realtime.open > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(mock.realtime.open).toBe(0);
    expect(t.gateway.realtime.size).toBe(0);
    expect((await t.app.inject({ url: '/metrics' })).body).toMatch(/^tally_gateway_realtime_sessions 0$/m);
  });

  it("meters the session's input audio transcriptions as calls of the model that made them", async () => {
    const { key } = await t.newKey({ project: 'voice' });
    const s = await open(key);
    await s.next('session.created');
    s.send({
      type: 'session.update',
      session: { type: 'realtime', audio: { input: { transcription: { model: 'gpt-4o-transcribe' } } } },
    });
    await s.next('session.updated');
    s.send({ type: 'input_audio_buffer.append', audio: Buffer.alloc(9600).toString('base64') });
    s.send({ type: 'input_audio_buffer.commit' });
    await s.next('conversation.item.input_audio_transcription.completed');
    s.send({ type: 'response.create' });
    await s.next('response.done');
    s.ws.close();
    const [response, transcript] = await lastCalls(t, 2);
    expect(transcript).toMatchObject({
      api: 'openai-transcriptions',
      model_requested: 'gpt-4o-transcribe',
      status: 'ok',
      pricing_status: 'priced',
      project: 'voice',
      tokens: { input: 40, input_audio: 40, output: 12 },
      // 40 audio tokens at $6 and 12 text tokens out at $10 a million.
      cost_usd: '0.00036',
    });
    expect(response).toMatchObject({ api: 'openai-realtime', request_id: transcript!.request_id });
  });

  it('opens a transcription session, which names no model, and meters its transcriptions', async () => {
    const { key } = await t.newKey({ project: 'captions', budget_usd: 1, period: 'month' });
    const ws = new WebSocket(`${base.replace('http', 'ws')}/v1/realtime?intent=transcription`, {
      headers: { authorization: `Bearer ${key}` },
    });
    const events: Event[] = [];
    ws.on('message', (d) => events.push(JSON.parse(d.toString()) as Event));
    await once(ws, 'open');
    const upstream = mock.realtime.sessions.at(-1)!;
    expect(upstream.url).toBe('/v1/realtime?intent=transcription');
    const send = (e: object) => ws.send(JSON.stringify(e));
    send({
      type: 'session.update',
      session: { type: 'transcription', audio: { input: { transcription: { model: 'gpt-4o-transcribe' } } } },
    });
    send({ type: 'input_audio_buffer.append', audio: Buffer.alloc(9600).toString('base64') });
    send({ type: 'input_audio_buffer.commit' });
    for (let i = 0; i < 100 && !events.some((e) => e.type.endsWith('transcription.completed')); i++)
      await new Promise((r) => setTimeout(r, 10));
    ws.close();
    expect((await lastCalls(t, 1))[0]).toMatchObject({
      api: 'openai-transcriptions',
      model_requested: 'gpt-4o-transcribe',
      project: 'captions',
      cost_usd: '0.00036',
    });
  });

  it('closes a transcription session whose settings name a model the key may not use', async () => {
    const { key } = await t.newKey({ models: ['gpt-4o-mini-transcribe'] });
    const ws = new WebSocket(`${base.replace('http', 'ws')}/v1/realtime?intent=transcription`, {
      headers: { authorization: `Bearer ${key}` },
    });
    const closed = once(ws, 'close') as Promise<[number, Buffer]>;
    await once(ws, 'open');
    ws.send(
      JSON.stringify({
        type: 'session.update',
        session: {
          type: 'transcription',
          audio: { input: { transcription: { model: 'gpt-4o-transcribe' } } },
        },
      }),
    );
    const [code, reason] = await closed;
    expect([code, reason.toString()]).toEqual([1008, 'model_not_allowed']);
  });

  it("reserves each response's largest cost as it starts, and cancels one its budget cannot hold", async () => {
    // A response with no output limit holds 4,096 audio tokens at $64 a million ($0.262): past
    // $0.05, so it is cancelled at the provider, and the client told why; the session goes on.
    const { key } = await t.newKey({ budget_usd: 0.05, period: 'month' });
    const s = await open(key);
    await s.next('session.created');
    s.send({ type: 'response.create' });
    expect((await s.next('error'))['error']).toMatchObject({ code: 'budget_exceeded' });
    // What it made before the cancel is metered.
    await s.next('response.done');
    const upstream = mock.realtime.sessions.at(-1)!;
    for (let i = 0; i < 100 && upstream.events.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(upstream.events.at(-1)).toMatchObject({
      type: 'response.cancel',
      response_id: expect.any(String),
    });
    // A response that fits goes as any.
    s.send({ type: 'response.create', response: { max_output_tokens: 200 } });
    expect((await s.next('response.done'))['response']).toMatchObject({ status: 'completed' });
    s.ws.close();
    const [second, first] = await lastCalls(t, 2);
    expect([first!.cost_usd, second!.cost_usd]).toEqual(['0.00664', '0.00664']);
    const budgets = (await t.app.inject({ method: 'GET', url: '/v1/budgets', headers: t.auth })).json() as {
      data: { subject: string; spent_usd: string; in_flight_usd: string }[];
    };
    // Nothing stays held once the responses are done.
    expect(budgets.data.find((b) => b.subject === first!.key_id)).toMatchObject({
      spent_usd: '0.01328',
      in_flight_usd: '0',
    });
  });

  it('reserves the input added since the last response, and meters a response cut off with its session from what it relayed', async () => {
    const { key, id } = await t.newKey({ budget_usd: 1, period: 'month' });
    const budget = async () => {
      const res = await t.app.inject({ method: 'GET', url: '/v1/budgets', headers: t.auth });
      const all = (res.json() as { data: { subject: string; spent_usd: string; in_flight_usd: string }[] })
        .data;
      return all.find((b) => b.subject === id)!;
    };
    const s = await open(key);
    await s.next('session.created');
    await g711(s);
    // A second of audio, committed, and a text item of 3 tokens; audio appended and cleared counts
    // for nothing.
    const second = Buffer.alloc(8000, 1).toString('base64');
    s.send({ type: 'input_audio_buffer.append', audio: second });
    s.send({ type: 'input_audio_buffer.clear' });
    await s.next('input_audio_buffer.cleared');
    s.send({ type: 'input_audio_buffer.append', audio: second });
    s.send({ type: 'input_audio_buffer.commit' });
    await s.next('input_audio_buffer.committed');
    s.send({
      type: 'conversation.item.create',
      item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hello there.' }] },
    });
    s.send({ type: 'response.create', response: { instructions: 'slow', max_output_tokens: 100 } });
    await s.next('response.created');
    // Held while it runs: 10 audio tokens in at $32 a million and 3 text at $4, and 100 audio
    // tokens out at $64: $0.00032 + $0.000012 + $0.0064.
    for (let i = 0; i < 100 && (await budget()).in_flight_usd === '0'; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect((await budget()).in_flight_usd).toBe('0.006732');
    await s.next('response.output_audio_transcript.delta');
    s.ws.close();
    await s.closed;
    // Cut off before its usage came: metered from its input as reserved, and what it relayed, a
    // tenth of a second of 24 kHz audio (2 tokens at 20 a second) and "Hello there." (3 tokens).
    for (let i = 0; i < 100 && (await budget()).in_flight_usd !== '0'; i++)
      await new Promise((r) => setTimeout(r, 10));
    const [cut] = await lastCalls(t, 1);
    expect(cut).toMatchObject({
      api: 'openai-realtime',
      status: 'error',
      error_type: 'client_disconnected',
      pricing_status: 'estimated',
      tokens: { input: 13, input_audio: 10, output: 5, output_audio: 2 },
      // $0.00032 + $0.000012 in; 3 text tokens out at $16 and 2 audio at $64 a million.
      cost_usd: '0.000508',
    });
    expect(await budget()).toMatchObject({ spent_usd: '0.000508', in_flight_usd: '0' });
  });

  it('refuses a response whose input added since the last one takes it past its budget', async () => {
    // A minute of G.711 audio is 600 tokens in at $32 a million ($0.0192), past $0.01 with the
    // response's 50 tokens out ($0.0032), which alone would fit.
    const { key } = await t.newKey({ budget_usd: 0.01, period: 'month' });
    const s = await open(key);
    await s.next('session.created');
    await g711(s);
    s.send({ type: 'input_audio_buffer.append', audio: Buffer.alloc(480_000, 1).toString('base64') });
    s.send({ type: 'input_audio_buffer.commit' });
    s.send({ type: 'response.create', response: { max_output_tokens: 50 } });
    expect((await s.next('error'))['error']).toMatchObject({ code: 'budget_exceeded' });
    const upstream = mock.realtime.sessions.at(-1)!;
    for (let i = 0; i < 100 && upstream.events.at(-1)?.['type'] !== 'response.cancel'; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(upstream.events.at(-1)).toMatchObject({ type: 'response.cancel' });
    s.ws.close();
  });

  it("holds a session to its upstream deployment's quota: the session a request, each response its tokens", async () => {
    const quota = { provider: 'openai', model: 'gpt-realtime', rpm: 1, tpm: 1000 };
    const other = await mockedGateway(mock.url, { routes: [{ model: 'voice', targets: [quota] }] });
    try {
      const { key } = await other.t.newKey({});
      const { ws, next, send } = await open(key, 'voice', undefined, other.base);
      // The deployment takes one session a minute: a second is refused as it opens.
      const url = `${other.base.replace('http', 'ws')}/v1/realtime?model=voice`;
      expect(await refusal(url, { authorization: `Bearer ${key}` })).toEqual({
        status: 429,
        code: 'upstream_quota_exceeded',
      });
      // 900 tokens at most fits the 1,000 a minute; it came to 180, so 700 more fit as well...
      send({ type: 'response.create', response: { max_output_tokens: 900 } });
      expect((await next('response.done'))['response']).toMatchObject({ status: 'completed' });
      send({ type: 'response.create', response: { max_output_tokens: 700 } });
      expect((await next('response.done'))['response']).toMatchObject({ status: 'completed' });
      // ...but not a third, with 360 of them taken.
      send({ type: 'response.create', response: { max_output_tokens: 900 } });
      expect((await next('error'))['error']).toMatchObject({
        code: 'upstream_quota_exceeded',
        type: 'tokens',
      });
      ws.close();
    } finally {
      await other.t.shutdown();
    }
  });

  it("holds each response to the key's tokens a minute, and counts what it came to", async () => {
    const { key, id } = await t.newKey({ tpm: 1000 });
    const remaining = async () =>
      (await t.ctx.state.rateLimit({ key: id, rpm: null, tpm: 1000, tokens: 0, now: Date.now() })).tokens!
        .remaining;
    const s = await open(key);
    await s.next('session.created');
    // 200 at most: held as it runs, and counted at the 180 it came to.
    s.send({ type: 'response.create', response: { max_output_tokens: 200 } });
    expect((await s.next('response.done'))['response']).toMatchObject({ status: 'completed' });
    for (let i = 0; i < 100 && (await remaining()) < 800; i++) await new Promise((r) => setTimeout(r, 10));
    // The bucket refills at 1,000 a minute as the test runs.
    expect(await remaining()).toBeGreaterThanOrEqual(820);
    expect(await remaining()).toBeLessThan(830);
    // 900 at most: more than is left, so it is cancelled, and the client told.
    s.send({ type: 'response.create', response: { max_output_tokens: 900 } });
    expect((await s.next('error'))['error']).toMatchObject({ code: 'rate_limit_exceeded', type: 'tokens' });
    // What it made before the cancel (180 tokens) counts.
    await s.next('response.done');
    for (let i = 0; i < 100 && (await remaining()) > 700; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await remaining()).toBeGreaterThanOrEqual(640);
    expect(await remaining()).toBeLessThan(650);
    s.ws.close();
  });

  it('meters the responses under way when the gateway stops as cut off by it', async () => {
    const other = await mockedGateway(mock.url);
    const { key } = await other.t.newKey({ project: 'stopping' });
    const s = await (async () => {
      const ws = new WebSocket(`${other.base.replace('http', 'ws')}/v1/realtime?model=gpt-realtime`, {
        headers: { authorization: `Bearer ${key}` },
      });
      const events: Event[] = [];
      ws.on('message', (d) => events.push(JSON.parse(d.toString()) as Event));
      await once(ws, 'open');
      return { ws, events };
    })();
    s.ws.send(JSON.stringify({ type: 'response.create', response: { instructions: 'slow' } }));
    for (
      let i = 0;
      i < 200 && !s.events.some((e) => e.type === 'response.output_audio_transcript.delta');
      i++
    )
      await new Promise((r) => setTimeout(r, 10));
    await other.t.close();
    const page = await other.t.store.listCalls({ tenant: 'default', limit: 10 });
    await other.t.store.close();
    expect(page.rows).toHaveLength(1);
    expect(page.rows[0]).toMatchObject({
      project: 'stopping',
      status: 'error',
      error_type: 'gateway_interrupted',
      pricing_status: 'estimated',
    });
  });

  it('meters a response that failed at what its usage says it cost', async () => {
    const { key } = await t.newKey({});
    const s = await open(key);
    await s.next('session.created');
    s.send({ type: 'response.create', response: { instructions: 'fail' } });
    expect((await s.next('response.done'))['response']).toMatchObject({ status: 'failed' });
    s.ws.close();
    expect((await lastCalls(t, 1))[0]).toMatchObject({
      status: 'error',
      error_type: 'realtime_failed',
      cost_usd: '0.00664',
    });
  });

  it("takes a browser's key from its subprotocol, and sends the provider none of it", async () => {
    const { key } = await t.newKey({});
    const s = await open(key, 'gpt-realtime', ['realtime', `openai-insecure-api-key.${key}`]);
    expect(s.ws.protocol).toBe('realtime');
    await s.next('session.created');
    const upstream = mock.realtime.sessions.at(-1)!;
    expect(upstream.headers.authorization).toBe('Bearer sk-upstream');
    expect(String(upstream.headers['sec-websocket-protocol'])).toBe('realtime');
    s.ws.close();
  });

  it('refuses a session without a valid key, for a model the key may not use, or without a model', async () => {
    const url = `${base.replace('http', 'ws')}/v1/realtime`;
    const from = mock.realtime.sessions.length;
    expect(await refusal(`${url}?model=gpt-realtime`, { authorization: 'Bearer tk-nope' })).toEqual({
      status: 401,
      code: 'invalid_api_key',
    });
    const { key } = await t.newKey({ models: ['gpt-realtime-mini'] });
    expect(await refusal(`${url}?model=gpt-realtime`, { authorization: `Bearer ${key}` })).toEqual({
      status: 403,
      code: 'model_not_allowed',
    });
    expect(await refusal(url, { authorization: `Bearer ${key}` })).toEqual({
      status: 400,
      code: 'missing_model',
    });
    expect(mock.realtime.sessions.length).toBe(from);
  });

  it("counts each session against its team's requests a minute, as a call", async () => {
    const team = `voice-${Date.now()}`;
    expect(await t.newRateLimit({ id: `rl-${team}`, scope: 'team', subject: team, rpm: 1 })).toBe(201);
    const { key } = await t.newKey({ team });
    const s = await open(key);
    await s.next('session.created');
    s.ws.close();
    // The key has no limit of its own: its team's refuses the second session, before it opens.
    expect(
      await refusal(`${base.replace('http', 'ws')}/v1/realtime?model=gpt-realtime`, {
        authorization: `Bearer ${key}`,
      }),
    ).toEqual({ status: 429, code: 'rate_limit_exceeded' });
  });

  it('settles the budget response by response, and closes the session once a block budget is spent', async () => {
    // $0.01 holds the first response's reservation (50 tokens of audio out at most, $0.0032), and
    // it costs $0.00664. The second's reservation adds the input the first was billed (20 text and
    // 100 audio tokens, $0.00328), $0.00648 in all: past what is left, so it is cancelled. What it
    // made before the cancel is metered, passes the budget, and the session is closed.
    const { key } = await t.newKey({ budget_usd: 0.01, period: 'month' });
    const s = await open(key);
    await s.next('session.created');
    const small = { type: 'response.create', response: { max_output_tokens: 50 } };
    s.send(small);
    await s.next('response.done');
    s.send(small);
    expect((await s.next('error'))['error']).toMatchObject({ code: 'budget_exceeded' });
    await s.next('response.done');
    const upstream = mock.realtime.sessions.at(-1)!;
    for (let i = 0; i < 100 && upstream.events.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
    expect(upstream.events.map((e) => e['type'])).toEqual([
      'response.create',
      'response.create',
      'response.cancel',
    ]);
    const error = await s.next('error');
    expect(error['error']).toMatchObject({ code: 'budget_exceeded' });
    const [code, reason] = await s.closed;
    expect([code, reason.toString()]).toEqual([1008, 'budget_exceeded']);
    // Both responses are counted, and the next session is refused before it opens.
    const [second, first] = await lastCalls(t, 2);
    expect([first!.cost_usd, second!.cost_usd]).toEqual(['0.00664', '0.00664']);
    expect(
      await refusal(`${base.replace('http', 'ws')}/v1/realtime?model=gpt-realtime`, {
        authorization: `Bearer ${key}`,
      }),
    ).toEqual({ status: 429, code: 'budget_exceeded' });
  });

  describe('WebRTC calls', () => {
    const OFFER = 'v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n';
    /** A call made as a server makes one with OpenAI's unified interface: the SDP offer and the
     * session's settings, as a multipart form. */
    const makeCall = async (key: string, session: object | null, sdp = OFFER) => {
      const form = new FormData();
      form.set('sdp', sdp);
      if (session) form.set('session', JSON.stringify(session));
      const res = await fetch(`${base}/v1/realtime/calls`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}` },
        body: form,
      });
      return { status: res.status, headers: res.headers, body: await res.text() };
    };
    const idOf = (location: string | null) => location!.split('/').at(-1)!;
    const hangUp = (key: string, id: string) =>
      fetch(`${base}/v1/realtime/calls/${id}/hangup`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}` },
      });

    it("makes a call with the provider's key, meters it on its sideband, and hangs it up", async () => {
      const { key } = await t.newKey({ project: 'phone' });
      const made = await makeCall(key, {
        type: 'realtime',
        model: 'gpt-realtime',
        instructions: 'Be brief.',
      });
      expect(made.status).toBe(201);
      expect(made.headers.get('content-type')).toBe('application/sdp');
      expect(made.body).toMatch(/^v=0\r\n/);
      const id = idOf(made.headers.get('location'));
      expect(made.headers.get('location')).toBe(`/v1/realtime/calls/${id}`);
      const call = mock.realtime.calls.get(id)!;
      // The offer as it came, the session with its model, the provider's key.
      expect(call.sdp).toBe(OFFER);
      expect(call.session).toEqual({ type: 'realtime', model: 'gpt-realtime', instructions: 'Be brief.' });
      expect(mock.received.at(-1)!.headers.authorization).toBe('Bearer sk-upstream');
      // Its sideband was open before the answer went back.
      expect(call.sideband).not.toBeNull();
      expect((await t.app.inject({ url: '/metrics' })).body).toMatch(/^tally_gateway_realtime_sessions 1$/m);
      // The caller talks to the model; the gateway reads the call's events on the sideband.
      mock.realtime.speak(id);
      for (let i = 0; i < 100 && (await lastCalls(t, 1))[0]?.['project'] !== 'phone'; i++)
        await new Promise((r) => setTimeout(r, 10));
      expect((await lastCalls(t, 1))[0]).toMatchObject({
        api: 'openai-realtime',
        model_requested: 'gpt-realtime',
        project: 'phone',
        status: 'ok',
        cost_usd: '0.00664',
        request_id: made.headers.get('x-tally-request-id'),
      });
      expect((await hangUp(key, id)).status).toBe(200);
      expect(call.hungUp).toBe(true);
      for (let i = 0; i < 100 && t.gateway.realtime.size > 0; i++)
        await new Promise((r) => setTimeout(r, 10));
      expect(t.gateway.realtime.size).toBe(0);
      // Once ended, it is not the gateway's to hang up.
      expect((await hangUp(key, id)).status).toBe(404);
    });

    it('takes an application/sdp offer with the model in the query, and refuses what it cannot make', async () => {
      const { key } = await t.newKey({ models: ['gpt-realtime-mini'] });
      const raw = await fetch(`${base}/v1/realtime/calls?model=gpt-realtime-mini`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/sdp' },
        body: OFFER,
      });
      expect(raw.status).toBe(201);
      const id = idOf(raw.headers.get('location'));
      expect(mock.realtime.calls.get(id)!.session).toEqual({ type: 'realtime', model: 'gpt-realtime-mini' });
      expect((await hangUp(key, id)).status).toBe(200);
      const code = async (r: { status: number; body: string }) => [
        r.status,
        (JSON.parse(r.body) as { error: { code: string } }).error.code,
      ];
      expect(await code(await makeCall(key, { type: 'realtime', model: 'gpt-realtime' }))).toEqual([
        403,
        'model_not_allowed',
      ]);
      expect(await code(await makeCall(key, { type: 'realtime' }))).toEqual([400, 'missing_model']);
      expect(await code(await makeCall(key, { model: 'gpt-realtime-mini' }, 'not an offer'))).toEqual([
        400,
        'invalid_offer',
      ]);
      expect(await code(await makeCall('tk-nope', { model: 'gpt-realtime-mini' }))).toEqual([
        401,
        'invalid_api_key',
      ]);
      const other = await t.newKey({});
      expect((await hangUp(other.key, 'rtc_nope')).status).toBe(404);
    });

    it("reserves the caller's speech the provider detected, and meters a response the call's end cuts off", async () => {
      const { key, id: keyId } = await t.newKey({ budget_usd: 1, period: 'month' });
      const made = await makeCall(key, { type: 'realtime', model: 'gpt-realtime' });
      const id = idOf(made.headers.get('location'));
      // Two seconds of speech (20 audio tokens in at $32 a million, $0.00064), then a response of
      // 100 audio tokens out at most ($0.0064), held while it runs.
      mock.realtime.speak(id, { spokeMs: 2000, slow: true, max_output_tokens: 100 });
      const budget = async () => {
        const res = await t.app.inject({ method: 'GET', url: '/v1/budgets', headers: t.auth });
        const all = (res.json() as { data: { subject: string; spent_usd: string; in_flight_usd: string }[] })
          .data;
        return all.find((b) => b.subject === keyId)!;
      };
      for (let i = 0; i < 100 && (await budget()).in_flight_usd === '0'; i++)
        await new Promise((r) => setTimeout(r, 10));
      expect((await budget()).in_flight_usd).toBe('0.00704');
      // The call ends before the response does: it is metered from what it relayed.
      expect((await hangUp(key, id)).status).toBe(200);
      for (let i = 0; i < 100 && (await budget()).in_flight_usd !== '0'; i++)
        await new Promise((r) => setTimeout(r, 10));
      expect((await lastCalls(t, 1))[0]).toMatchObject({
        status: 'error',
        error_type: 'call_ended',
        pricing_status: 'estimated',
        tokens: { input: 20, input_audio: 20, output: 5, output_audio: 2 },
        // $0.00064 in; 3 text tokens out at $16 and 2 audio at $64 a million.
        cost_usd: '0.000816',
      });
    });

    it("joins an application's own sideband to a call made through it: the call's events out, its steering in, metered once", async () => {
      const { key } = await t.newKey({ project: 'steer' });
      const made = await makeCall(key, { type: 'realtime', model: 'gpt-realtime' });
      const id = idOf(made.headers.get('location'));
      const url = `${base.replace('http', 'ws')}/v1/realtime?call_id=${id}`;
      const app = new WebSocket(url, { headers: { authorization: `Bearer ${key}` } });
      const events: Event[] = [];
      app.on('message', (d) => events.push(JSON.parse(d.toString()) as Event));
      await once(app, 'open');
      const until = async (type: string) => {
        for (let i = 0; i < 200 && !events.some((e) => e.type === type); i++)
          await new Promise((r) => setTimeout(r, 10));
        return events.find((e) => e.type === type);
      };
      // What the application sends steers the call, through the gateway's sideband.
      app.send(
        JSON.stringify({ type: 'session.update', session: { type: 'realtime', instructions: 'Be kind.' } }),
      );
      expect(await until('session.updated')).toBeDefined();
      const sideband = mock.realtime.sessions.find((x) => x.url === `/v1/realtime?call_id=${id}`)!;
      expect(sideband.events.map((e) => e['type'])).toEqual(['session.update']);
      // The call's events reach it; the response is metered once.
      const before = (await lastCalls(t, 1))[0]?.['id'];
      mock.realtime.speak(id);
      expect(await until('response.done')).toBeDefined();
      const [last, previous] = await lastCalls(t, 2);
      expect(last).toMatchObject({ project: 'steer', cost_usd: '0.00664' });
      expect(previous!['id']).toBe(before);
      // Only the call's own tenant, and only a call under way.
      const refused = async (k: string, callId: string) => {
        const ws = new WebSocket(`${base.replace('http', 'ws')}/v1/realtime?call_id=${callId}`, {
          headers: { authorization: `Bearer ${k}` },
        });
        ws.on('error', () => undefined);
        const [, res] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number }];
        ws.terminate();
        return res.statusCode;
      };
      expect(await refused(await foreignKey(t.store), id)).toBe(404);
      expect(await refused(key, 'rtc_nope')).toBe(404);
      // When the call ends, so does the application's sideband.
      const closed = once(app, 'close');
      expect((await hangUp(key, id)).status).toBe(200);
      await closed;
    });

    it('hangs up, through any replica, a call another made', async () => {
      // Two gateways on one shared state, as replicas are on Redis: a call made through one is
      // metered there, on its sideband, and hung up through the other.
      const state = new MemoryState();
      const gateway = {
        providers: [{ id: 'openai', kind: 'openai', base_url: `${mock.url}/v1`, api_key: 'sk-upstream' }],
      };
      const [a, b] = [
        await testApp({ gateway }, undefined, state),
        await testApp({ gateway }, undefined, state),
      ];
      try {
        const [aBase, bBase] = [await a.listen(), await b.listen()];
        const { key } = await a.newKey({});
        const form = new FormData();
        form.set('sdp', OFFER);
        form.set('session', JSON.stringify({ type: 'realtime', model: 'gpt-realtime' }));
        const made = await fetch(`${aBase}/v1/realtime/calls`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}` },
          body: form,
        });
        const id = idOf(made.headers.get('location'));
        const hangup = (base: string, k: string) =>
          fetch(`${base}/v1/realtime/calls/${id}/hangup`, {
            method: 'POST',
            headers: { authorization: `Bearer ${k}` },
          });
        // Another tenant's key finds no such call; the call's own tenant's hangs it up, through either.
        expect((await hangup(bBase, await foreignKey(b.store))).status).toBe(404);
        expect(mock.realtime.calls.get(id)!.hungUp).toBe(false);
        const other = await b.newKey({});
        expect((await hangup(bBase, other.key)).status).toBe(200);
        expect(mock.realtime.calls.get(id)!.hungUp).toBe(true);
        for (let i = 0; i < 100 && a.gateway.realtime.size > 0; i++)
          await new Promise((r) => setTimeout(r, 10));
        expect(a.gateway.realtime.size).toBe(0);
        expect((await hangup(bBase, other.key)).status).toBe(404);
      } finally {
        await a.shutdown();
        await b.shutdown();
      }
    });

    it('hangs up a call whose sideband cannot be opened, rather than run it unmetered', async () => {
      const { key } = await t.newKey({});
      const made = await makeCall(key, {
        type: 'realtime',
        model: 'gpt-realtime',
        instructions: 'refuse sideband',
      });
      expect(made.status).toBe(502);
      expect(JSON.parse(made.body)).toMatchObject({ error: { code: 'upstream_sideband_unavailable' } });
      const call = [...mock.realtime.calls.values()].at(-1)!;
      for (let i = 0; i < 100 && !call.hungUp; i++) await new Promise((r) => setTimeout(r, 10));
      expect(call.hungUp).toBe(true);
    });

    it('cancels a response its budget cannot hold, and hangs up a call that spends it', async () => {
      // As for a session: $0.01 holds the first response (50 audio tokens out at most) and not the
      // second (with the first's input), which is cancelled; what it made spends the budget.
      const { key } = await t.newKey({ budget_usd: 0.01, period: 'month' });
      const made = await makeCall(key, { type: 'realtime', model: 'gpt-realtime' });
      const id = idOf(made.headers.get('location'));
      const call = mock.realtime.calls.get(id)!;
      mock.realtime.speak(id, { max_output_tokens: 50 });
      mock.realtime.speak(id, { max_output_tokens: 50 });
      for (let i = 0; i < 200 && !call.hungUp; i++) await new Promise((r) => setTimeout(r, 10));
      expect(call.hungUp).toBe(true);
      const upstream = mock.realtime.sessions.at(-1)!;
      expect(upstream.url).toBe(`/v1/realtime?call_id=${id}`);
      // The cancel went on the sideband before the hang-up, on another connection.
      for (let i = 0; i < 100 && upstream.events.length === 0; i++)
        await new Promise((r) => setTimeout(r, 10));
      expect(upstream.events.map((e) => e['type'])).toEqual(['response.cancel']);
      const [second, first] = await lastCalls(t, 2);
      expect([first!.cost_usd, second!.cost_usd]).toEqual(['0.00664', '0.00664']);
    });
  });
});

describe.skipIf(SKIP_WITHOUT_RECORDINGS)('gateway: over TLS', () => {
  const mock = new MockUpstream();
  const file = (name: string) => fileURLToPath(new URL(`../testing/tls/${name}`, import.meta.url));
  const ca = readFileSync(file('cert.pem'));
  let t: TestApp;
  let base: string;

  beforeAll(async () => {
    await mock.start();
    t = await testApp({
      tls: { cert_file: file('cert.pem'), key_file: file('key.pem') },
      gateway: {
        providers: [{ id: 'openai', kind: 'openai', base_url: `${mock.url}/v1`, api_key: 'sk-upstream' }],
      },
    });
    base = (await t.listen()).replace(/^http:/, 'https:');
  });
  afterAll(async () => {
    await t?.shutdown();
    await mock.stop();
  });

  it("serves HTTPS, and the openai client's OpenAIRealtimeWS over WSS, with no terminator in front", async () => {
    const { key } = await t.newKey({ project: 'secure' });
    const dispatcher = new Agent({ connect: { ca } });
    const openai = new OpenAI({ apiKey: key, baseURL: `${base}/v1`, fetchOptions: { dispatcher } as never });
    const chat = await openai.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'Hello' }],
    });
    expect(chat.choices[0]?.message).toBeDefined();
    expect((await lastCalls(t, 1))[0]).toMatchObject({ api: 'openai-chat', project: 'secure', status: 'ok' });
    // The openai client's own realtime WebSocket, which dials wss:// only.
    const rt = new OpenAIRealtimeWS({ model: 'gpt-realtime', options: { ca } }, openai);
    expect(rt.url.toString()).toBe(`${base.replace('https', 'wss')}/v1/realtime?model=gpt-realtime`);
    await new Promise<void>((resolve, reject) => {
      rt.on('session.created', () => rt.send({ type: 'response.create' }));
      rt.on('response.done', () => resolve());
      rt.on('error', (err) => reject(err));
    });
    rt.close();
    expect((await lastCalls(t, 1))[0]).toMatchObject({
      api: 'openai-realtime',
      project: 'secure',
      cost_usd: '0.00664',
    });
    await dispatcher.close();
  });

  it('refuses to start with a certificate it cannot read, and says which', async () => {
    await expect(
      testApp({ tls: { cert_file: '/nonexistent/cert.pem', key_file: file('key.pem') } }),
    ).rejects.toThrow('tls.cert_file /nonexistent/cert.pem cannot be read');
  });
});
