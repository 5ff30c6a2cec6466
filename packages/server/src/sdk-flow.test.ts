import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort, MockUpstream, SKIP_WITHOUT_RECORDINGS } from '@tally/gateway/testing';
import { gatewayHeaders, openAIOptions, Tally } from '@tally/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, testApp } from './testing/test-app.js';

describe('the SDK against a real server', () => {
  const mock = new MockUpstream();
  let t: TestApp;
  let url: string;
  let salt: string;

  beforeAll(async () => {
    await mock.start();
    t = await testApp({
      gateway: {
        providers: [{ id: 'openai', kind: 'openai', base_url: `${mock.url}/v1`, api_key: 'sk-up' }],
      },
    });
    url = await t.listen();
    const uc = await t.app.inject({
      method: 'POST',
      url: '/v1/use-cases',
      headers: t.auth,
      payload: { id: 'triage', name: 'Support triage', holdout_share: 0.25 },
    });
    salt = uc.json().holdout.salt;
  });
  afterAll(async () => {
    await t?.shutdown();
    await mock.stop();
  });

  const events = (taskId?: string) => t.store.listTaskEvents('default', 'triage', taskId);

  it('tracks task events in batches; eligible() assigns locally after one read of the config', async () => {
    const calls: string[] = [];
    const tally = new Tally({
      url,
      apiKey: t.auth.authorization.slice(7),
      batchSize: 3,
      flushIntervalMs: 20,
      fetch: (input, init) => {
        calls.push(`${init?.method} ${String(input).replace(url, '')}`);
        return fetch(input, init);
      },
    });
    const arms = [];
    for (let i = 0; i < 5; i++) arms.push(await tally.eligible('triage', `T-${i}`, { user: 'u-1' }));
    tally.track({
      type: 'task.completed',
      use_case: 'triage',
      task_id: 'T-0',
      outcome: 'success',
      handling_seconds: 240,
      value_usd: '4.20',
    });
    await tally.close();
    expect(calls.filter((c) => c.startsWith('GET'))).toEqual(['GET /v1/use-cases/triage']);
    expect(calls.filter((c) => c.startsWith('POST')).length).toBe(2);
    expect(tally.stats).toMatchObject({ sent: 6, duplicates: 0, rejected: 0, dropped: 0, pending: 0 });
    const stored = await events();
    expect(stored).toHaveLength(6);
    const assigned = await t.app.inject({
      method: 'POST',
      url: '/v1/assign',
      headers: t.auth,
      payload: { use_case: 'triage', unit_ids: ['T-0', 'T-1', 'T-2', 'T-3', 'T-4'] },
    });
    expect(arms).toEqual(assigned.json().assignments.map((a: { arm: string }) => a.arm));
    const byTask = new Map(stored.filter((e) => e.type === 'task.eligible').map((e) => [e.task_id, e.arm]));
    expect([0, 1, 2, 3, 4].map((i) => byTask.get(`T-${i}`))).toEqual(arms);
    expect(salt).toBeTruthy();
  });

  it('retries through failures with backoff, and a resent batch is stored once', async () => {
    let posts = 0;
    const errors: string[] = [];
    const tally = new Tally({
      url,
      apiKey: t.auth.authorization.slice(7),
      flushIntervalMs: 5,
      backoffMs: 10,
      onError: (e) => errors.push(e.message),
      fetch: async (input, init) => {
        if (init?.method !== 'POST') return fetch(input, init);
        posts++;
        if (posts === 1) throw new TypeError('fetch failed: connection refused');
        if (posts === 2) {
          // The server takes the batch, but the answer is lost on the way back.
          await fetch(input, init);
          throw new TypeError('fetch failed: socket hang up');
        }
        return fetch(input, init);
      },
    });
    for (let i = 0; i < 4; i++)
      tally.track({ type: 'task.human', use_case: 'triage', task_id: `R-${i}`, kind: 'review', seconds: 30 });
    for (let i = 0; i < 100 && tally.stats.pending > 0; i++) await new Promise((r) => setTimeout(r, 10));
    await tally.close();
    expect(posts).toBe(3);
    expect(errors).toEqual(['fetch failed: connection refused', 'fetch failed: socket hang up']);
    expect(tally.stats).toMatchObject({ sent: 4, duplicates: 4, pending: 0 });
    for (let i = 0; i < 4; i++) expect(await events(`R-${i}`)).toHaveLength(1);
  });

  it('keeps a bounded buffer while the server is unreachable, dropping the oldest', async () => {
    const port = await freePort();
    const errors: string[] = [];
    const tally = new Tally({
      url: `http://127.0.0.1:${port}`,
      apiKey: 'tk-x',
      maxBuffer: 5,
      flushIntervalMs: 60_000,
      onError: (e) => errors.push(e.code),
    });
    const ids = [];
    for (let i = 0; i < 8; i++)
      ids.push(tally.track({ type: 'task.opt_out', use_case: 'triage', task_id: `O-${i}` }));
    expect(tally.stats).toMatchObject({ dropped: 3, pending: 5 });
    await tally.close();
    expect(tally.stats.pending).toBe(5);
    expect(errors.filter((c) => c === 'buffer_full')).toHaveLength(3);
    expect(errors.at(-1)).toBe('network');
    expect(() => tally.track({ type: 'task.opt_out', use_case: 'triage', task_id: 'late' })).toThrow(
      /closed/,
    );
  });

  it('reports events the server rejects, with their id, and keeps the good ones', async () => {
    const errors: string[] = [];
    const tally = new Tally({
      url,
      apiKey: t.auth.authorization.slice(7),
      onError: (e) => errors.push(e.message),
    });
    tally.track({ type: 'task.completed', use_case: 'triage', task_id: 'B-1', outcome: 'success' });
    const bad = tally.track({
      type: 'task.completed',
      use_case: 'triage',
      task_id: 'B-2',
      outcome: 'maybe' as 'success',
    });
    await tally.close();
    expect(tally.stats).toMatchObject({ sent: 1, rejected: 1 });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain(bad);
    expect(await events('B-1')).toHaveLength(1);
  });

  it.skipIf(SKIP_WITHOUT_RECORDINGS)(
    'the openai client sends the attribution headers through the gateway',
    async () => {
      const { key } = await t.newKey({ project: 'support' });
      const openai = new OpenAI({
        ...openAIOptions({ gatewayUrl: url, key, useCase: 'triage', team: 'cx' }),
        maxRetries: 0,
      });
      await openai.chat.completions.create(
        { model: 'gpt-4o', messages: [{ role: 'user', content: 'Hello' }] },
        { headers: gatewayHeaders({ taskId: 'T-1', tags: { channel: 'email, chat', région: 'eu=1' } }) },
      );
      await t.gateway.flush();
      const [c] = (await t.app.inject({ url: '/v1/calls?limit=1', headers: t.auth })).json().data;
      expect(c).toMatchObject({
        project: 'support',
        team: 'cx',
        use_case: 'triage',
        task_id: 'T-1',
        tags: { channel: 'email, chat', région: 'eu=1' },
      });

      // A key's own tags go on every call it makes, over the header's of the same name; spend
      // groups by them.
      const tagged = (
        await t.app.inject({
          method: 'POST',
          url: '/v1/keys',
          headers: t.auth,
          payload: { project: 'support', tags: { app: 'checkout', channel: 'web' } },
        })
      ).json();
      const checkout = new OpenAI({ ...openAIOptions({ gatewayUrl: url, key: tagged.key }), maxRetries: 0 });
      await checkout.chat.completions.create(
        { model: 'gpt-4o', messages: [{ role: 'user', content: 'Hello' }] },
        { headers: gatewayHeaders({ tags: { channel: 'email', env: 'prod' } }) },
      );
      await t.gateway.flush();
      const [d] = (await t.app.inject({ url: '/v1/calls?limit=1', headers: t.auth })).json().data;
      expect(d.tags).toEqual({ app: 'checkout', channel: 'web', env: 'prod' });
      const byApp = (await t.app.inject({ url: '/v1/spend?group_by=tag:app', headers: t.auth })).json().rows;
      expect(byApp.find((r: Record<string, unknown>) => r['tag:app'] === 'checkout')).toMatchObject({
        calls: 1,
      });
      const keys = (await t.app.inject({ url: '/v1/keys', headers: t.auth })).json().data;
      expect(keys.find((k: { id: string }) => k.id === tagged.id)).toMatchObject({
        tags: { app: 'checkout', channel: 'web' },
      });
      const bad = await t.app.inject({
        method: 'POST',
        url: '/v1/keys',
        headers: t.auth,
        payload: { tags: { app: 7 } },
      });
      expect(bad.statusCode).toBe(400);
      expect(bad.json().error.message).toMatch(/tags must be an object of strings/);
    },
  );

  it.skipIf(SKIP_WITHOUT_RECORDINGS)(
    "the openai client asks for the gateway's retries and fallbacks through the SDK's options",
    async () => {
      const { key } = await t.newKey({ project: 'support' });
      const openai = new OpenAI({
        ...openAIOptions({ gatewayUrl: url, key, retries: 1, timeoutMs: 20_000 }),
        maxRetries: 0,
      });
      // Fails once, then answers: the gateway's one retry, not the client's, gets it.
      const retried = await openai.chat.completions.create({
        model: 'fault-500x1',
        messages: [{ role: 'user', content: 'Hello' }],
      });
      expect(retried.choices[0]?.message.content).toBeTruthy();
      // Fails every time: the request's fallback answers.
      const fellBack = await openai.chat.completions.create(
        { model: 'fault-500', messages: [{ role: 'user', content: 'Hello' }] },
        { headers: gatewayHeaders({ retries: 0, fallbacks: ['gpt-4o-mini'] }) },
      );
      expect(fellBack.choices[0]?.message.content).toBeTruthy();
      await t.gateway.flush();
      const calls = (await t.app.inject({ url: '/v1/calls?limit=4', headers: t.auth })).json().data;
      expect(calls.map((c: { status: string; route: unknown }) => [c.status, c.route])).toEqual([
        ['ok', { tier: 'fallback', fallback_hops: 1 }],
        ['error', { tier: null, fallback_hops: 0 }],
        ['ok', { tier: null, fallback_hops: 1 }],
        ['error', { tier: null, fallback_hops: 0 }],
      ]);
    },
  );

  it('flushes what is queued when a Node process ends without close()', async () => {
    const sdk = fileURLToPath(new URL('../../sdk/dist/index.js', import.meta.url));
    const script = `
      import { Tally } from ${JSON.stringify(sdk)};
      const t = new Tally({ url: process.env.URL, apiKey: process.env.KEY, flushIntervalMs: 60000 });
      for (let i = 0; i < 3; i++) t.track({ type: 'task.completed', use_case: 'triage', task_id: 'X-' + i, outcome: 'success' });
      // No close(): the process simply runs out of work.
    `;
    await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, URL: url, KEY: t.auth.authorization.slice(7) },
    });
    for (let i = 0; i < 3; i++) expect(await events(`X-${i}`)).toHaveLength(1);
  });
});
