import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { RedisState } from '@tally/gateway';
import { MockUpstream, SKIP_WITHOUT_RECORDINGS } from '@tally/gateway/testing';
import { createDuckDbStore } from '@tally/store';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { foreignKey, mockedGateway, type TestApp, testApp, until } from '../testing/test-app.js';

type Failure = { status: number; code: string | null; message: string };
const failure = (e: unknown): Failure => e as Failure;

/** A batch input file: one chat request a line. */
const jsonl = (lines: { id: string; model: string; max?: number; user?: string }[]) =>
  `${lines
    .map((l) =>
      JSON.stringify({
        custom_id: l.id,
        method: 'POST',
        url: '/v1/chat/completions',
        body: {
          model: l.model,
          messages: [{ role: 'user', content: `Classify ticket ${l.id}.` }],
          ...(l.max ? { max_tokens: l.max } : {}),
          ...(l.user ? { user: l.user } : {}),
        },
      }),
    )
    .join('\n')}\n`;

describe.skipIf(SKIP_WITHOUT_RECORDINGS)('gateway: the Batch API', () => {
  const mock = new MockUpstream();
  let t: TestApp;
  let base: string;
  let tenant: string;
  const client = (key: string) => new OpenAI({ apiKey: key, baseURL: `${base}/v1`, maxRetries: 0 });

  beforeAll(async () => {
    await mock.start();
    t = await testApp({
      gateway: {
        providers: [
          { id: 'openai', kind: 'openai', base_url: `${mock.url}/v1`, api_key: 'sk-upstream' },
          { id: 'anthropic', kind: 'anthropic', base_url: mock.url, api_key: 'sk-ant-upstream' },
        ],
        batch_poll_ms: 40,
      },
    });
    base = await t.listen();
    tenant = t.ctx.config.tenant;
  });
  afterAll(async () => {
    await t?.shutdown();
    await mock.stop();
  });

  const upload = async (openai: OpenAI, text: string) =>
    openai.files.create({ file: await toFile(Buffer.from(text), 'input.jsonl'), purpose: 'batch' });

  /** A client of `app` on a new key of `project`, and how it makes a chat batch from a file. */
  const batcher = async (app: TestApp, appBase: string, project: string) => {
    const openai = new OpenAI({
      apiKey: (await app.newKey({ project })).key,
      baseURL: `${appBase}/v1`,
      maxRetries: 0,
    });
    const ask = (file: { id: string }) =>
      openai.batches.create({
        input_file_id: file.id,
        endpoint: '/v1/chat/completions',
        completion_window: '24h',
      });
    return { openai, ask };
  };

  /** The calls metered for a batch, once there are `n`. */
  const callsOf = async (batchId: string, n: number) => {
    let found: { id: string; [k: string]: unknown }[] = [];
    const end = Date.now() + 5000;
    while (found.length < n && Date.now() < end) {
      await t.gateway.flush();
      found = (await t.store.listCalls({ tenant, limit: 1000 })).rows.filter((c) =>
        c.id.startsWith(`${batchId}.`),
      ) as unknown as typeof found;
      if (found.length < n) await new Promise((r) => setTimeout(r, 20));
    }
    return found.sort((a, b) => a.id.localeCompare(b.id));
  };

  /** A batch's calls: all but the last answered, each `as` and priced at `nano`; the last failed
   * (`why`), at no cost. */
  const expectMetered = (
    calls: Record<string, unknown>[],
    as: Record<string, unknown>,
    nano: bigint,
    why: string,
  ) => {
    for (const c of calls.slice(0, -1))
      expect(c).toMatchObject({ status: 'ok', pricing_status: 'priced', cost_effective_nano: nano, ...as });
    expect(calls.at(-1)).toMatchObject({ status: 'error', error_type: why, cost_effective_nano: 0n });
  };

  it('runs a batch with the openai client, and meters each of its requests at batch prices', async () => {
    const openai = client((await t.newKey({ project: 'analytics' })).key);
    const file = await openai.files.create({
      file: await toFile(
        Buffer.from(
          jsonl([
            { id: 'ticket-1', model: 'gpt-4o', user: 'u-17' },
            { id: 'ticket-2', model: 'gpt-4o' },
            { id: 'ticket-3', model: 'fault-batch-error' },
          ]),
        ),
        'tickets.jsonl',
      ),
      purpose: 'batch',
    });
    expect(file).toMatchObject({ object: 'file', purpose: 'batch', filename: 'tickets.jsonl' });
    // With the provider's key, not the client's.
    expect(mock.received.at(-1)!.headers['authorization']).toBe('Bearer sk-upstream');
    expect((await openai.files.retrieve(file.id)).id).toBe(file.id);

    const batch = await openai.batches.create({
      input_file_id: file.id,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
    });
    expect(batch.status).toBe('in_progress');
    expect(t.gateway.batches.size).toBe(1);
    expect((await t.app.inject({ url: '/metrics' })).body).toMatch(/^tally_gateway_batches 1$/m);

    let done = batch;
    while (done.status !== 'completed') {
      await new Promise((r) => setTimeout(r, 20));
      done = await openai.batches.retrieve(batch.id);
    }
    expect(done.request_counts).toMatchObject({ total: 3, completed: 2, failed: 1 });
    const output = await (await openai.files.content(done.output_file_id!)).text();
    expect(
      output
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).custom_id),
    ).toEqual(['ticket-1', 'ticket-2']);
    const errors = await (await openai.files.content(done.error_file_id!)).text();
    expect(JSON.parse(errors.trim())).toMatchObject({
      custom_id: 'ticket-3',
      error: { code: 'model_not_found' },
    });

    const calls = await callsOf(batch.id, 3);
    expect(calls.map((c) => c.id)).toEqual([
      `${batch.id}.ticket-1`,
      `${batch.id}.ticket-2`,
      `${batch.id}.ticket-3`,
    ]);
    // gpt-4o at batch prices, half the standard: 18 × $1.25 + 10 × $5 a million.
    expectMetered(
      calls,
      {
        api: 'openai-chat',
        // The model the request asked for, as a call's; the answer names the snapshot that served it.
        model_requested: 'gpt-4o',
        model_served: 'gpt-4o-2024-08-06',
        project: 'analytics',
      },
      72_500n,
      'batch_model_not_found',
    );
    // Each call's end user is the one its request names, as a call's is.
    expect(calls.map((c) => c['user'])).toEqual(['u-17', null, null]);
    await until(() => t.gateway.batches.size === 0);
    expect((await t.app.inject({ url: '/metrics' })).body).toMatch(/^tally_gateway_batches 0$/m);
    // What the batch cost, from spend grouped by the tag each of its calls carries.
    const spend = await t.app.inject({
      url: `/v1/spend?group_by=tag:batch_id&tag=batch_id:${batch.id}`,
      headers: t.auth,
    });
    expect(spend.json().rows).toEqual([
      expect.objectContaining({ 'tag:batch_id': batch.id, cost_usd: '0.000145', calls: 3 }),
    ]);

    // Metered once, however often the client looks at it afterwards.
    await openai.batches.retrieve(batch.id);
    await t.gateway.flush();
    expect(await callsOf(batch.id, 3)).toHaveLength(3);
  });

  it("keeps files and batches to their owner: another tenant's key reaches none of them", async () => {
    const openai = client((await t.newKey({ project: 'analytics' })).key);
    const other = client(await foreignKey(t.store));
    const file = await upload(openai, jsonl([{ id: 'a', model: 'gpt-4o' }]));
    const batch = await openai.batches.create({
      input_file_id: file.id,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
    });
    const from = mock.received.length;
    expect(await other.files.retrieve(file.id).catch(failure)).toMatchObject({
      status: 404,
      code: 'file_not_found',
    });
    expect(await other.files.content(file.id).catch(failure)).toMatchObject({
      status: 404,
      code: 'file_not_found',
    });
    expect(await other.files.delete(file.id).catch(failure)).toMatchObject({
      status: 404,
      code: 'file_not_found',
    });
    expect(await other.batches.retrieve(batch.id).catch(failure)).toMatchObject({
      status: 404,
      code: 'batch_not_found',
    });
    expect(await other.batches.cancel(batch.id).catch(failure)).toMatchObject({
      status: 404,
      code: 'batch_not_found',
    });
    // Nor can it run a batch on the other's file (and so read it through its output).
    expect(
      await other.batches
        .create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' })
        .catch(failure),
    ).toMatchObject({ status: 404, code: 'file_not_found' });
    expect(mock.received.length).toBe(from);

    // The provider's lists hold every tenant's: each key sees its own.
    const mine = await openai.files.list();
    expect(mine.data.map((f) => f.id)).toContain(file.id);
    expect((await other.files.list()).data).toEqual([]);
    expect((await openai.batches.list()).data.map((b) => b.id)).toContain(batch.id);
    expect((await other.batches.list()).data).toEqual([]);
    await callsOf(batch.id, 1);
  });

  it('refuses, before it goes, a batch for a model the key may not use, or one its budget cannot hold', async () => {
    const pinned = client((await t.newKey({ models: ['gpt-4o'] })).key);
    const file = await upload(
      pinned,
      jsonl([
        { id: 'a', model: 'gpt-4o' },
        { id: 'b', model: 'gpt-4' },
      ]),
    );
    const from = mock.received.length;
    const refused = (await pinned.batches
      .create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' })
      .catch(failure)) as Failure;
    expect(refused).toMatchObject({ status: 403, code: 'model_not_allowed' });
    expect(refused.message).toMatch(/Line 2 .* gpt-4\b/);
    // The file was read to check it; no batch went.
    expect(mock.received.slice(from).map((r) => r.path)).toEqual([`/v1/files/${file.id}/content`]);

    // Each request reserves its prompt and 4,000 tokens out at gpt-4o's batch $5 a million: about
    // $0.02 each. Three do not fit under $0.05; two do, and settle at their cost.
    const budgeted = client((await t.newKey({ project: 'p', budget_usd: 0.05, period: 'month' })).key);
    const three = await upload(
      budgeted,
      jsonl([
        { id: 'a', model: 'gpt-4o', max: 4000 },
        { id: 'b', model: 'gpt-4o', max: 4000 },
        { id: 'c', model: 'gpt-4o', max: 4000 },
      ]),
    );
    const over = await budgeted.batches
      .create({ input_file_id: three.id, endpoint: '/v1/chat/completions', completion_window: '24h' })
      .catch(failure);
    expect(over).toMatchObject({ status: 429, code: 'budget_exceeded' });
    const two = await upload(
      budgeted,
      jsonl([
        { id: 'a', model: 'gpt-4o', max: 4000 },
        { id: 'b', model: 'gpt-4o', max: 4000 },
      ]),
    );
    const batch = await budgeted.batches.create({
      input_file_id: two.id,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
    });
    // While it runs, its reservation holds: a second one does not fit.
    const second = await budgeted.batches
      .create({ input_file_id: two.id, endpoint: '/v1/chat/completions', completion_window: '24h' })
      .catch(failure);
    expect(second).toMatchObject({ status: 429, code: 'budget_exceeded' });
    await callsOf(batch.id, 2);
    await until(() => t.gateway.batches.size === 0);
    // Settled at its cost ($0.000145), the budget holds another.
    const again = await budgeted.batches.create({
      input_file_id: two.id,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
    });
    expect(again.status).toBe('in_progress');
    await callsOf(again.id, 2);
  });

  it('gives back the reservation of a batch cancelled before it ran, metering nothing', async () => {
    mock.batchApi.batchMs = 60_000;
    try {
      const openai = client((await t.newKey({ project: 'p', budget_usd: 0.05, period: 'month' })).key);
      const file = await upload(
        openai,
        jsonl([
          { id: 'a', model: 'gpt-4o', max: 4000 },
          { id: 'b', model: 'gpt-4o', max: 4000 },
        ]),
      );
      const ask = {
        input_file_id: file.id,
        endpoint: '/v1/chat/completions',
        completion_window: '24h',
      } as const;
      const batch = await openai.batches.create(ask);
      expect(await openai.batches.create(ask).catch(failure)).toMatchObject({
        status: 429,
        code: 'budget_exceeded',
      });
      const cancelled = await openai.batches.cancel(batch.id);
      expect(cancelled.status).toBe('cancelled');
      // Seen ended in the cancel's answer: nothing to meter, and the budget holds the next.
      await until(() => !t.gateway.batches.has(tenant, batch.id));
      await t.gateway.flush();
      const stored = (await t.store.listCalls({ tenant, limit: 1000 })).rows;
      expect(stored.filter((c) => c.id.startsWith(`${batch.id}.`))).toEqual([]);
      const next = await openai.batches.create(ask);
      expect(next.status).toBe('in_progress');
      await openai.batches.cancel(next.id);
    } finally {
      mock.batchApi.batchMs = 80;
    }
  });

  it('refuses a batch of an endpoint it does not meter, and a file it does not know', async () => {
    const openai = client((await t.newKey({})).key);
    const file = await upload(openai, jsonl([{ id: 'a', model: 'gpt-4o' }]));
    expect(
      await openai.batches
        .create({ input_file_id: file.id, endpoint: '/v1/moderations', completion_window: '24h' })
        .catch(failure),
    ).toMatchObject({ status: 400, code: 'batch_endpoint_unsupported' });
    expect(
      await openai.batches
        .create({
          input_file_id: 'file-elsewhere',
          endpoint: '/v1/chat/completions',
          completion_window: '24h',
        })
        .catch(failure),
    ).toMatchObject({ status: 404, code: 'file_not_found' });
    // A file is uploaded as a form: anything else goes nowhere.
    const from = mock.received.length;
    const res = await fetch(`${base}/v1/files`, {
      method: 'POST',
      headers: { authorization: `Bearer ${openai.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ purpose: 'batch' }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: unknown }).error).toMatchObject({ code: 'invalid_upload' });
    expect(mock.received.length).toBe(from);
  });

  it('holds a batch to the budgets that count its model', async () => {
    const { t: other, base: otherBase } = await mockedGateway(mock.url);
    try {
      const made = await other.app.inject({
        method: 'POST',
        url: '/v1/budgets',
        headers: other.auth,
        payload: {
          id: 'b-gpt4',
          scope: 'project',
          subject: 'legacy',
          limit_usd: '0.05',
          action: 'block',
          models: ['gpt-4'],
        },
      });
      expect(made.statusCode).toBe(201);
      const { openai, ask } = await batcher(other, otherBase, 'legacy');
      // 4,000 tokens out of gpt-4 is past the project's $0.05 for gpt-4...
      const gpt4 = await upload(openai, jsonl([{ id: 'a', model: 'gpt-4', max: 4000 }]));
      const refused = (await ask(gpt4).catch(failure)) as Failure;
      expect(refused).toMatchObject({ status: 429, code: 'budget_exceeded' });
      expect(refused.message).toContain('b-gpt4');
      // ...which does not count gpt-4o.
      const gpt4o = await upload(openai, jsonl([{ id: 'a', model: 'gpt-4o', max: 4000 }]));
      expect((await ask(gpt4o)).status).toBe('in_progress');
    } finally {
      await other.shutdown();
    }
  });

  it('holds a batch that mixes models to each budget for the models it counts, and settles each so', async () => {
    const { t: other, base: otherBase } = await mockedGateway(mock.url, { batch_poll_ms: 40 });
    try {
      const budget = (id: string, limit: string, models?: string[]) =>
        other.app.inject({
          method: 'POST',
          url: '/v1/budgets',
          headers: other.auth,
          payload: {
            id,
            scope: 'project',
            subject: 'mixed',
            limit_usd: limit,
            action: 'block',
            ...(models ? { models } : {}),
          },
        });
      expect((await budget('b-gpt4', '0.05', ['gpt-4'])).statusCode).toBe(201);
      expect((await budget('b-all', '5')).statusCode).toBe(201);
      const standing = async () => {
        const res = await other.app.inject({ method: 'GET', url: '/v1/budgets', headers: other.auth });
        const all = (res.json() as { data: { id: string; spent_usd: string; in_flight_usd: string }[] }).data;
        return Object.fromEntries(all.map((b) => [b.id, [b.spent_usd, b.in_flight_usd]]));
      };
      const { openai, ask } = await batcher(other, otherBase, 'mixed');
      // The gpt-4 request alone is past b-gpt4's $0.05: the batch is refused, though most of it is
      // gpt-4o, which b-gpt4 does not count.
      const dear = await upload(
        openai,
        jsonl([
          { id: 'a', model: 'gpt-4o', max: 10 },
          { id: 'b', model: 'gpt-4', max: 4000 },
        ]),
      );
      const refused = (await ask(dear).catch(failure)) as Failure;
      expect(refused).toMatchObject({ status: 429, code: 'budget_exceeded' });
      expect(refused.message).toContain('b-gpt4');
      // Nothing stays held for the refused batch.
      expect(await standing()).toEqual({ 'b-gpt4': ['0', '0'], 'b-all': ['0', '0'] });
      mock.batchApi.batchMs = 60_000;
      const fits = await upload(
        openai,
        jsonl([
          { id: 'a', model: 'gpt-4o', max: 4000 },
          { id: 'b', model: 'gpt-4', max: 100 },
        ]),
      );
      const batch = await ask(fits);
      expect(batch.status).toBe('in_progress');
      // While it runs, b-gpt4 holds the gpt-4 request's largest cost; b-all holds both requests'.
      const held = await standing();
      const gpt4Held = Number(held['b-gpt4']![1]);
      const allHeld = Number(held['b-all']![1]);
      expect(gpt4Held).toBeGreaterThan(0);
      expect(allHeld).toBeGreaterThan(gpt4Held + 0.01);
      mock.batchApi.batchMs = 0;
      mock.batchApi.finishNow(batch.id);
      await until(() => !other.gateway.batches.has(other.ctx.config.tenant, batch.id), 5000);
      await other.gateway.flush();
      const calls = (await other.store.listCalls({ tenant: other.ctx.config.tenant, limit: 100 })).rows
        .filter((c) => c.id.startsWith(`${batch.id}.`))
        .sort((x, y) => x.id.localeCompare(y.id));
      expect(calls.map((c) => c.model_requested)).toEqual(['gpt-4o', 'gpt-4']);
      const [gpt4o, gpt4] = calls.map((c) => c.cost_effective_nano as bigint);
      expect(gpt4o! > 0n && gpt4! > 0n).toBe(true);
      // Each budget has spent what its models cost, and holds nothing more.
      const usd = (n: bigint) => (Number(n) / 1e9).toString();
      expect(await standing()).toEqual({
        'b-gpt4': [usd(gpt4!), '0'],
        'b-all': [usd(gpt4o! + gpt4!), '0'],
      });
    } finally {
      mock.batchApi.batchMs = 80;
      await other.shutdown();
    }
  });

  it('refuses a batch whose input file is past the size it reads', async () => {
    const { t: small, base: smallBase } = await mockedGateway(mock.url, { batch_input_max_bytes: 1000 });
    try {
      const openai = new OpenAI({
        apiKey: (await small.newKey({})).key,
        baseURL: `${smallBase}/v1`,
        maxRetries: 0,
      });
      const lines = Array.from({ length: 40 }, (_, i) => ({ id: `r${i}`, model: 'gpt-4o' }));
      const file = await upload(openai, jsonl(lines));
      const from = mock.received.length;
      expect(
        await openai.batches
          .create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' })
          .catch(failure),
      ).toMatchObject({ status: 400, code: 'batch_input_too_large' });
      expect(mock.received.slice(from).map((r) => r.path)).toEqual([`/v1/files/${file.id}/content`]);
    } finally {
      await small.shutdown();
    }
  });

  it('meters a batch still running when the gateway stops, from the next process, once', async () => {
    const dir = mkdtempSync(join(os.tmpdir(), 'tally-batches-'));
    const store = await createDuckDbStore({ path: join(dir, 'tally.duckdb') });
    await store.migrate();
    // Each process its own client of the machine's Redis, as replicas and restarts have it.
    const prefix = `tally-test:${randomUUID()}:`;
    const states: RedisState[] = [];
    const stateOf = () => {
      states.push(new RedisState('redis://127.0.0.1:6379', prefix));
      return states.at(-1)!;
    };
    /** The key's budget: spent, and held by what is in flight. */
    const standing = async (t: TestApp) => {
      const res = await t.app.inject({ method: 'GET', url: '/v1/budgets', headers: t.auth });
      const all = (res.json() as { data: { scope: string; spent_usd: string; in_flight_usd: string }[] })
        .data;
      const b = all.find((x) => x.scope === 'key')!;
      return [b.spent_usd, b.in_flight_usd];
    };
    const config = {
      gateway: {
        providers: [{ id: 'openai', kind: 'openai', base_url: `${mock.url}/v1`, api_key: 'sk-upstream' }],
        batch_poll_ms: 40,
      },
    };
    const spool = join(dir, 'spool', 'calls');
    mock.batchApi.batchMs = 60_000;
    const first = await testApp(config, undefined, stateOf(), store, spool);
    try {
      const openai = new OpenAI({
        apiKey: (await first.newKey({ project: 'nightly', budget_usd: 1, period: 'month' })).key,
        baseURL: `${await first.listen()}/v1`,
        maxRetries: 0,
      });
      const file = await upload(
        openai,
        jsonl([
          { id: 'n1', model: 'gpt-4o' },
          { id: 'n2', model: 'gpt-4o' },
        ]),
      );
      const batch = await openai.batches.create({
        input_file_id: file.id,
        endpoint: '/v1/chat/completions',
        completion_window: '24h',
      });
      const [, heldFirst] = await standing(first);
      expect(Number(heldFirst)).toBeGreaterThan(0);
      await first.shutdown();
      await states[0]!.close();
      // Kept on disk, with what metering it needs: whose it is, and its reservation.
      const keptDir = join(dir, 'spool', 'background');
      const [kept] = readdirSync(keptDir).filter((f) => f.startsWith('batches.'));
      const keptText = readFileSync(join(keptDir, kept!), 'utf8');
      expect(JSON.parse(keptText)).toMatchObject([
        { id: batch.id, provider: 'openai', attribution: { project: 'nightly' } },
      ]);
      expect(await store.counts(tenant)).toMatchObject({ calls: 0 });

      // The next process takes the watch over while the batch still runs: the reservation, which
      // went with the first process, is held again by the next.
      const next = await testApp(config, undefined, stateOf(), store, spool);
      try {
        await next.gateway.batches.ready;
        expect(next.gateway.batches.has(tenant, batch.id)).toBe(true);
        expect(await standing(next)).toEqual(['0', heldFirst]);
        // It ends; the next process meters it and settles the budget.
        mock.batchApi.batchMs = 0;
        mock.batchApi.finishNow(batch.id);
        await until(() => next.gateway.batches.size === 0, 5000);
        await next.gateway.flush();
        const calls = (await store.listCalls({ tenant, limit: 100 })).rows
          .filter((c) => c.id.startsWith(batch.id))
          .sort((a, b) => a.id.localeCompare(b.id));
        expect(calls.map((c) => [c.id, c.status, c.cost_effective_nano, c.project])).toEqual([
          [`${batch.id}.n1`, 'ok', 72_500n, 'nightly'],
          [`${batch.id}.n2`, 'ok', 72_500n, 'nightly'],
        ]);
        expect(readdirSync(keptDir).filter((f) => f.startsWith('batches.'))).toEqual([]);
        // The owners were kept in the shared state: the client reads its output through the new one.
        const again = new OpenAI({
          apiKey: openai.apiKey,
          baseURL: `${await next.listen()}/v1`,
          maxRetries: 0,
        });
        const done = await again.batches.retrieve(batch.id);
        expect(done.status).toBe('completed');
        expect(
          (await (await again.files.content(done.output_file_id!)).text()).trim().split('\n'),
        ).toHaveLength(2);
        expect(await standing(next)).toEqual(['0.000145', '0']);
      } finally {
        await next.shutdown();
      }
      // A process that stops after it settled a batch and before it could say so on disk leaves
      // the batch kept: the one after meters it again (stored once) and does not count it twice.
      writeFileSync(join(keptDir, 'batches.999999999.0123456789ab.json'), keptText);
      const third = await testApp(config, undefined, stateOf(), store, spool);
      try {
        await third.gateway.batches.ready;
        await until(() => third.gateway.batches.size === 0, 5000);
        await third.gateway.flush();
        const calls = (await store.listCalls({ tenant, limit: 100 })).rows.filter((c) =>
          c.id.startsWith(batch.id),
        );
        expect(calls).toHaveLength(2);
        expect(await standing(third)).toEqual(['0.000145', '0']);
      } finally {
        await third.shutdown();
      }
    } finally {
      mock.batchApi.batchMs = 80;
      for (const s of states) await s.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe("Anthropic's message batches", () => {
    const anthropicOf = (key: string) => new Anthropic({ apiKey: key, baseURL: base, maxRetries: 0 });
    const request = (id: string, model = 'claude-sonnet-4-5', user?: string) => ({
      custom_id: id,
      params: {
        model,
        max_tokens: 1024,
        messages: [{ role: 'user' as const, content: `Summarise ${id}.` }],
        ...(user ? { metadata: { user_id: user } } : {}),
      },
    });

    it('runs a message batch with the Anthropic client, and meters each request at batch prices', async () => {
      const anthropic = anthropicOf((await t.newKey({ project: 'research' })).key);
      const made = await anthropic.messages.batches.create({
        requests: [
          request('doc-1', undefined, 'u-42'),
          request('doc-2'),
          request('doc-3', 'fault-batch-error'),
        ],
      });
      expect(made).toMatchObject({ type: 'message_batch', processing_status: 'in_progress' });
      expect(mock.received.at(-1)!.headers['x-api-key']).toBe('sk-ant-upstream');
      let done = made;
      while (done.processing_status !== 'ended') {
        await new Promise((r) => setTimeout(r, 20));
        done = await anthropic.messages.batches.retrieve(made.id);
      }
      expect(done.request_counts).toMatchObject({ succeeded: 2, errored: 1 });
      // Its results are read through the gateway, not at the provider's own address.
      expect(done.results_url).toBe(`/v1/messages/batches/${made.id}/results`);
      const results: string[] = [];
      for await (const r of await anthropic.messages.batches.results(made.id))
        results.push(`${r.custom_id} ${r.result.type}`);
      expect(results).toEqual(['doc-1 succeeded', 'doc-2 succeeded', 'doc-3 errored']);

      const calls = await callsOf(made.id, 3);
      // claude-sonnet-4-5 at batch prices, half the standard: 25 × $1.50 + 12 × $7.50 a million.
      expectMetered(
        calls,
        {
          api: 'anthropic-messages',
          provider: 'anthropic',
          model_requested: 'claude-sonnet-4-5',
          project: 'research',
        },
        127_500n,
        'batch_errored:invalid_request_error',
      );
      // The end user a request names (metadata.user_id), as a call's.
      expect(calls.map((c) => c['user'])).toEqual(['u-42', null, null]);
      await until(() => !t.gateway.batches.has(tenant, made.id));
    });

    it("keeps message batches to their owner, and answers in Anthropic's format", async () => {
      const anthropic = anthropicOf((await t.newKey({ project: 'research' })).key);
      const other = anthropicOf(await foreignKey(t.store, 'third'));
      const made = await anthropic.messages.batches.create({ requests: [request('x')] });
      const from = mock.received.length;
      for (const attempt of [
        () => other.messages.batches.retrieve(made.id),
        () => other.messages.batches.cancel(made.id),
        () => other.messages.batches.delete(made.id),
      ]) {
        const err = (await attempt().catch((e: unknown) => e)) as { status: number; error: unknown };
        expect(err.status).toBe(404);
        expect(err.error).toMatchObject({
          type: 'error',
          error: { type: 'not_found_error', code: 'message_batch_not_found' },
        });
      }
      expect(mock.received.length).toBe(from);
      const mine: string[] = [];
      for await (const b of anthropic.messages.batches.list()) mine.push(b.id);
      expect(mine).toContain(made.id);
      const theirs: string[] = [];
      for await (const b of other.messages.batches.list()) theirs.push(b.id);
      expect(theirs).toEqual([]);
      await callsOf(made.id, 1);
    });

    it('refuses a message batch for a model the key may not use, or one its budget cannot hold', async () => {
      const pinned = anthropicOf((await t.newKey({ models: ['claude-sonnet-4-5'] })).key);
      const from = mock.received.length;
      const refused = (await pinned.messages.batches
        .create({ requests: [request('a'), request('b', 'claude-opus-4-1')] })
        .catch((e: unknown) => e)) as { status: number; message: string };
      expect(refused.status).toBe(403);
      expect(refused.message).toMatch(/requests\[1\] asks for model claude-opus-4-1/);
      // 1,024 tokens out at $7.50 a million each, about $0.0077: three do not fit under $0.02.
      const budgeted = anthropicOf((await t.newKey({ budget_usd: 0.02, period: 'month' })).key);
      const over = (await budgeted.messages.batches
        .create({ requests: [request('a'), request('b'), request('c')] })
        .catch((e: unknown) => e)) as { status: number; error: unknown };
      expect(over.status).toBe(429);
      expect(over.error).toMatchObject({ error: { code: 'budget_exceeded' } });
      expect(mock.received.length).toBe(from);
      const fits = await budgeted.messages.batches.create({ requests: [request('a'), request('b')] });
      await callsOf(fits.id, 2);
    });
  });
});
