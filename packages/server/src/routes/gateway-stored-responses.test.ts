import { randomUUID } from 'node:crypto';
import { RedisState } from '@tally/gateway';
import { MockUpstream, SKIP_WITHOUT_RECORDINGS } from '@tally/gateway/testing';
import { createDuckDbStore } from '@tally/store';
import OpenAI from 'openai';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { foreignKey, lastCalls, type TestApp, testApp } from '../testing/test-app.js';

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
