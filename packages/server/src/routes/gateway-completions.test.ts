import { MockUpstream, SKIP_WITHOUT_RECORDINGS } from '@tally/gateway/testing';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastCalls, mockedGateway, type TestApp } from '../testing/test-app.js';

describe.skipIf(SKIP_WITHOUT_RECORDINGS)('gateway: legacy completions', () => {
  const mock = new MockUpstream();
  let t: TestApp;
  let openai: OpenAI;

  beforeAll(async () => {
    await mock.start();
    let base: string;
    ({ t, base } = await mockedGateway(mock.url));
    openai = new OpenAI({
      apiKey: (await t.newKey({ project: 'legacy' })).key,
      baseURL: `${base}/v1`,
      maxRetries: 0,
    });
  });
  afterAll(async () => {
    await t?.shutdown();
    await mock.stop();
  });

  // gpt-3.5-turbo-instruct: 5 prompt tokens at $1.50 and 7 completion tokens at $2 a million.
  const metered = {
    api: 'openai-chat',
    model_requested: 'gpt-3.5-turbo-instruct',
    status: 'ok',
    pricing_status: 'priced',
    project: 'legacy',
    tokens: { input: 5, output: 7 },
    cost_usd: '0.0000215',
  };

  it('passes a completion on, metered from its usage', async () => {
    const done = await openai.completions.create({
      model: 'gpt-3.5-turbo-instruct',
      prompt: 'Say this is a test',
      max_tokens: 7,
    });
    expect(done.choices[0]!.text).toBe('\n\nThe quick brown fox jumps over the');
    expect(mock.received.at(-1)).toMatchObject({
      path: '/v1/completions',
      body: { prompt: 'Say this is a test' },
    });
    expect((await lastCalls(t, 1))[0]).toMatchObject(metered);
  });

  it('streams one, asks the provider for its usage, and hides the usage chunk the client did not ask for', async () => {
    const stream = await openai.completions.create({
      model: 'gpt-3.5-turbo-instruct',
      prompt: 'Say this is a test',
      max_tokens: 7,
      stream: true,
    });
    let text = '';
    let chunks = 0;
    for await (const c of stream) {
      chunks++;
      expect(c.usage ?? null).toBeNull();
      text += c.choices[0]?.text ?? '';
    }
    expect(text).toBe('\n\nThe quick brown fox jumps over the');
    expect(chunks).toBe(7);
    expect(mock.received.at(-1)!.body).toMatchObject({
      stream: true,
      stream_options: { include_usage: true },
    });
    expect((await lastCalls(t, 1))[0]).toMatchObject(metered);
  });

  it('passes a moderation on to the provider, free: held to the key, not metered', async () => {
    const before = (await lastCalls(t, 100)).length;
    const checked = await openai.moderations.create({ input: ['Hello there', 'I will hurt you'] });
    expect(checked.results.map((r) => r.flagged)).toEqual([false, true]);
    expect(mock.received.at(-1)).toMatchObject({
      path: '/v1/moderations',
      headers: { authorization: 'Bearer sk-upstream' },
    });
    expect(await lastCalls(t, 100)).toHaveLength(before);
    // A key pinned to other models may not use it.
    const pinned = new OpenAI({
      apiKey: (await t.newKey({ models: ['gpt-4o'] })).key,
      baseURL: openai.baseURL,
      maxRetries: 0,
    });
    expect(await pinned.moderations.create({ input: 'x' }).catch((e: unknown) => e)).toMatchObject({
      status: 403,
      code: 'model_not_allowed',
    });
  });
});
