import Anthropic from '@anthropic-ai/sdk';
import { chatRecordings, MOCK_THOUGHT, MockUpstream, SKIP_WITHOUT_RECORDINGS } from '@tally/gateway/testing';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, testApp } from '../testing/test-app.js';

type Call = Record<string, unknown> & { cost_usd: string; tokens: Record<string, number> };

/** The schema of the structured answers asked of Claude: what the mock's forced tool call gives. */
const WEATHER_SCHEMA = {
  type: 'object',
  properties: { location: { type: 'string' }, celsius: { type: 'number' } },
  required: ['location', 'celsius'],
  additionalProperties: false,
};

describe.skipIf(SKIP_WITHOUT_RECORDINGS)('gateway with the official clients', () => {
  const mock = new MockUpstream();
  let t: TestApp;
  let base: string;
  let key: string;
  let openai: OpenAI;

  beforeAll(async () => {
    await mock.start();
    t = await testApp({
      gateway: {
        providers: [
          { id: 'openai', kind: 'openai', base_url: `${mock.url}/v1`, api_key: 'sk-upstream' },
          { id: 'anthropic', kind: 'anthropic', base_url: mock.url, api_key: 'sk-ant-upstream' },
          {
            id: 'azure-eu',
            kind: 'azure',
            base_url: mock.url,
            api_key: 'azure-secret',
            api_version: '2024-10-21',
            deployments: { 'gpt-4o': 'prod-4o' },
          },
          {
            id: 'azure-v1',
            kind: 'azure',
            base_url: mock.url,
            api_key: 'azure-secret',
            deployments: { 'gpt-4': 'gpt-4o' }, // the mock answers for the deployment's name
          },
          {
            id: 'gemini',
            kind: 'openai-compatible',
            base_url: `${mock.url}/v1beta/openai`,
            api_key: 'gemini-secret',
            price_provider: 'google',
          },
        ],
      },
    });
    base = await t.listen();
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/keys',
      headers: t.auth,
      payload: {
        project: 'support',
        team: 'cx',
        budget_usd: 100,
        period: 'month',
        rpm: 1000,
        tpm: 1_000_000,
      },
    });
    expect(res.statusCode).toBe(201);
    key = res.json().key;
    expect(key).toMatch(/^tk-/);
    openai = new OpenAI({ apiKey: key, baseURL: `${base}/v1`, maxRetries: 0 });
  });
  afterAll(async () => {
    await t?.shutdown();
    await mock.stop();
  });

  /** The newest calls, after the metering sink has written them. */
  async function lastCalls(n = 1): Promise<Call[]> {
    await t.gateway.flush();
    const res = await t.app.inject({ url: `/v1/calls?limit=${n}`, headers: t.auth });
    return res.json().data;
  }

  const recorded = () => {
    const rec = chatRecordings().find(
      (r) => r.status === 200 && r.request['model'] === 'gpt-4' && r.request['stream'] === undefined,
    )!;
    return rec;
  };

  it('chat: the recorded response comes back, and the call is priced to the nano-dollar', async () => {
    const rec = recorded();
    const out = await openai.chat.completions.create(rec.request as never, {
      headers: { 'x-tally-use-case': 'triage', 'x-tally-task-id': 'T-1', 'x-tally-project': 'ignored' },
    });
    const body = rec.body as {
      choices: unknown;
      usage: { prompt_tokens: number; completion_tokens: number };
    };
    expect(out.choices).toEqual(body.choices);
    const call = (await lastCalls())[0]!;
    const u = body.usage;
    // gpt-4-0613: $30 / $60 per million tokens.
    const nano = BigInt(u.prompt_tokens) * 30_000n + BigInt(u.completion_tokens) * 60_000n;
    expect(call).toMatchObject({
      project: 'support', // pinned by the key: the header does not override it
      team: 'cx',
      use_case: 'triage',
      task_id: 'T-1',
      provider: 'openai',
      model_requested: 'gpt-4',
      model_served: 'gpt-4-0613',
      status: 'ok',
      pricing_status: 'priced',
      cost_usd: (Number(nano) / 1e9).toString(),
    });
    expect(call.tokens.input).toBe(u.prompt_tokens);
    expect(mock.received.at(-1)!.headers.authorization).toBe('Bearer sk-upstream');
    expect(mock.received.at(-1)!.raw).toBe(JSON.stringify(rec.request));
  });

  it("attributes a call to the end user its body names (OpenAI's user, Anthropic's metadata.user_id), under the header and a key's pin", async () => {
    const hello = [{ role: 'user' as const, content: 'Hello' }];
    await openai.chat.completions.create({ model: 'gpt-4o', messages: hello, user: 'u-body' });
    await openai.chat.completions.create({
      model: 'gpt-4o',
      messages: hello,
      safety_identifier: 'u-safe',
    } as never);
    await openai.chat.completions.create(
      { model: 'gpt-4o', messages: hello, user: 'u-body' },
      { headers: { 'x-tally-user': 'u-header' } },
    );
    const anthropic = new Anthropic({ apiKey: key, baseURL: base, maxRetries: 0 });
    await anthropic.messages.create({
      model: 'claude-sonnet-4-5',
      max_tokens: 64,
      messages: hello,
      metadata: { user_id: 'u-claude' },
    });
    const pinned = (await t.newKey({ project: 'support', user: 'u-pinned' })).key;
    await new OpenAI({ apiKey: pinned, baseURL: `${base}/v1`, maxRetries: 0 }).chat.completions.create(
      { model: 'gpt-4o', messages: hello, user: 'u-body' },
      { headers: { 'x-tally-user': 'u-header' } },
    );
    expect((await lastCalls(5)).map((c) => c['user'])).toEqual([
      'u-pinned',
      'u-claude',
      'u-header',
      'u-safe',
      'u-body',
    ]);
    // The body goes upstream as it came, its user field included.
    expect(JSON.parse(mock.received.at(-1)!.raw)).toMatchObject({ user: 'u-body' });
  });

  it('holds a key to the models its list names, patterns included, and lists only those', async () => {
    const limited = (await t.newKey({ project: 'support', models: ['gpt-4o*', 'claude-*'] })).key;
    const client = new OpenAI({ apiKey: limited, baseURL: `${base}/v1`, maxRetries: 0 });
    const hello = [{ role: 'user' as const, content: 'Hello' }];
    for (const model of ['gpt-4o', 'gpt-4o-2024-08-06', 'claude-sonnet-4-5']) {
      const out = await client.chat.completions.create({ model, messages: hello, max_tokens: 64 });
      expect(out.choices.length, model).toBe(1);
    }
    const sent = mock.received.length;
    const refused = await client.chat.completions
      .create({ model: 'gpt-4.1', messages: hello })
      .catch((e) => e);
    expect(refused.status).toBe(403);
    expect(refused.error).toMatchObject({ code: 'model_not_allowed' });
    expect(refused.message).toMatch(/may not use model gpt-4\.1\. Allowed: gpt-4o\*, claude-\*\./);
    expect(mock.received.length).toBe(sent);
    const [call] = await lastCalls(1);
    expect(call).toMatchObject({
      id: refused.headers.get('x-tally-call-id'),
      status: 'refused',
      error_type: 'model_not_allowed',
      project: 'support',
      provider: 'openai',
      model_requested: 'gpt-4.1',
    });
    const listed = (await client.models.list()).data.map((m) => m.id);
    expect(listed.length).toBeGreaterThan(0);
    expect(listed.every((id) => id.startsWith('gpt-4o') || id.startsWith('claude-'))).toBe(true);
  });

  it('answers each call with its id (and a whole answer with its cost), by which GET /v1/calls/:id finds it', async () => {
    const { data, response } = await openai.chat.completions
      .create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hello' }] })
      .withResponse();
    expect(data.choices.length).toBeGreaterThan(0);
    const id = response.headers.get('x-tally-call-id')!;
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-/);
    const streamed = await openai.chat.completions
      .create({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'Hello' }] })
      .withResponse();
    for await (const _ of streamed.data);
    const streamedId = streamed.response.headers.get('x-tally-call-id')!;
    await t.gateway.flush();
    for (const [callId, stream] of [
      [id, false],
      [streamedId, true],
    ] as const) {
      const got = await t.app.inject({ url: `/v1/calls/${callId}`, headers: t.auth });
      expect(got.statusCode).toBe(200);
      expect(got.json()).toMatchObject({ id: callId, status: 'ok', pricing_status: 'priced' });
      expect(got.json()['ttft_ms'] === null).toBe(!stream);
      // A whole answer says what it cost, as stored; a stream's headers leave before its usage.
      if (!stream) expect(response.headers.get('x-tally-cost-usd')).toBe(got.json().cost_usd);
    }
    expect(Number(response.headers.get('x-tally-cost-usd'))).toBeGreaterThan(0);
    expect(streamed.response.headers.get('x-tally-cost-usd')).toBeNull();
    const missing = await t.app.inject({ url: '/v1/calls/no-such-call', headers: t.auth });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('not_found');
    // A virtual key is not a reader.
    const denied = await t.app.inject({
      url: `/v1/calls/${id}`,
      headers: { authorization: `Bearer ${key}` },
    });
    expect(denied.statusCode).toBe(403);
  });

  it('chat stream: chunks arrive, the usage chunk we added is hidden, and the call is metered', async () => {
    const stream = await openai.chat.completions.create({
      model: 'gpt-4o',
      stream: true,
      messages: [{ role: 'user', content: 'Hello' }],
    });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.every((c) => c.choices.length > 0 && !c.usage)).toBe(true);
    const sent = mock.received.at(-1)!.body;
    expect(sent['stream_options']).toEqual({ include_usage: true });
    // The edit is spliced into the client's bytes: everything else goes upstream as it was sent.
    expect(mock.received.at(-1)!.raw).toBe(
      `${JSON.stringify({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'Hello' }] }).slice(0, -1)},"stream_options":{"include_usage":true}}`,
    );
    const call = (await lastCalls())[0]!;
    expect(call).toMatchObject({ status: 'ok', pricing_status: 'priced', model_served: 'gpt-4o-2024-08-06' });
    expect(call.tokens.input).toBeGreaterThan(0);
    expect(call['ttft_ms']).not.toBeNull();
  });

  it('chat stream with include_usage: the client gets the usage chunk', async () => {
    const stream = await openai.chat.completions.create({
      model: 'gpt-4o',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'Hello' }],
    });
    let usage = null;
    for await (const c of stream) if (c.usage) usage = c.usage;
    expect(usage).not.toBeNull();
    const call = (await lastCalls())[0]!;
    expect(call.tokens.input).toBe(usage!.prompt_tokens);
  });

  it('chat with tools, plain and streamed', async () => {
    const tools = [
      {
        type: 'function' as const,
        function: {
          name: 'get_weather',
          parameters: { type: 'object', properties: { location: { type: 'string' } } },
        },
      },
    ];
    const out = await openai.chat.completions.create({
      model: 'gpt-4o',
      tools,
      messages: [{ role: 'user', content: 'Weather?' }],
    });
    expect(out.choices[0]!.message.tool_calls![0]).toMatchObject({ function: { name: 'get_weather' } });
    const s = await openai.chat.completions.create({
      model: 'gpt-4o',
      tools,
      stream: true,
      messages: [{ role: 'user', content: 'Weather?' }],
    });
    let args = '';
    for await (const c of s) args += c.choices[0]?.delta.tool_calls?.[0]?.function?.arguments ?? '';
    expect(JSON.parse(args)).toEqual({ location: 'Paris' });
    const [streamed, plain] = await lastCalls(2);
    // gpt-4o: 82 × $2.50 + 17 × $10 per million.
    expect(plain!.cost_usd).toBe('0.000375');
    expect(streamed!.cost_usd).toBe('0.000375');
  });

  it('responses, plain and streamed', async () => {
    const r = await openai.responses.create({ model: 'gpt-4.1', input: 'Hi' });
    expect(r.output_text).toBe('Hi there.');
    const s = await openai.responses.create({ model: 'gpt-4.1', input: 'Hi', stream: true });
    let text = '';
    for await (const e of s) if (e.type === 'response.output_text.delta') text += e.delta;
    expect(text).toBe('Hi there.');
    const [streamed, plain] = await lastCalls(2);
    // gpt-4.1: 176 × $2 + 1024 × $0.50 cached, 300 × $8 (reasoning included), per million.
    expect(plain).toMatchObject({ cost_usd: '0.003264', model_served: 'gpt-4.1-2025-04-16' });
    expect(streamed).toMatchObject({ cost_usd: '0.003264', api: 'openai-responses' });
  });

  it("responses with OpenAI's hosted search tools: each web search and file search billed per call", async () => {
    const tools = [
      { type: 'web_search' as const },
      { type: 'file_search' as const, vector_store_ids: ['vs_1'] },
    ];
    const r = await openai.responses.create({ model: 'gpt-4.1', input: 'News?', tools });
    expect(r.output.map((o) => o.type)).toEqual([
      'web_search_call',
      'web_search_call',
      'web_search_call',
      'file_search_call',
      'message',
    ]);
    const s = await openai.responses.create({ model: 'gpt-4.1', input: 'News?', tools, stream: true });
    const done: string[] = [];
    for await (const e of s) if (e.type === 'response.output_item.done') done.push(e.item.type);
    expect(done).toHaveLength(4);
    const [streamed, plain] = await lastCalls(2);
    // The tokens as above ($0.003264), two web searches at $10 a thousand (the third failed) and
    // one file search at $2.50 a thousand (Portkey's fees for gpt-4.1).
    for (const call of [plain, streamed]) {
      expect(call).toMatchObject({
        cost_usd: '0.025764',
        tokens: { web_searches: 2, file_searches: 1 },
        pricing_status: 'priced',
      });
    }
    // A model with no search fee in the tables cannot be held to the key's budget with searches
    // offered: refused before it goes, saying why, as a model with no price is.
    const unpriced = await openai.responses
      .create({ model: 'gpt-5-nano', input: 'News?', tools })
      .catch((e: { status: number; code: string; message: string }) => e);
    expect(unpriced).toMatchObject({ status: 400, code: 'unpriced_model' });
    expect((unpriced as { message: string }).message).toMatch(/gpt-5-nano has no price for web_searches/);
    // Without the tools, nothing is added.
    await openai.responses.create({ model: 'gpt-4.1', input: 'Hi' });
    expect((await lastCalls())[0]).toMatchObject({
      cost_usd: '0.003264',
      tokens: { web_searches: 0, file_searches: 0 },
    });
  });

  it("chat with OpenAI's search models: each completion's web search billed, plain and streamed", async () => {
    // The mock answers a call with tools in the name of the model asked (dated): as OpenAI names
    // gpt-4o-search-preview-2025-03-11.
    const tools = [
      { type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object' } } },
    ];
    const ask = {
      model: 'gpt-4o-search-preview',
      messages: [{ role: 'user' as const, content: 'News?' }],
      tools,
    };
    await openai.chat.completions.create(ask);
    const s = await openai.chat.completions.create({ ...ask, stream: true });
    for await (const _ of s);
    const [streamed, plain] = await lastCalls(2);
    // 82 × $2.50 + 17 × $10 per million, and one search at $25 a thousand.
    for (const call of [plain, streamed])
      expect(call).toMatchObject({ cost_usd: '0.025375', tokens: { web_searches: 1, file_searches: 0 } });
    // Another model's completion makes none.
    await openai.chat.completions.create({ ...ask, model: 'gpt-4o' });
    expect((await lastCalls())[0]).toMatchObject({ cost_usd: '0.000375', tokens: { web_searches: 0 } });
  });

  /** An `openai` client with a key of its own, under a monthly budget of `usd` on `project`. */
  const clientWithBudget = async (project: string, usd: number) => {
    const made = await t.app.inject({
      method: 'POST',
      url: '/v1/keys',
      headers: t.auth,
      payload: { project, budget_usd: usd, period: 'month' },
    });
    return new OpenAI({ apiKey: made.json().key, baseURL: `${base}/v1`, maxRetries: 0 });
  };

  it('reserves a budget for the hosted searches a Responses call may make: its max_tool_calls, else 10', async () => {
    const small = await clientWithBudget('search', 0.02);
    const ask = (extra: Record<string, unknown>) =>
      small.responses.create({ model: 'gpt-4.1', input: 'News?', max_output_tokens: 100, ...extra });
    const web = [{ type: 'web_search' as const }];
    // 3 searches ($0.03), or 10 where the request sets no limit, cannot fit in $0.02.
    for (const [extra, n] of [
      [{ tools: web, max_tool_calls: 3 }, 3],
      [{ tools: web }, 10],
    ] as const) {
      const refused = await ask(extra).catch((e: { status: number; code: string; message: string }) => e);
      expect(refused).toMatchObject({ status: 429, code: 'budget_exceeded' });
      expect((refused as { message: string }).message).toMatch(
        new RegExp(`and ${n} hosted searches at their fee\\).*or fewer tool calls \\(max_tool_calls\\)`),
      );
    }
    // One search ($0.01) and the tokens fit.
    expect((await ask({ tools: web, max_tool_calls: 1 })).status).toBe('completed');
  });

  it("responses with OpenAI's code interpreter: each container session billed once, plain and streamed", async () => {
    const auto = [{ type: 'code_interpreter' as const, container: { type: 'auto' as const } }];
    const r = await openai.responses.create({ model: 'gpt-4.1', input: 'Add.', tools: auto });
    const calls = r.output.filter((o) => o.type === 'code_interpreter_call');
    expect(calls).toHaveLength(2);
    const container = calls[0]!.container_id;
    // The conversation goes on in the same container: it is not billed again.
    await openai.responses.create({
      model: 'gpt-4.1',
      input: 'More.',
      tools: auto,
      previous_response_id: r.id,
    });
    // A stream makes a new one.
    const s = await openai.responses.create({ model: 'gpt-4.1', input: 'Add.', tools: auto, stream: true });
    const used = new Set<string>();
    for await (const e of s)
      if (e.type === 'response.output_item.done' && e.item.type === 'code_interpreter_call')
        used.add(e.item.container_id);
    expect([...used]).toHaveLength(1);
    expect(used.has(container)).toBe(false);
    // A container of the client's own, made (and billed) through the containers API.
    await openai.responses.create({
      model: 'gpt-4.1',
      input: 'Add.',
      tools: [{ type: 'code_interpreter', container: 'cntr_own_1' }],
    });
    const [own, streamed, again, first] = await lastCalls(4);
    // The tokens ($0.003264) and a 1 GB container session at $0.03 (LiteLLM's fee).
    for (const call of [first, streamed])
      expect(call).toMatchObject({ cost_usd: '0.033264', tokens: { code_containers: 1, web_searches: 0 } });
    for (const call of [again, own])
      expect(call).toMatchObject({ cost_usd: '0.003264', tokens: { code_containers: 0 } });
    // A larger container has no fee in the tables: the call cannot be held to the key's budget.
    const big = await openai.responses
      .create({
        model: 'gpt-4.1',
        input: 'Add.',
        tools: [{ type: 'code_interpreter', container: { type: 'auto', memory_limit: '4g' } }],
      })
      .catch((e: { status: number; code: string; message: string }) => e);
    expect(big).toMatchObject({ status: 400, code: 'unpriced_model' });
    expect((big as { message: string }).message).toMatch(/no price for code_containers_4g/);
  });

  it("responses with OpenAI's image generation tool: its images counted, the call unpriced for want of a price", async () => {
    const tools = [{ type: 'image_generation' as const }];
    // Under the key's budget, a call that may make images with no price cannot be held to it.
    const refused = await openai.responses
      .create({ model: 'gpt-4.1', input: 'Draw.', tools })
      .catch((e: { status: number; code: string; message: string }) => e);
    expect(refused).toMatchObject({ status: 400, code: 'unpriced_model' });
    expect((refused as { message: string }).message).toMatch(/no price for image_generations/);
    // A key without one: the images are counted, and the call is not priced at its tokens alone.
    const made = await t.app.inject({ method: 'POST', url: '/v1/keys', headers: t.auth, payload: {} });
    const free = new OpenAI({ apiKey: made.json().key, baseURL: `${base}/v1`, maxRetries: 0 });
    const r = await free.responses.create({ model: 'gpt-4.1', input: 'Draw.', tools });
    expect(r.output.map((o) => o.type)).toEqual([
      'image_generation_call',
      'image_generation_call',
      'message',
    ]);
    const s = await free.responses.create({ model: 'gpt-4.1', input: 'Draw.', tools, stream: true });
    for await (const _ of s);
    for (const call of await lastCalls(2))
      expect(call).toMatchObject({
        status: 'ok',
        pricing_status: 'unpriced',
        cost_usd: null,
        tokens: { image_generations: 1, input: 1200 },
        error_type: 'unpriced: model gpt-4.1 has no price for image_generations (1 made)',
      });
    // Listed by why.
    const listed = await t.app.inject({
      method: 'GET',
      url: '/v1/calls?error_type=unpriced',
      headers: t.auth,
    });
    expect(listed.json().data.length).toBeGreaterThanOrEqual(2);
  });

  it('reserves a budget for the container session a Responses call may start', async () => {
    const small = await clientWithBudget('code', 0.02);
    const ask = (container: unknown) =>
      small.responses.create({
        model: 'gpt-4.1',
        input: 'Add.',
        max_output_tokens: 100,
        tools: [{ type: 'code_interpreter', container } as OpenAI.Responses.Tool],
      });
    // A session ($0.03) cannot fit in $0.02.
    const refused = await ask({ type: 'auto' }).catch(
      (e: { status: number; code: string; message: string }) => e,
    );
    expect(refused).toMatchObject({ status: 429, code: 'budget_exceeded' });
    expect((refused as { message: string }).message).toMatch(
      /and a code interpreter container session at its fee\).*or a container of your own/,
    );
    // In a container of its own, the call holds only its tokens.
    expect((await ask('cntr_own_2')).status).toBe('completed');
  });

  it('embeddings', async () => {
    const e = await openai.embeddings.create({ model: 'text-embedding-3-small', input: 'hello' });
    expect(e.data[0]!.embedding.length).toBeGreaterThan(100);
    const call = (await lastCalls())[0]!;
    expect(call).toMatchObject({ api: 'openai-embeddings', pricing_status: 'priced' });
  });

  it('embeddings in a batch whose answer is too large to parse whole', async () => {
    const input = Array.from({ length: 100 }, (_, i) => `text ${i}`);
    const raw = await openai.embeddings
      .create({ model: 'text-embedding-3-small', input, encoding_format: 'float' })
      .withResponse();
    expect(raw.data.data).toHaveLength(100);
    expect(Number(raw.response.headers.get('content-length'))).toBeGreaterThan(1_000_000);
    const tokens = raw.data.usage.prompt_tokens;
    const call = (await lastCalls())[0]!;
    // text-embedding-3-small: $0.02 a million tokens, 20 nano-USD a token.
    expect(call).toMatchObject({
      api: 'openai-embeddings',
      tokens: { input: tokens },
      model_served: raw.data.model,
      pricing_status: 'priced',
      cost_usd: (tokens * 20e-9).toFixed(9).replace(/0+$/, ''),
    });
    expect(raw.response.headers.get('x-tally-cost-usd')).toBe(call.cost_usd);
  });

  it("Anthropic's client counts tokens through the gateway, unmetered", async () => {
    const anthropic = new Anthropic({ apiKey: key, baseURL: base, maxRetries: 0 });
    const messages = [{ role: 'user' as const, content: 'Hello' }];
    const before = (await lastCalls())[0]?.['id'];
    const counted = await anthropic.messages.countTokens({ model: 'claude-sonnet-4-6', messages });
    expect(counted).toEqual({ input_tokens: JSON.stringify(messages).length });
    expect(mock.received.at(-1)).toMatchObject({
      path: '/v1/messages/count_tokens',
      headers: { 'x-api-key': 'sk-ant-upstream' },
    });
    expect((await lastCalls())[0]?.['id']).toBe(before);
    const bad = new Anthropic({ apiKey: 'tk-nope', baseURL: base, maxRetries: 0 });
    await expect(bad.messages.countTokens({ model: 'claude-sonnet-4-6', messages })).rejects.toMatchObject({
      status: 401,
      error: { type: 'error' },
    });
  });

  it("OpenAI's client counts a Responses request's input tokens through the gateway, unmetered, for Claude too", async () => {
    const before = (await lastCalls())[0]?.['id'];
    const counted = await openai.responses.inputTokens.count({ model: 'gpt-4.1', input: 'Hello there' });
    expect(counted).toEqual({ object: 'response.input_tokens', input_tokens: '"Hello there"'.length });
    expect(mock.received.at(-1)).toMatchObject({
      path: '/v1/responses/input_tokens',
      headers: { authorization: 'Bearer sk-upstream' },
    });
    // A model an Anthropic provider serves: the request translated, counted by Anthropic.
    const claude = await openai.responses.inputTokens.count({
      model: 'claude-sonnet-4-6',
      instructions: 'Be brief.',
      input: 'Hello there',
    });
    const sent = mock.received.at(-1)!;
    expect(sent).toMatchObject({
      path: '/v1/messages/count_tokens',
      headers: { 'x-api-key': 'sk-ant-upstream' },
    });
    expect(Object.keys(sent.body).sort()).toEqual(['messages', 'model', 'system']);
    expect(claude).toEqual({
      object: 'response.input_tokens',
      input_tokens: JSON.stringify(sent.body['messages']).length,
    });
    expect((await lastCalls())[0]?.['id']).toBe(before);
    const refused = await openai.responses.inputTokens
      .count({ model: 'claude-sonnet-4-6', input: 'Hi', previous_response_id: 'resp_1' })
      .catch((e: { status: number; code: string }) => e);
    expect(refused).toMatchObject({ status: 400, code: 'untranslatable_request' });
  });

  it("compacts a conversation with OpenAI's client, metered as the response it is", async () => {
    const compacted = await openai.responses.compact({
      model: 'gpt-4.1',
      input: [{ role: 'user', content: 'Summarise our launch checklist.' }],
    });
    expect(compacted.object).toBe('response.compaction');
    expect(compacted.output.at(-1)).toMatchObject({ type: 'compaction' });
    expect(mock.received.at(-1)!.path).toBe('/v1/responses/compact');
    // gpt-4.1: 900 × $2 + 120 × $8 (64 of them reasoning) per million.
    expect((await lastCalls())[0]).toMatchObject({
      api: 'openai-responses',
      model_requested: 'gpt-4.1',
      status: 'ok',
      cost_usd: '0.00276',
    });
  });

  it("Anthropic's fast mode and US-only inference are priced at their factors, plain and streamed", async () => {
    const anthropic = new Anthropic({ apiKey: key, baseURL: base, maxRetries: 0 });
    const ask = {
      model: 'claude-opus-4-6',
      max_tokens: 1024,
      messages: [{ role: 'user' as const, content: 'Hi' }],
    };
    // Fields of Anthropic's API that this client version does not type yet; the body goes as sent.
    const modes = { speed: 'fast', inference_geo: 'us' } as Record<string, string>;
    await anthropic.messages.create({ ...ask, ...modes });
    expect(JSON.parse(mock.received.at(-1)!.raw)).toMatchObject(modes);
    await anthropic.messages.stream({ ...ask, ...modes }).finalMessage();
    await anthropic.messages.create({ ...ask, speed: 'fast' } as typeof ask);
    await anthropic.messages.create(ask);
    const [standard, fast, streamed, both] = await lastCalls(4);
    // 2,095 × $5 + 1,800 cache reads × $0.50 + 503 × $25, per million: $0.02395 at standard rates;
    // fast mode 6 times that, and US-only inference 1.1 times again.
    expect(standard).toMatchObject({ model_requested: 'claude-opus-4-6', cost_usd: '0.02395' });
    expect(fast).toMatchObject({ cost_usd: '0.1437', pricing_status: 'priced' });
    expect(both).toMatchObject({ cost_usd: '0.15807', pricing_status: 'priced' });
    expect(streamed).toMatchObject({ cost_usd: '0.15807', pricing_status: 'priced', status: 'ok' });
  });

  it("Anthropic's client: messages, plain and streamed", async () => {
    const anthropic = new Anthropic({ apiKey: key, baseURL: base, maxRetries: 0 });
    const m = await anthropic.messages.create({
      model: 'claude-sonnet-4-5-20250929',
      max_tokens: 1024,
      messages: [{ role: 'user', content: 'Hello' }],
    });
    expect(m.content[0]).toMatchObject({ type: 'text', text: 'Hello, world!' });
    const s = anthropic.messages.stream({
      model: 'claude-sonnet-4-5-20250929',
      max_tokens: 1024,
      messages: [{ role: 'user', content: 'Hello' }],
    });
    const final = await s.finalMessage();
    expect(final.content[0]).toMatchObject({ text: 'Hello, world!' });
    const [streamed, plain] = await lastCalls(2);
    // 2095 × $3 + 1800 × $0.30 cached; 503 × $15, per million.
    expect(plain).toMatchObject({ provider: 'anthropic', api: 'anthropic-messages', cost_usd: '0.01437' });
    expect(streamed).toMatchObject({ cost_usd: '0.01437', status: 'ok', pricing_status: 'priced' });
    expect(mock.received.at(-1)!.headers['x-api-key']).toBe('sk-ant-upstream');
  });

  it("Anthropic's client to an OpenAI model: request, answer, stream and tools are translated, metered from OpenAI's usage", async () => {
    const anthropic = new Anthropic({ apiKey: key, baseURL: base, maxRetries: 0 });
    // What the upstream answers the same question in its own API.
    const direct = await openai.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'Hello' }],
    });
    const text = direct.choices[0]!.message.content!;
    const u = direct.usage!;
    const cached = u.prompt_tokens_details?.cached_tokens ?? 0;
    const m = await anthropic.messages.create({
      model: 'gpt-4o',
      max_tokens: 256,
      system: 'Be brief.',
      stop_sequences: ['END'],
      metadata: { user_id: 'u-1' },
      messages: [{ role: 'user', content: 'Hello' }],
    });
    expect(mock.received.at(-1)).toMatchObject({
      path: '/v1/chat/completions',
      headers: { authorization: 'Bearer sk-upstream' },
    });
    expect(JSON.parse(mock.received.at(-1)!.raw)).toEqual({
      model: 'gpt-4o',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hello' },
      ],
      max_completion_tokens: 256,
      stop: ['END'],
      user: 'u-1',
    });
    expect(m).toMatchObject({
      type: 'message',
      role: 'assistant',
      content: [{ type: 'text', text }],
      stop_reason: 'end_turn',
      usage: {
        input_tokens: u.prompt_tokens - cached,
        cache_read_input_tokens: cached,
        output_tokens: u.completion_tokens,
      },
    });
    const [plain, asked] = await lastCalls(2);
    expect(plain).toMatchObject({
      provider: 'openai',
      api: 'openai-chat',
      model_requested: 'gpt-4o',
      status: 'ok',
      pricing_status: 'priced',
      cost_usd: asked!.cost_usd,
    });

    // Streamed: the client's stream helper builds the same message from the translated events.
    const s = anthropic.messages.stream({
      model: 'gpt-4o',
      max_tokens: 256,
      messages: [{ role: 'user', content: 'Hello' }],
    });
    const final = await s.finalMessage();
    expect(JSON.parse(mock.received.at(-1)!.raw)).toMatchObject({
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(final.content).toEqual([{ type: 'text', text: expect.any(String) }]);
    expect((final.content[0] as { text: string }).text.length).toBeGreaterThan(0);
    expect(final.stop_reason).toBe('end_turn');
    expect(final.usage.output_tokens).toBeGreaterThan(0);
    const streamed = (await lastCalls())[0]!;
    expect(streamed).toMatchObject({ api: 'openai-chat', status: 'ok', pricing_status: 'priced' });
    expect(streamed.tokens.output).toBe(final.usage.output_tokens);

    // Tools, plain and streamed, and the tool's result sent back.
    const tools = [
      {
        name: 'get_weather',
        description: 'The weather now',
        input_schema: { type: 'object' as const, properties: { location: { type: 'string' } } },
      },
    ];
    const asks = [{ role: 'user' as const, content: 'Weather?' }];
    const t1 = await anthropic.messages.create({
      model: 'gpt-4o',
      max_tokens: 256,
      tools,
      tool_choice: { type: 'any', disable_parallel_tool_use: true },
      messages: asks,
    });
    expect(JSON.parse(mock.received.at(-1)!.raw)).toMatchObject({
      tools: [
        {
          type: 'function',
          function: {
            name: 'get_weather',
            description: 'The weather now',
            parameters: tools[0]!.input_schema,
          },
        },
      ],
      tool_choice: 'required',
      parallel_tool_calls: false,
    });
    expect(t1.stop_reason).toBe('tool_use');
    expect(t1.content).toEqual([
      { type: 'tool_use', id: 'call_abc123', name: 'get_weather', input: { location: 'Paris' } },
    ]);
    const s2 = anthropic.messages.stream({ model: 'gpt-4o', max_tokens: 256, tools, messages: asks });
    let opened: number | undefined;
    s2.on('streamEvent', (ev) => {
      if (ev.type === 'message_start') opened = ev.message.usage.input_tokens;
    });
    const t2 = await s2.finalMessage();
    expect(t2.content).toEqual(t1.content);
    expect(t2.stop_reason).toBe('tool_use');
    // The stream opens with the gateway's count of the prompt, and the message ends with the
    // upstream's own.
    expect(opened).toBeGreaterThan(20);
    expect(t2.usage).toMatchObject({ input_tokens: 82, output_tokens: 17 });
    const [toolStreamed, toolPlain] = await lastCalls(2);
    // gpt-4o: 82 × $2.50 + 17 × $10 per million, as the same call through OpenAI's client.
    expect(toolPlain!.cost_usd).toBe('0.000375');
    expect(toolStreamed!.cost_usd).toBe('0.000375');
    await anthropic.messages.create({
      model: 'gpt-4o',
      max_tokens: 256,
      tools,
      messages: [
        ...asks,
        { role: 'assistant', content: t1.content },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'call_abc123', content: [{ type: 'text', text: '18 °C' }] },
            { type: 'text', text: 'And tomorrow?' },
          ],
        },
      ],
    });
    expect(JSON.parse(mock.received.at(-1)!.raw).messages).toEqual([
      { role: 'user', content: 'Weather?' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          {
            id: 'call_abc123',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"location":"Paris"}' },
          },
        ],
      },
      { role: 'tool', tool_call_id: 'call_abc123', content: '18 °C' },
      { role: 'user', content: [{ type: 'text', text: 'And tomorrow?' }] },
    ]);

    // Counted here, as the OpenAI model would see the prompt: nothing goes upstream.
    const sentBefore = mock.received.length;
    const counted = await anthropic.messages.countTokens({ model: 'gpt-4o', messages: asks, tools });
    expect(counted.input_tokens).toBeGreaterThan(10);
    expect(mock.received.length).toBe(sentBefore);

    // What an OpenAI model cannot do is refused before anything goes, in Anthropic's format.
    await expect(
      anthropic.messages.create({
        model: 'gpt-4o',
        max_tokens: 2048,
        thinking: { type: 'enabled', budget_tokens: 1024 },
        messages: asks,
      }),
    ).rejects.toMatchObject({
      status: 400,
      error: {
        type: 'error',
        error: { type: 'invalid_request_error', message: expect.stringMatching(/^thinking/) },
      },
    });
    expect(mock.received.length).toBe(sentBefore);
  });

  it("OpenAI client to a Claude model: a structured answer (response_format json_schema) comes back as the message's JSON, plain and streamed", async () => {
    const schema = WEATHER_SCHEMA;
    const response_format = {
      type: 'json_schema' as const,
      json_schema: { name: 'weather', description: 'The weather now.', schema, strict: true },
    };
    const ask = {
      model: 'claude-sonnet-4-5',
      messages: [{ role: 'user' as const, content: 'Weather in Paris?' }],
    };
    const parsed = await openai.chat.completions.parse({ ...ask, response_format });
    expect(parsed.choices[0]!.message).toMatchObject({
      content: '{"location":"Paris","celsius":18}',
      parsed: { location: 'Paris', celsius: 18 },
    });
    expect(parsed.choices[0]!.finish_reason).toBe('stop');
    expect(parsed.choices[0]!.message.tool_calls ?? []).toEqual([]);
    // Sent as a tool the model must call, whose input is the answer.
    expect(mock.received.at(-1)!.body).toMatchObject({
      tools: [
        {
          name: 'weather',
          description: "The weather now. Give the answer as this tool's input.",
          input_schema: schema,
        },
      ],
      tool_choice: { type: 'tool', name: 'weather' },
    });
    const stream = await openai.chat.completions.create({ ...ask, response_format, stream: true });
    let text = '';
    let finish: string | null = null;
    for await (const c of stream) {
      expect(c.choices[0]?.delta.tool_calls).toBeUndefined();
      text += c.choices[0]?.delta.content ?? '';
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    expect([JSON.parse(text), finish]).toEqual([{ location: 'Paris', celsius: 18 }, 'stop']);
    const json = await openai.chat.completions.create({ ...ask, response_format: { type: 'json_object' } });
    expect(JSON.parse(json.choices[0]!.message.content!)).toEqual({ location: 'Paris', celsius: 18 });
    const [streamed, plain] = await lastCalls(3);
    expect(plain).toMatchObject({ api: 'anthropic-messages', status: 'ok', pricing_status: 'priced' });
    expect(streamed).toMatchObject({ status: 'ok', pricing_status: 'priced', cost_usd: plain!.cost_usd });
    // With tools of its own, the model must call one of them or the answer's tool: a call of its
    // tools is a turn of the loop, and once their results are back, the answer comes.
    const tools = [
      {
        type: 'function' as const,
        function: { name: 'get_weather', parameters: { type: 'object' }, strict: true },
      },
    ];
    const first = await openai.chat.completions.parse({ ...ask, response_format, tools });
    expect(first.choices[0]!.finish_reason).toBe('tool_calls');
    const call = first.choices[0]!.message.tool_calls![0]!;
    expect(call).toMatchObject({ type: 'function', function: { name: 'get_weather' } });
    expect(first.choices[0]!.message.parsed).toBeNull();
    expect(mock.received.at(-1)!.body).toMatchObject({
      tools: [{ name: 'get_weather' }, { name: 'weather', input_schema: schema }],
      tool_choice: { type: 'any' },
    });
    const loop = [
      ...ask.messages,
      {
        role: 'assistant' as const,
        content: null,
        tool_calls: [
          {
            id: call.id,
            type: 'function' as const,
            function: {
              name: 'get_weather',
              arguments: (call as { function: { arguments: string } }).function.arguments,
            },
          },
        ],
      },
      { role: 'tool' as const, tool_call_id: call.id, content: '18C and sunny' },
    ];
    const answered = await openai.chat.completions.parse({ ...ask, messages: loop, response_format, tools });
    expect(answered.choices[0]!.message.parsed).toEqual({ location: 'Paris', celsius: 18 });
    expect(answered.choices[0]!.finish_reason).toBe('stop');
    expect(answered.choices[0]!.message.tool_calls ?? []).toEqual([]);
    const streamedLoop = await openai.chat.completions.create({
      ...ask,
      messages: loop,
      response_format,
      tools,
      stream: true,
    });
    let loopText = '';
    let loopFinish: string | null = null;
    for await (const c of streamedLoop) {
      expect(c.choices[0]?.delta.tool_calls).toBeUndefined();
      loopText += c.choices[0]?.delta.content ?? '';
      loopFinish = c.choices[0]?.finish_reason ?? loopFinish;
    }
    expect([JSON.parse(loopText), loopFinish]).toEqual([{ location: 'Paris', celsius: 18 }, 'stop']);
    // tool_choice "none": the answer alone may be called; "required" asks for a tool call, so the
    // answer's tool is not offered.
    await openai.chat.completions.create({ ...ask, response_format, tools, tool_choice: 'none' });
    expect(mock.received.at(-1)!.body).toMatchObject({ tool_choice: { type: 'tool', name: 'weather' } });
    await openai.chat.completions.create({ ...ask, response_format, tools, tool_choice: 'required' });
    expect(mock.received.at(-1)!.body).toMatchObject({
      tools: [{ name: 'get_weather' }],
      tool_choice: { type: 'any' },
    });
    // A schema named as one of the request's tools is refused before anything goes.
    const sent = mock.received.length;
    const clash = await openai.chat.completions
      .create({
        ...ask,
        response_format: { type: 'json_schema', json_schema: { name: 'get_weather', schema } },
        tools,
      })
      .catch((e) => e);
    expect(clash.status).toBe(400);
    expect(clash.message).toMatch(/is named get_weather, as a tool of the request is/);
    expect(mock.received.length).toBe(sent);
  });

  it('OpenAI client to a Claude model: thinking, tools and a structured answer together, the schema sent as it is', async () => {
    type Thinking = { reasoning_content?: string; thinking_blocks?: unknown[] };
    const response_format = {
      type: 'json_schema' as const,
      json_schema: { name: 'weather', schema: WEATHER_SCHEMA, strict: true },
    };
    const ask = {
      model: 'claude-sonnet-4-5',
      reasoning_effort: 'low' as const,
      max_completion_tokens: 4000,
      response_format,
      tools: [
        {
          type: 'function' as const,
          function: { name: 'get_weather', parameters: { type: 'object' }, strict: true },
        },
      ],
    };
    const question = { role: 'user' as const, content: 'Weather in Paris?' };
    const first = await openai.chat.completions.create({ ...ask, messages: [question] });
    expect(mock.received.at(-1)!.body).toMatchObject({
      thinking: { type: 'enabled', budget_tokens: 1024 },
      output_config: { format: { type: 'json_schema', schema: WEATHER_SCHEMA } },
      tools: [{ name: 'get_weather' }],
    });
    expect(mock.received.at(-1)!.body).not.toHaveProperty('tool_choice');
    const msg = first.choices[0]!.message as (typeof first.choices)[0]['message'] & Thinking;
    expect(msg.thinking_blocks).toEqual([MOCK_THOUGHT]);
    const call = msg.tool_calls![0]!;
    expect(call).toMatchObject({ type: 'function', function: { name: 'get_weather' } });
    // The tool's result back, with the thinking: the answer is the message's JSON, in the schema.
    const messages = [question, msg, { role: 'tool' as const, tool_call_id: call.id, content: '18C' }];
    const answer = await openai.chat.completions.parse({ ...ask, messages });
    expect(answer.choices[0]!.message).toMatchObject({ parsed: { location: 'Paris', celsius: 18 } });
    expect((answer.choices[0]!.message as Thinking).reasoning_content).toBe(MOCK_THOUGHT.thinking);
    expect(answer.choices[0]!.finish_reason).toBe('stop');
    const stream = await openai.chat.completions.create({ ...ask, messages, stream: true });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.delta.content ?? '';
    expect(JSON.parse(text)).toEqual({ location: 'Paris', celsius: 18 });
    // A Claude without structured outputs cannot think with the answer's tool forced: refused.
    const refused = await openai.chat.completions
      .create({ ...ask, model: 'claude-3-7-sonnet-20250219', messages: [question] })
      .catch((e) => e);
    expect(refused.status).toBe(400);
    expect(refused.message).toMatch(/cannot go with a tool the model must call/);
  });

  it("OpenAI's reasoning effort reaches a Claude model as extended thinking, within the output limit", async () => {
    const hello = [{ role: 'user' as const, content: 'Hello' }];
    const out = await openai.chat.completions.create({
      model: 'claude-sonnet-4-5',
      messages: hello,
      reasoning_effort: 'medium',
      max_completion_tokens: 8000,
    });
    expect(out.choices[0]!.message.content).toBe('Hello, world!');
    expect(mock.received.at(-1)!.body).toMatchObject({
      max_tokens: 8000,
      thinking: { type: 'enabled', budget_tokens: 2048 },
    });
    await openai.responses.create({
      model: 'claude-sonnet-4-5',
      input: 'Hello',
      reasoning: { effort: 'high' },
    });
    expect(mock.received.at(-1)!.body).toMatchObject({ thinking: { type: 'enabled', budget_tokens: 4095 } });
    const refused = await openai.chat.completions
      .create({ model: 'claude-sonnet-4-5', messages: hello, reasoning_effort: 'high', temperature: 0.3 })
      .catch((e) => e);
    expect(refused.status).toBe(400);
    expect(refused.message).toMatch(/temperature cannot be set with reasoning_effort/);

    // The thinking comes back on the message: readable, and as the blocks Claude wants in a tool
    // loop. A client that sends the message back as it came keeps Claude thinking on the next turn.
    type Thinking = { reasoning_content?: string; thinking_blocks?: unknown[] };
    const ask = {
      model: 'claude-sonnet-4-5',
      reasoning_effort: 'low' as const,
      max_completion_tokens: 4000,
      tools: [
        { type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object' } } },
      ],
    };
    const question = { role: 'user' as const, content: 'Weather in Paris?' };
    const first = await openai.chat.completions.create({ ...ask, messages: [question] });
    const msg = first.choices[0]!.message as (typeof first.choices)[0]['message'] & Thinking;
    expect(msg.reasoning_content).toBe(MOCK_THOUGHT.thinking);
    expect(msg.thinking_blocks).toEqual([MOCK_THOUGHT]);
    const call = msg.tool_calls![0]!;
    await openai.chat.completions.create({
      ...ask,
      messages: [question, msg, { role: 'tool', tool_call_id: call.id, content: '18C' }],
    });
    expect(mock.received.at(-1)!.body).toMatchObject({
      thinking: { type: 'enabled', budget_tokens: 1024 },
      messages: [
        { role: 'user' },
        { role: 'assistant', content: [MOCK_THOUGHT, { type: 'text' }, { type: 'tool_use', id: call.id }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id }] },
      ],
    });
    // Streamed: reasoning_content deltas, then the signed block.
    const { tools: _tools, ...withoutTools } = ask;
    const stream = await openai.chat.completions.create({ ...withoutTools, messages: hello, stream: true });
    let reasoning = '';
    let blocks: unknown[] = [];
    for await (const c of stream) {
      const d = c.choices[0]?.delta as (typeof c.choices)[0]['delta'] & Thinking;
      reasoning += d?.reasoning_content ?? '';
      blocks = d?.thinking_blocks ?? blocks;
    }
    expect([reasoning, blocks]).toEqual([MOCK_THOUGHT.thinking, [MOCK_THOUGHT]]);

    // The Responses API: the thinking is a reasoning item (its text the summary, its signature the
    // encrypted content), which sent back with the output keeps Claude thinking through the loop.
    const rask = {
      model: 'claude-sonnet-4-5',
      reasoning: { effort: 'low' as const },
      max_output_tokens: 4000,
      tools: [
        { type: 'function' as const, name: 'get_weather', parameters: { type: 'object' }, strict: false },
      ],
    };
    const r1 = await openai.responses.create({ ...rask, input: 'Weather in Paris?' });
    expect(r1.output.map((o) => o.type)).toEqual(['reasoning', 'message', 'function_call']);
    expect(r1.output[0]).toMatchObject({
      type: 'reasoning',
      summary: [{ type: 'summary_text', text: MOCK_THOUGHT.thinking }],
      encrypted_content: `anthropic-thinking:${MOCK_THOUGHT.signature}`,
    });
    const fc = r1.output.find((o) => o.type === 'function_call')!;
    await openai.responses.create({
      ...rask,
      input: [
        { role: 'user', content: 'Weather in Paris?' },
        ...(r1.output as OpenAI.Responses.ResponseInputItem[]),
        { type: 'function_call_output', call_id: fc.call_id, output: '18C' },
      ],
    });
    expect(mock.received.at(-1)!.body).toMatchObject({
      thinking: { type: 'enabled', budget_tokens: 1024 },
      messages: [
        { role: 'user' },
        {
          role: 'assistant',
          content: [MOCK_THOUGHT, { type: 'text' }, { type: 'tool_use', id: fc.call_id }],
        },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: fc.call_id }] },
      ],
    });
    const { tools: _rtools, ...rplain } = rask;
    const streamed = await openai.responses.stream({ ...rplain, input: 'Hello' }).finalResponse();
    expect(streamed.output.map((o) => o.type)).toEqual(['reasoning', 'message']);
    expect(streamed.output[0]).toMatchObject({
      summary: [{ type: 'summary_text', text: MOCK_THOUGHT.thinking }],
      encrypted_content: `anthropic-thinking:${MOCK_THOUGHT.signature}`,
    });
    expect(streamed.output_text).toBe('Hello, world!');
  });

  it("Responses API to a Claude model: a structured answer (text.format json_schema) is the answer's text, plain and streamed", async () => {
    const schema = WEATHER_SCHEMA;
    const ask = {
      model: 'claude-sonnet-4-5',
      input: 'Weather in Paris?',
      text: { format: { type: 'json_schema' as const, name: 'weather', schema, strict: true } },
    };
    const parsed = await openai.responses.parse(ask);
    expect(parsed.output_text).toBe('{"location":"Paris","celsius":18}');
    expect(parsed.output_parsed).toEqual({ location: 'Paris', celsius: 18 });
    expect(parsed.output.map((o) => o.type)).toEqual(['message']);
    expect(mock.received.at(-1)!.body).toMatchObject({
      tools: [{ name: 'weather', input_schema: schema }],
      tool_choice: { type: 'tool', name: 'weather' },
    });
    // The client parses a streamed answer only for its own (zod) formats: the text is the JSON.
    const final = await openai.responses.stream(ask).finalResponse();
    expect(JSON.parse(final.output_text)).toEqual({ location: 'Paris', celsius: 18 });
    expect(final.status).toBe('completed');
    expect(final.output.map((o) => o.type)).toEqual(['message']);
  });

  it('OpenAI client to a Claude model: request, response, stream and tools are translated', async () => {
    const out = await openai.chat.completions.create({
      model: 'claude-sonnet-4-5',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hello' },
      ],
      max_tokens: 300,
      stop: 'END',
    });
    expect(out.choices[0]!.message.content).toBe('Hello, world!');
    expect(out.choices[0]!.finish_reason).toBe('stop');
    expect(out.usage).toMatchObject({
      prompt_tokens: 3895,
      completion_tokens: 503,
      prompt_tokens_details: { cached_tokens: 1800 },
    });
    const sent = mock.received.at(-1)!;
    expect(sent.path).toBe('/v1/messages');
    expect(sent.body).toMatchObject({
      model: 'claude-sonnet-4-5',
      system: 'Be brief.',
      max_tokens: 300,
      stop_sequences: ['END'],
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello' }] }],
    });

    const stream = await openai.chat.completions.create({
      model: 'claude-sonnet-4-5',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'Hello' }],
    });
    let text = '';
    let finish: string | null = null;
    let usage = null;
    for await (const c of stream) {
      text += c.choices[0]?.delta.content ?? '';
      finish = c.choices[0]?.finish_reason ?? finish;
      if (c.usage) usage = c.usage;
    }
    expect([text, finish]).toEqual(['Hello, world!', 'stop']);
    expect(usage).toMatchObject({ prompt_tokens: 3895, completion_tokens: 503 });

    const tools = await openai.chat.completions.create({
      model: 'claude-sonnet-4-5',
      messages: [{ role: 'user', content: 'Weather in Paris?' }],
      tools: [
        {
          type: 'function',
          function: { name: 'get_weather', parameters: { type: 'object', properties: {} } },
        },
      ],
      tool_choice: 'required',
    });
    expect(tools.choices[0]!.finish_reason).toBe('tool_calls');
    expect(tools.choices[0]!.message.tool_calls![0]).toMatchObject({
      id: 'toolu_01A09q90qw90lq917835lq9',
      function: { name: 'get_weather', arguments: '{"location":"Paris"}' },
    });
    expect(mock.received.at(-1)!.body).toMatchObject({
      tools: [{ name: 'get_weather', input_schema: { type: 'object' } }],
      tool_choice: { type: 'any' },
    });
    const calls = await lastCalls(3);
    for (const c of calls)
      expect(c).toMatchObject({ provider: 'anthropic', api: 'anthropic-messages', cost_usd: '0.01437' });
  });

  it("OpenAI's Responses API to a Claude model: input, answer, stream and function calls are translated", async () => {
    const r = await openai.responses.create({
      model: 'claude-sonnet-4-5',
      instructions: 'Be brief.',
      input: 'Hello',
      max_output_tokens: 300,
    });
    expect(r.output_text).toBe('Hello, world!');
    expect(r).toMatchObject({ object: 'response', status: 'completed', model: 'claude-sonnet-4-5' });
    expect(r.usage).toMatchObject({ input_tokens: 3895, output_tokens: 503, total_tokens: 4398 });
    expect(r.usage!.input_tokens_details.cached_tokens).toBe(1800);
    const sent = mock.received.at(-1)!;
    expect(sent.path).toBe('/v1/messages');
    expect(sent.body).toMatchObject({
      model: 'claude-sonnet-4-5',
      system: 'Be brief.',
      max_tokens: 300,
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello' }] }],
    });

    // The raw event stream, and the SDK's stream helper, which checks the events' order.
    const s = await openai.responses.create({ model: 'claude-sonnet-4-5', input: 'Hello', stream: true });
    let text = '';
    const types: string[] = [];
    for await (const e of s) {
      types.push(e.type);
      if (e.type === 'response.output_text.delta') text += e.delta;
    }
    expect(text).toBe('Hello, world!');
    expect([types[0], types.at(-1)]).toEqual(['response.created', 'response.completed']);
    const helper = openai.responses.stream({ model: 'claude-sonnet-4-5', input: 'Hello' });
    const final = await helper.finalResponse();
    expect(final.output_text).toBe('Hello, world!');
    expect(final.usage).toMatchObject({ input_tokens: 3895, output_tokens: 503 });

    const tools = await openai.responses.create({
      model: 'claude-sonnet-4-5',
      input: [
        { role: 'user', content: 'Weather in Paris?' },
        { type: 'function_call', call_id: 'call_0', name: 'get_weather', arguments: '{"location":"Rome"}' },
        { type: 'function_call_output', call_id: 'call_0', output: '21C' },
      ],
      tools: [
        {
          type: 'function',
          name: 'get_weather',
          parameters: { type: 'object', properties: {} },
          strict: false,
        },
      ],
      tool_choice: 'required',
    });
    // Made to call a tool (tool_choice "required") once a result is back, the model calls one.
    expect(tools.output.find((o) => o.type === 'function_call')).toMatchObject({
      call_id: 'toolu_01forced',
      name: 'get_weather',
      arguments: '{"location":"Paris","celsius":18}',
    });
    expect(mock.received.at(-1)!.body).toMatchObject({
      tools: [{ name: 'get_weather', input_schema: { type: 'object' } }],
      tool_choice: { type: 'any' },
      messages: [
        { role: 'user' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'call_0', input: { location: 'Rome' } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'call_0', content: '21C' }] },
      ],
    });
    // Four calls, each metered from Anthropic's own usage: 2095 × $3 + 1800 × $0.30, 503 × $15.
    const calls = await lastCalls(4);
    for (const c of calls)
      expect(c).toMatchObject({
        provider: 'anthropic',
        api: 'anthropic-messages',
        model_requested: 'claude-sonnet-4-5',
        cost_usd: '0.01437',
        status: 'ok',
      });

    // What cannot be mapped is refused before anything goes upstream, in OpenAI's error format.
    const before = mock.received.length;
    const err = await openai.responses
      .create({ model: 'claude-sonnet-4-5', input: 'Hi', previous_response_id: 'resp_1' })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 400, code: 'untranslatable_request' });
    expect(mock.received.length).toBe(before);
    // It is listed as a refused call, which the answer names.
    const [refused] = await lastCalls(1);
    expect(refused).toMatchObject({
      id: (err as { headers: Headers }).headers.get('x-tally-call-id'),
      status: 'refused',
      error_type: 'untranslatable_request',
      provider: 'anthropic',
      api: 'openai-responses',
      model_requested: 'claude-sonnet-4-5',
      cost_usd: '0',
    });
  });

  it('reaches Azure deployments and Gemini through the same client, priced under each provider', async () => {
    const az = await openai.chat.completions.create({
      model: 'azure-eu/gpt-4o',
      messages: [{ role: 'user', content: 'Hello' }],
    });
    expect(az.choices.length).toBe(1);
    const sentAz = mock.received.at(-1)!;
    expect(sentAz.path).toBe('/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21');
    expect(sentAz.headers['api-key']).toBe('azure-secret');
    // Under the v1 API the deployment goes in the body's model, as it does for Responses under a
    // dated version: Azure serves Responses only at /openai/v1/responses.
    await openai.chat.completions.create({
      model: 'azure-v1/gpt-4',
      messages: [{ role: 'user', content: 'Hi' }],
    });
    expect(mock.received.at(-1)).toMatchObject({
      path: '/openai/v1/chat/completions',
      body: { model: 'gpt-4o' },
    });
    await openai.responses.create({ model: 'azure-eu/gpt-4o', input: 'Hi' });
    expect(mock.received.at(-1)).toMatchObject({ path: '/openai/v1/responses', body: { model: 'prod-4o' } });
    // The catalog has no price for gpt-4o from Google: a key without a budget calls it (a block
    // budget refuses a model it cannot price).
    const { key: free } = await t.newKey({ project: 'support' });
    const gm = await new OpenAI({
      apiKey: free,
      baseURL: `${base}/v1`,
      maxRetries: 0,
    }).chat.completions.create({
      model: 'gemini/gpt-4o',
      messages: [{ role: 'user', content: 'Hello' }],
    });
    expect(gm.choices.length).toBe(1);
    expect(mock.received.at(-1)!.path).toBe('/v1beta/openai/chat/completions');
    expect(mock.received.at(-1)!.headers.authorization).toBe('Bearer gemini-secret');
    const [gemini, , , azure] = await lastCalls(4);
    expect(azure).toMatchObject({
      provider: 'azure',
      model_requested: 'azure-eu/gpt-4o',
      pricing_status: 'priced',
    });
    expect(gemini).toMatchObject({ provider: 'google' });

    // Anthropic's client reaches them too: an Azure deployment named in the body under the v1 API,
    // in the path under a dated one, and Gemini's OpenAI endpoint with its limit as max_tokens.
    const anthropic = new Anthropic({ apiKey: free, baseURL: base, maxRetries: 0 });
    const ask = { max_tokens: 100, messages: [{ role: 'user' as const, content: 'Hi' }] };
    const v1 = await anthropic.messages.create({ model: 'azure-v1/gpt-4', ...ask });
    expect(v1.content[0]).toMatchObject({ type: 'text' });
    expect(mock.received.at(-1)).toMatchObject({
      path: '/openai/v1/chat/completions',
      headers: { 'api-key': 'azure-secret' },
      body: { model: 'gpt-4o', max_completion_tokens: 100 },
    });
    await anthropic.messages.create({ model: 'azure-eu/gpt-4o', ...ask });
    expect(mock.received.at(-1)).toMatchObject({
      path: '/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21',
      body: { model: 'gpt-4o' },
    });
    await anthropic.messages.create({ model: 'gemini/gpt-4o', ...ask });
    expect(mock.received.at(-1)).toMatchObject({
      path: '/v1beta/openai/chat/completions',
      body: { model: 'gpt-4o', max_tokens: 100 },
    });
    const [viaGemini, viaDated, viaV1] = await lastCalls(3);
    expect(viaV1).toMatchObject({ provider: 'azure', api: 'openai-chat', model_requested: 'azure-v1/gpt-4' });
    expect(viaDated).toMatchObject({ provider: 'azure', model_requested: 'azure-eu/gpt-4o' });
    expect(viaGemini).toMatchObject({ provider: 'google', api: 'openai-chat' });
  });

  it('sends the body upstream as written, with only the model and include_usage edited in it', async () => {
    const raw =
      '{"model":"openai/gpt-4o", "seed":12345678901234567891,"temperature":1.0,"stream":true,' +
      '"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"Hi \\"model\\": {x}"}]}';
    const res = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: raw,
    });
    expect(res.status).toBe(200);
    expect(await res.text()).not.toContain('"usage":{');
    expect(mock.received.at(-1)!.raw).toBe(
      raw.replace('"openai/gpt-4o"', '"gpt-4o"').replace('{"include_usage":false}', '{"include_usage":true}'),
    );
  });

  it('refuses a key or a budget it cannot make as asked, and writes nothing for it', async () => {
    const post = (url: string, payload: Record<string, unknown>) =>
      t.app.inject({ method: 'POST', url, headers: t.auth, payload });
    const before = (await t.app.inject({ url: '/v1/budgets', headers: t.auth })).json().data.length;
    const refusedKeys: [Record<string, unknown>, RegExp][] = [
      [{ project: 'p', budget: 5 }, /Unknown field budget/],
      [{ project: 'p', expires: '2030-01-01T00:00:00Z' }, /Unknown field expires/],
      [{ project: 123, budget_usd: 7 }, /project must be/],
      [{ project: 'x', budget_usd: 8, rpm: -1 }, /rpm must be/],
      [{ budget_usd: '10000000000' }, /at most 1000000000/],
      [{ expires_at: 'March 7' }, /RFC 3339/],
      [{ expires_at: '2027' }, /RFC 3339/],
      [{ expires_at: '2020-01-01T00:00:00Z' }, /in the future/],
      [{ expires_at: '2027-02-30T00:00:00Z' }, /RFC 3339/],
    ];
    for (const [payload, why] of refusedKeys) {
      const res = await post('/v1/keys', payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().error).toMatchObject({
        code: 'invalid_request',
        message: expect.stringMatching(why),
      });
    }
    const refusedBudgets: [Record<string, unknown>, RegExp][] = [
      [{ scope: 'project', subject: 'p', limit_usd: '1e30' }, /limit_usd/],
      [{ scope: 'project', subject: 'p', limit_usd: '10000000000' }, /at most/],
      [{ scope: 'project', subject: 'p', limit_usd: '5', thresholds: [] }, /thresholds/],
      [{ scope: 'project', subject: 'p', limit_usd: '5', thresholds: [0.5, 0.5] }, /distinct/],
      [{ scope: 'project', subject: 'p', limit_usd: '5', time_zone: 123 }, /time_zone/],
      [{ scope: 'project', subject: 'p', limit_usd: '5', limit: 5 }, /Unknown field limit/],
      [{ id: 123, scope: 'project', subject: 'p', limit_usd: '5' }, /id must be/],
    ];
    for (const [payload, why] of refusedBudgets) {
      const res = await post('/v1/budgets', payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().error.message).toMatch(why);
    }
    // No budget was left behind by a refused key.
    expect((await t.app.inject({ url: '/v1/budgets', headers: t.auth })).json().data.length).toBe(before);
  });

  it('answers an unknown or revoked key with a 401 in the client format', async () => {
    const bad = new OpenAI({ apiKey: 'tk-nope', baseURL: `${base}/v1`, maxRetries: 0 });
    await expect(bad.chat.completions.create({ model: 'gpt-4o', messages: [] })).rejects.toMatchObject({
      status: 401,
      code: 'invalid_api_key',
    });
    const made = await t.app.inject({
      method: 'POST',
      url: '/v1/keys',
      headers: t.auth,
      payload: { project: 'p' },
    });
    const { id, key: k2 } = made.json();
    const client = new OpenAI({ apiKey: k2, baseURL: `${base}/v1`, maxRetries: 0 });
    await client.embeddings.create({ model: 'text-embedding-3-small', input: 'x' });
    const del = await t.app.inject({ method: 'DELETE', url: `/v1/keys/${id}`, headers: t.auth });
    expect(del.statusCode).toBe(200);
    await expect(
      client.embeddings.create({ model: 'text-embedding-3-small', input: 'x' }),
    ).rejects.toMatchObject({
      status: 401,
    });
    // A key that expires works until then, and not after.
    const expiring = await t.app.inject({
      method: 'POST',
      url: '/v1/keys',
      headers: t.auth,
      payload: { project: 'p', expires_at: new Date(Date.now() + 1000).toISOString() },
    });
    expect(expiring.statusCode).toBe(201);
    const old = new OpenAI({ apiKey: expiring.json().key, baseURL: `${base}/v1`, maxRetries: 0 });
    await old.embeddings.create({ model: 'text-embedding-3-small', input: 'x' });
    await new Promise((r) => setTimeout(r, 1100));
    await expect(
      old.embeddings.create({ model: 'text-embedding-3-small', input: 'x' }),
    ).rejects.toMatchObject({ status: 401 });
    const anthropic = new Anthropic({ apiKey: 'tk-nope', baseURL: base, maxRetries: 0 });
    await expect(
      anthropic.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 5, messages: [] }),
    ).rejects.toMatchObject({
      status: 401,
      error: { type: 'error', error: { type: 'authentication_error' } },
    });
  });

  it('lists models, from the providers added through the API too, whatever the case of "Bearer"', async () => {
    const added = await t.app.inject({
      method: 'POST',
      url: '/v1/providers',
      headers: t.auth,
      payload: { id: 'mistral', kind: 'openai-compatible', base_url: `${mock.url}/v2`, api_key: 'sk-m' },
    });
    expect(added.statusCode).toBe(201);
    const list = await openai.models.list();
    expect(list.data.map((m) => m.id)).toContain('gpt-4o');
    expect(mock.received.some((r) => r.path === '/v2/models')).toBe(true);
    const lower = await fetch(`${base}/v1/models`, { headers: { authorization: `bearer ${key}` } });
    expect(lower.status).toBe(200);
  });
});
