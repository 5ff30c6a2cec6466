import { randomUUID } from 'node:crypto';
import { RedisState } from '@tally/gateway';
import { MockUpstream, SKIP_WITHOUT_RECORDINGS } from '@tally/gateway/testing';
import { createDuckDbStore, type Store } from '@tally/store';
import OpenAI from 'openai';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { foreignKey, lastCalls, postChat, type TestApp, testApp, until } from '../testing/test-app.js';

type Failure = { status: number; code: string | null; message: string };
const failure = (e: unknown): Failure => e as Failure;

describe.skipIf(SKIP_WITHOUT_RECORDINGS)("gateway: a stored response's follow-ups", () => {
  const mock = new MockUpstream();
  let t: TestApp;
  let base: string;
  let openai: OpenAI;
  const client = (key: string) => new OpenAI({ apiKey: key, baseURL: `${base}/v1`, maxRetries: 0 });

  beforeAll(async () => {
    await mock.start();
    t = await testApp({
      gateway: {
        providers: [
          { id: 'openai', kind: 'openai', base_url: `${mock.url}/v1`, api_key: 'sk-upstream' },
          {
            id: 'azure-v1',
            kind: 'azure',
            base_url: mock.url,
            api_key: 'azure-secret',
            deployments: { 'gpt-4.1': 'prod-41' },
          },
        ],
        routes: [
          {
            model: 'gpt-4.1-balanced',
            targets: [
              { provider: 'openai', model: 'gpt-4.1' },
              { provider: 'azure-v1', model: 'gpt-4.1' },
            ],
          },
        ],
      },
    });
    base = await t.listen();
    openai = client((await t.newKey({ project: 'support' })).key);
  });
  afterAll(async () => {
    await t?.shutdown();
    await mock.stop();
  });

  /** What went upstream since `from`: method-less paths, in order. */
  const sentSince = (from: number) => mock.received.slice(from).map((r) => r.path);

  it('retrieves a response, made whole or streamed, from the provider that made it', async () => {
    const made = await openai.responses.create({ model: 'gpt-4.1', input: 'Hi' });
    const from = mock.received.length;
    const got = await openai.responses.retrieve(made.id);
    expect(got).toMatchObject({ id: made.id, status: 'completed', output_text: 'Hi there.' });
    expect(sentSince(from)).toEqual([`/v1/responses/${made.id}`]);
    // With the provider's key, not the client's.
    expect(mock.received.at(-1)!.headers['authorization']).toBe('Bearer sk-upstream');

    const stream = await openai.responses.create({ model: 'gpt-4.1', input: 'Hi', stream: true });
    let id = '';
    for await (const e of stream) if (e.type === 'response.completed') id = e.response.id;
    expect(id).not.toBe(made.id);
    expect((await openai.responses.retrieve(id)).id).toBe(id);
    // Retrieving is free upstream: no call is metered for it.
    const calls = await lastCalls(t, 50);
    expect(calls.filter((c) => c.api === 'openai-responses')).toHaveLength(2);
  });

  it('retrieves a response as a stream of its events, passed on as they come', async () => {
    const made = await openai.responses.create({ model: 'gpt-4.1', input: 'Hi' });
    const events: string[] = [];
    for await (const e of await openai.responses.retrieve(made.id, { stream: true })) {
      events.push(e.type);
      if (e.type === 'response.completed')
        expect(e.response).toMatchObject({ id: made.id, status: 'completed' });
    }
    expect(events).toEqual(['response.created', 'response.completed']);
    expect(mock.received.at(-1)!.path).toBe(`/v1/responses/${made.id}?stream=true`);
  });

  it('lists its input items, passes a refused cancel on as the provider answered it, and deletes it', async () => {
    const made = await openai.responses.create({
      model: 'gpt-4.1',
      input: [{ role: 'user', content: 'Summarise the ticket.' }],
    });
    const items = await openai.responses.inputItems.list(made.id);
    expect(items.data).toEqual([
      expect.objectContaining({ id: 'msg_in_1', role: 'user', content: 'Summarise the ticket.' }),
    ]);
    const cancel = (await openai.responses.cancel(made.id).catch(failure)) as Failure;
    expect(cancel).toMatchObject({ status: 400 });
    expect(cancel.message).toMatch(/background=true/);

    await openai.responses.delete(made.id);
    expect(mock.stored.has(made.id)).toBe(false);
    // Gone here too: not asked of the provider again.
    const from = mock.received.length;
    const gone = await openai.responses.retrieve(made.id).catch(failure);
    expect(gone).toMatchObject({ status: 404, code: 'response_not_found' });
    expect(mock.received.length).toBe(from);
  });

  it('follows an Azure response up on its v1 path, with its key', async () => {
    const made = await openai.responses.create({ model: 'azure-v1/gpt-4.1', input: 'Hi' });
    expect((await openai.responses.retrieve(made.id)).id).toBe(made.id);
    const sent = mock.received.at(-1)!;
    expect(sent.path).toBe(`/openai/v1/responses/${made.id}`);
    expect(sent.headers['api-key']).toBe('azure-secret');
    expect(sent.headers['authorization']).toBeUndefined();
  });

  it('finds no response it did not pass on, none stored with store: false, and none of another owner', async () => {
    const from = mock.received.length;
    // The provider holds it, but not through this gateway: another account's client made it.
    mock.stored.set('resp_made_elsewhere', { response: { id: 'resp_made_elsewhere' }, input: [] });
    for (const id of ['resp_made_elsewhere', 'not an id', 'resp_x%2F..%2Fmodels']) {
      const e = await openai.responses.retrieve(id).catch(failure);
      expect(e).toMatchObject({ status: 404, code: 'response_not_found' });
    }
    expect(mock.received.length).toBe(from);

    const unstored = await openai.responses.create({ model: 'gpt-4.1', input: 'Hi', store: false });
    expect(await openai.responses.retrieve(unstored.id).catch(failure)).toMatchObject({
      status: 404,
      code: 'response_not_found',
    });

    const made = await openai.responses.create({ model: 'gpt-4.1', input: 'Hi' });
    // A key of another project, or of another tenant, does not reach it; one of no project does.
    const other = client((await t.newKey({ project: 'billing' })).key);
    expect(await other.responses.retrieve(made.id).catch(failure)).toMatchObject({ status: 404 });
    expect(await other.responses.delete(made.id).catch(failure)).toMatchObject({ status: 404 });
    const foreign = client(await foreignKey(t.store));
    expect(await foreign.responses.retrieve(made.id).catch(failure)).toMatchObject({ status: 404 });
    const anyProject = client((await t.newKey({})).key);
    expect((await anyProject.responses.retrieve(made.id)).id).toBe(made.id);
    expect(mock.stored.has(made.id)).toBe(true);
  });

  it('goes on with a conversation at the provider that holds its previous response', async () => {
    const paths = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const first = await openai.responses.create({ model: 'gpt-4.1-balanced', input: 'Hi' });
      const firstPath = mock.received.at(-1)!.path;
      paths.add(firstPath);
      for (let turn = 0; turn < 3; turn++) {
        await openai.responses.create({
          model: 'gpt-4.1-balanced',
          input: 'And?',
          previous_response_id: first.id,
        });
        expect(mock.received.at(-1)!.path).toBe(firstPath);
      }
    }
    // The route balances new conversations over both (one run in 500,000 sees one only: 2 × 2^-20).
    expect(paths.size).toBe(2);
  });

  it("refuses to go on from another tenant's or another project's response, and sends nothing", async () => {
    const made = await openai.responses.create({ model: 'gpt-4.1', input: 'Hi' });
    const from = mock.received.length;
    for (const other of [
      client(await foreignKey(t.store, 'another')),
      client((await t.newKey({ project: 'billing' })).key),
    ]) {
      const e = await other.responses
        .create({ model: 'gpt-4.1', input: 'And?', previous_response_id: made.id })
        .catch(failure);
      expect(e).toMatchObject({ status: 400, code: 'previous_response_not_found' });
    }
    expect(mock.received.length).toBe(from);
    // The same project goes on; an id it never saw goes to the provider, which says.
    await openai.responses.create({ model: 'gpt-4.1', input: 'And?', previous_response_id: made.id });
    await openai.responses.create({
      model: 'gpt-4.1',
      input: 'And?',
      previous_response_id: 'resp_elsewhere',
    });
    expect(mock.received.length).toBe(from + 2);
  });

  it('makes a conversation, follows it up, and carries it on in Responses calls, at the provider that holds it', async () => {
    const conv = await openai.conversations.create({
      metadata: { topic: 'launch' },
      items: [{ type: 'message', role: 'user', content: 'We launch on Monday.' }],
    });
    expect(conv).toMatchObject({ object: 'conversation', metadata: { topic: 'launch' } });
    expect(mock.received.at(-1)).toMatchObject({
      path: '/v1/conversations',
      headers: { authorization: 'Bearer sk-upstream' },
    });
    expect((await openai.conversations.retrieve(conv.id)).id).toBe(conv.id);
    expect((await openai.conversations.update(conv.id, { metadata: { topic: 'go-live' } })).metadata).toEqual(
      {
        topic: 'go-live',
      },
    );
    await openai.conversations.items.create(conv.id, {
      items: [{ type: 'message', role: 'user', content: 'And the press release?' }],
    });
    // A Responses call in the conversation goes where it is held, and adds to it.
    const r = await openai.responses.create({
      model: 'gpt-4.1-balanced',
      input: 'Summarise.',
      conversation: conv.id,
    });
    expect(r.output_text).toBe('Hi there.');
    expect(mock.received.at(-1)!.path).toBe('/v1/responses');
    const items = await openai.conversations.items.list(conv.id);
    expect(items.data.map((i) => (i as { role?: string }).role)).toEqual([
      'user',
      'user',
      'user',
      'assistant',
    ]);
    const first = items.data[0]!;
    expect((await openai.conversations.items.retrieve(first.id!, { conversation_id: conv.id })).id).toBe(
      first.id,
    );
    await openai.conversations.items.delete(first.id!, { conversation_id: conv.id });
    expect((await openai.conversations.items.list(conv.id)).data).toHaveLength(3);

    // Not another tenant's, nor another project's; and not once deleted.
    const from = mock.received.length;
    for (const other of [
      client(await foreignKey(t.store, 'third')),
      client((await t.newKey({ project: 'billing' })).key),
    ]) {
      expect(await other.conversations.retrieve(conv.id).catch(failure)).toMatchObject({
        status: 404,
        code: 'conversation_not_found',
      });
      expect(
        await other.responses.create({ model: 'gpt-4.1', input: 'Hi', conversation: conv.id }).catch(failure),
      ).toMatchObject({ status: 404, code: 'conversation_not_found' });
    }
    expect(mock.received.length).toBe(from);
    await openai.conversations.delete(conv.id);
    expect(mock.conversations.has(conv.id)).toBe(false);
    expect(await openai.conversations.retrieve(conv.id).catch(failure)).toMatchObject({
      status: 404,
      code: 'conversation_not_found',
    });
  });

  it('makes a conversation at the provider the request names', async () => {
    const conv = await openai.conversations.create({}, { headers: { 'x-tally-provider': 'azure-v1' } });
    expect(mock.received.at(-1)).toMatchObject({
      path: '/openai/v1/conversations',
      headers: { 'api-key': 'azure-secret' },
    });
    expect((await openai.conversations.retrieve(conv.id)).id).toBe(conv.id);
    expect(mock.received.at(-1)!.path).toBe(`/openai/v1/conversations/${conv.id}`);
    // A Responses call in it goes to Azure, whichever deployment the route would have picked.
    for (let i = 0; i < 6; i++) {
      await openai.responses.create({
        model: 'gpt-4.1-balanced',
        input: 'Hi',
        conversation: { id: conv.id },
      });
      expect(mock.received.at(-1)!.path).toBe('/openai/v1/responses');
    }
    const unknown = await openai.conversations
      .create({}, { headers: { 'x-tally-provider': 'nope' } })
      .catch(failure);
    expect(unknown).toMatchObject({ status: 404, code: 'provider_not_found' });
  });

  it('follows a chat completion stored with store: true up, made whole or streamed', async () => {
    const messages = [{ role: 'user' as const, content: 'Hello' }];
    const made = await openai.chat.completions.create({
      model: 'gpt-4o',
      messages,
      store: true,
      metadata: { app: 'faq' },
    });
    const got = await openai.chat.completions.retrieve(made.id);
    expect(got).toMatchObject({ id: made.id, metadata: { app: 'faq' } });
    expect(mock.received.at(-1)).toMatchObject({
      path: `/v1/chat/completions/${made.id}`,
      headers: { authorization: 'Bearer sk-upstream' },
    });
    const updated = await openai.chat.completions.update(made.id, { metadata: { app: 'support' } });
    expect(updated).toMatchObject({ metadata: { app: 'support' } });
    const listed = await openai.chat.completions.messages.list(made.id);
    expect(listed.data[0]).toMatchObject({ role: 'user', content: 'Hello' });

    const stream = await openai.chat.completions.create({
      model: 'gpt-4o',
      messages,
      store: true,
      stream: true,
    });
    let id = '';
    for await (const c of stream) id = c.id;
    expect((await openai.chat.completions.retrieve(id)).id).toBe(id);

    // Not another project's; and not once deleted.
    const other = client((await t.newKey({ project: 'billing' })).key);
    expect(await other.chat.completions.retrieve(made.id).catch(failure)).toMatchObject({
      status: 404,
      code: 'chat_completion_not_found',
    });
    await openai.chat.completions.delete(made.id);
    expect(await openai.chat.completions.retrieve(made.id).catch(failure)).toMatchObject({
      status: 404,
      code: 'chat_completion_not_found',
    });
  });

  it('answers a follow-up without a valid key with a 401, and holds it to the key’s requests a minute', async () => {
    const made = await openai.responses.create({ model: 'gpt-4.1', input: 'Hi' });
    const anon = await request(`${base}/v1/responses/${made.id}`);
    expect(anon.statusCode).toBe(401);
    expect(((await anon.body.json()) as { error: { code: string } }).error.code).toBe('invalid_api_key');

    const limited = client((await t.newKey({ project: 'support', rpm: 2 })).key);
    const first = await limited.responses.retrieve(made.id).withResponse();
    expect(first.response.headers.get('x-ratelimit-limit-requests')).toBe('2');
    expect(first.response.headers.get('x-ratelimit-remaining-requests')).toBe('1');
    await limited.responses.retrieve(made.id);
    const refused = await limited.responses.retrieve(made.id).catch(failure);
    expect(refused).toMatchObject({ status: 429, code: 'rate_limit_exceeded' });
  });

  it('passes an error of the provider on without its key', async () => {
    const made = await openai.responses.create({ model: 'gpt-4.1', input: 'Hi' });
    // The provider lost it (its 30 days are up, or it was deleted there).
    mock.stored.delete(made.id);
    const e = (await openai.responses.retrieve(made.id).catch(failure)) as Failure;
    expect(e.status).toBe(404);
    expect(e.message).toMatch(/not found/);
  });
});

describe.skipIf(SKIP_WITHOUT_RECORDINGS)('gateway replicas on Redis: a stored response', () => {
  it('is followed up through a replica other than the one that made it', async () => {
    const mock = await new MockUpstream().start();
    const store = await createDuckDbStore({ path: ':memory:' });
    await store.migrate();
    const prefix = `tally-test:${randomUUID()}:`;
    const states = [
      new RedisState('redis://127.0.0.1:6379', prefix),
      new RedisState('redis://127.0.0.1:6379', prefix),
    ];
    const config = {
      gateway: {
        providers: [{ id: 'openai', kind: 'openai', base_url: `${mock.url}/v1`, api_key: 'sk-up' }],
      },
    };
    const [a, b] = await Promise.all(states.map((s) => testApp(config, undefined, s, store)));
    try {
      const key = (await a!.newKey({ project: 'p' })).key;
      const viaA = new OpenAI({ apiKey: key, baseURL: `${await a!.listen()}/v1`, maxRetries: 0 });
      const viaB = new OpenAI({ apiKey: key, baseURL: `${await b!.listen()}/v1`, maxRetries: 0 });
      const made = await viaA.responses.create({ model: 'gpt-4.1', input: 'Hi' });
      expect((await viaB.responses.retrieve(made.id)).output_text).toBe('Hi there.');
      await viaB.responses.delete(made.id);
      expect(await viaA.responses.retrieve(made.id).catch(failure)).toMatchObject({
        status: 404,
        code: 'response_not_found',
      });
    } finally {
      await Promise.all([a?.shutdown(), b?.shutdown()]);
      await Promise.all(states.map((s) => s.close()));
      await store.close();
      await mock.stop();
    }
  });
});

/** Polls a background response the way OpenAI's guide does, until it has ended. */
async function pollUntilEnded(client: OpenAI, id: string) {
  for (let i = 0; i < 200; i++) {
    const r = await client.responses.retrieve(id);
    if (r.status !== 'queued' && r.status !== 'in_progress') return r;
    await new Promise((res) => setTimeout(res, 10));
  }
  throw new Error(`response ${id} did not end`);
}

describe.skipIf(SKIP_WITHOUT_RECORDINGS)('gateway: background responses', () => {
  const mock = new MockUpstream();
  /** An app whose gateway reaches the mock and watches background calls every `pollMs` at first,
   * and an OpenAI client with a key of its. */
  const backgroundApp = async (pollMs: number, store?: Store) => {
    const app = await testApp(
      {
        gateway: {
          background_poll_ms: pollMs,
          providers: [{ id: 'openai', kind: 'openai', base_url: `${mock.url}/v1`, api_key: 'sk-upstream' }],
        },
      },
      undefined,
      undefined,
      store,
    );
    const url = await app.listen();
    return {
      app,
      base: url,
      openai: new OpenAI({ apiKey: (await app.newKey({})).key, baseURL: `${url}/v1`, maxRetries: 0 }),
    };
  };
  let t: TestApp;
  let base: string;
  let tenant: string;
  const client = (key: string) => new OpenAI({ apiKey: key, baseURL: `${base}/v1`, maxRetries: 0 });
  /** A call's record, once it is in the store. */
  const callOf = async (id: string, ms = 3000) => {
    let found: Awaited<ReturnType<typeof t.store.getCall>> = null;
    const end = Date.now() + ms;
    while (!found && Date.now() < end) {
      await t.gateway.flush();
      found = await t.store.getCall(tenant, id);
      if (!found) await new Promise((r) => setTimeout(r, 10));
    }
    return found;
  };

  beforeAll(async () => {
    await mock.start();
    ({ app: t, base } = await backgroundApp(20));
    tenant = t.ctx.config.tenant;
  });
  afterAll(async () => {
    await t?.shutdown();
    await mock.stop();
  });

  it('answers queued, and meters the call at its cost once the response has ended, watched by the gateway', async () => {
    const openai = client((await t.newKey({ project: 'support' })).key);
    mock.backgroundMs = 60;
    const { data: queued, response } = await openai.responses
      .create({ model: 'gpt-4.1', input: 'Research.', background: true })
      .withResponse();
    expect(queued.status).toBe('queued');
    const callId = response.headers.get('x-tally-call-id')!;
    // Not metered while it runs: its usage has not come.
    await t.gateway.flush();
    expect(await t.store.getCall(tenant, callId)).toBeNull();
    expect(t.gateway.background.size).toBe(1);
    expect((await t.app.inject({ url: '/metrics' })).body).toMatch(/^tally_gateway_background_calls 1$/m);
    // Nobody polls it: the gateway's own watch meters it.
    const call = await callOf(callId);
    expect(call).toMatchObject({
      status: 'ok',
      error_type: null,
      pricing_status: 'priced',
      api: 'openai-responses',
      model_served: 'gpt-4.1-2025-04-16',
      project: 'support',
    });
    // gpt-4.1: 176 × $2 + 1024 × $0.50 cached, 300 × $8 (reasoning included), per million.
    expect(call!.cost_effective_nano).toBe(3_264_000n);
    expect(call!.latency_ms).toBeGreaterThanOrEqual(50);
    expect(t.gateway.background.size).toBe(0);
    expect((await t.app.inject({ url: '/metrics' })).body).toMatch(/^tally_gateway_background_calls 0$/m);
    // The client's polling finds it ended, and meters nothing more.
    expect((await pollUntilEnded(openai, queued.id)).output_text).toBe('Hi there.');
    await t.gateway.flush();
    const listed = (await t.app.inject({ url: `/v1/calls?request_id=${callId}`, headers: t.auth })).json();
    expect(listed.data).toHaveLength(1);
  });

  it('streams a background response to its end, metered from its stream', async () => {
    const openai = client((await t.newKey({})).key);
    mock.backgroundMs = 30;
    const { data: stream, response } = await openai.responses
      .create({ model: 'gpt-4.1', input: 'Research.', background: true, stream: true })
      .withResponse();
    const seen: string[] = [];
    for await (const e of stream) seen.push(e.type);
    expect(seen).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_text.delta',
      'response.completed',
    ]);
    expect(t.gateway.background.size).toBe(0);
    expect(await callOf(response.headers.get('x-tally-call-id')!)).toMatchObject({
      status: 'ok',
      pricing_status: 'priced',
      cost_effective_nano: 3_264_000n,
    });
  });

  it('leaves a background stream the client left to the watch, which meters the call at its cost', async () => {
    const openai = client((await t.newKey({})).key);
    mock.backgroundMs = 200;
    const { data: stream, response } = await openai.responses
      .create({ model: 'gpt-4.1', input: 'Research.', background: true, stream: true })
      .withResponse();
    let id = '';
    for await (const e of stream) {
      if (e.type === 'response.created') {
        id = e.response.id;
        break;
      }
    }
    // Known as soon as the stream named it: the client can pick it up again at once.
    expect((await openai.responses.retrieve(id)).status).toBe('in_progress');
    const callId = response.headers.get('x-tally-call-id')!;
    await until(() => t.gateway.background.has(tenant, id));
    expect(await t.store.getCall(tenant, callId)).toBeNull();
    expect(await callOf(callId)).toMatchObject({
      status: 'ok',
      pricing_status: 'priced',
      cost_effective_nano: 3_264_000n,
    });
  });

  it("counts a queued answer as its upstream's success, not a failure toward opening its circuit", async () => {
    // 'steady' goes to openai, and to spare when openai's circuit is open (5 failures in a row).
    const app = await testApp({
      gateway: {
        background_poll_ms: 20,
        providers: [
          { id: 'openai', kind: 'openai', base_url: `${mock.url}/v1`, api_key: 'sk-upstream' },
          { id: 'spare', kind: 'openai', base_url: `${mock.url}/v1`, api_key: 'sk-spare' },
        ],
        routes: [
          {
            model: 'steady',
            targets: [{ provider: 'openai', model: 'gpt-4.1' }],
            fallbacks: [{ provider: 'spare', model: 'gpt-4.1' }],
          },
        ],
      },
    });
    try {
      const url = await app.listen();
      const key = (await app.newKey({})).key;
      const openai = new OpenAI({ apiKey: key, baseURL: `${url}/v1`, maxRetries: 0 });
      const queued = await openai.responses.create({ model: 'steady', input: 'Research.', background: true });
      expect(queued.status).toBe('queued');
      // Four failures in a row: one short of opening openai's circuit.
      for (let i = 0; i < 4; i++)
        expect((await postChat(url, key, { model: 'openai/fault-500' })).statusCode).toBe(500);
      const before = mock.received.length;
      await openai.responses.create({ model: 'steady', input: 'Hi' });
      // (The gateway's watch polls the queued response meanwhile: its polls are left out.)
      const sentWith = mock.received
        .slice(before)
        .filter((r) => r.body['input'] === 'Hi')
        .map((r) => r.headers['authorization']);
      expect(sentWith).toEqual(['Bearer sk-upstream']);
      await pollUntilEnded(openai, queued.id);
    } finally {
      await app.shutdown();
    }
  });

  it("holds the call's reservation on its budgets until it ends, then settles at its cost", async () => {
    mock.backgroundMs = 150;
    // One call reserves its prompt and 1,000 tokens out at $8 a million: about $0.0080. Two do
    // not fit under $0.012 together; one, and the first's actual $0.003264, do.
    const openai = client((await t.newKey({ project: 'support', budget_usd: 0.012, period: 'month' })).key);
    const ask = { model: 'gpt-4.1', input: 'Research.', background: true, max_output_tokens: 1000 } as const;
    const first = await openai.responses.create(ask);
    expect(first.status).toBe('queued');
    const refused = await openai.responses.create(ask).catch(failure);
    expect(refused).toMatchObject({ status: 429, code: 'budget_exceeded' });
    await pollUntilEnded(openai, first.id);
    await until(() => t.gateway.background.size === 0);
    const second = await openai.responses.create(ask);
    expect(second.status).toBe('queued');
    await pollUntilEnded(openai, second.id);
  });

  it('meters the call as soon as a follow-up of the client’s sees it ended', async () => {
    // A watch that would not look for a minute: the client's retrieve is what ends it.
    const { app: slow, openai } = await backgroundApp(60_000);
    try {
      mock.backgroundMs = 30;
      const { data: queued, response } = await openai.responses
        .create({ model: 'gpt-4.1', input: 'Research.', background: true })
        .withResponse();
      expect(slow.gateway.background.size).toBe(1);
      expect((await pollUntilEnded(openai, queued.id)).status).toBe('completed');
      expect(slow.gateway.background.size).toBe(0);
      await slow.gateway.flush();
      const call = await slow.store.getCall(slow.ctx.config.tenant, response.headers.get('x-tally-call-id')!);
      expect(call).toMatchObject({ status: 'ok', cost_effective_nano: 3_264_000n });
    } finally {
      await slow.shutdown();
    }
  });

  it('meters a cancelled response from its prompt, estimated, and one the provider lost the same way', async () => {
    const openai = client((await t.newKey({})).key);
    mock.backgroundMs = 10_000;
    const { data: queued, response } = await openai.responses
      .create({ model: 'gpt-4.1', input: 'Research.', background: true })
      .withResponse();
    expect((await openai.responses.cancel(queued.id)).status).toBe('cancelled');
    const cancelled = await callOf(response.headers.get('x-tally-call-id')!);
    expect(cancelled).toMatchObject({
      status: 'error',
      error_type: 'background_cancelled',
      pricing_status: 'estimated',
    });
    expect(cancelled!.tokens.output).toBe(0);
    expect(cancelled!.tokens.input).toBeGreaterThan(0);

    const lost = await openai.responses
      .create({ model: 'fault-background-lost', input: 'Research.', background: true })
      .withResponse();
    expect(lost.data.status).toBe('queued');
    expect(await callOf(lost.response.headers.get('x-tally-call-id')!)).toMatchObject({
      status: 'error',
      error_type: 'background_lost',
    });
  });

  it('meters a response still running when the gateway closes as cut off, its prompt estimated', async () => {
    const store = await createDuckDbStore({ path: ':memory:' });
    await store.migrate();
    const { app: closing, openai } = await backgroundApp(20, store);
    try {
      mock.backgroundMs = 10_000;
      const { response } = await openai.responses
        .create({ model: 'gpt-4.1', input: 'Research.', background: true })
        .withResponse();
      await closing.shutdown();
      const call = await store.getCall(closing.ctx.config.tenant, response.headers.get('x-tally-call-id')!);
      expect(call).toMatchObject({
        status: 'error',
        error_type: 'gateway_interrupted',
        pricing_status: 'estimated',
      });
    } finally {
      await store.close();
    }
  });
});

describe.skipIf(SKIP_WITHOUT_RECORDINGS)('gateway: follow-ups on bad input and a state out of reach', () => {
  it('answers a body too large or undecodable with its code, and a state out of reach with a 503', async () => {
    const mock = await new MockUpstream().start();
    const down = new RedisState('redis://127.0.0.1:1', `tally-test:${randomUUID()}:`);
    const config = {
      gateway: {
        body_limit_bytes: 2048,
        providers: [{ id: 'openai', kind: 'openai', base_url: `${mock.url}/v1`, api_key: 'sk-up' }],
      },
    };
    const t = await testApp(config);
    const unreachable = await testApp(config, undefined, down);
    try {
      const base = await t.listen();
      const key = (await t.newKey({})).key;
      const auth = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
      const conv = await new OpenAI({
        apiKey: key,
        baseURL: `${base}/v1`,
        maxRetries: 0,
      }).conversations.create({});
      const from = mock.received.length;
      const big = await request(`${base}/v1/conversations/${conv.id}/items`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ items: [{ type: 'message', role: 'user', content: 'x'.repeat(4096) }] }),
      });
      expect(big.statusCode).toBe(413);
      expect(((await big.body.json()) as { error: { code: string } }).error.code).toBe('body_too_large');
      const garbled = await request(`${base}/v1/conversations/${conv.id}`, {
        method: 'POST',
        headers: { ...auth, 'content-encoding': 'gzip' },
        body: 'not gzip at all',
      });
      expect(garbled.statusCode).toBe(400);
      await garbled.body.dump();
      expect(mock.received.length).toBe(from);

      const other = await unreachable.listen();
      const otherKey = (await unreachable.newKey({})).key;
      const res = await request(`${other}/v1/responses/resp_1`, {
        headers: { authorization: `Bearer ${otherKey}` },
      });
      expect(res.statusCode).toBe(503);
      expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe(
        'budget_state_unavailable',
      );
    } finally {
      await t.shutdown();
      await unreachable.shutdown();
      await down.close();
      await mock.stop();
    }
  });
});
