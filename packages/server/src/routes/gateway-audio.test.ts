import { MockUpstream, SKIP_WITHOUT_RECORDINGS } from '@tally/gateway/testing';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastCalls, mockedGateway, type TestApp } from '../testing/test-app.js';

type Failure = { status: number; code: string | null; message: string };

describe.skipIf(SKIP_WITHOUT_RECORDINGS)('gateway: transcriptions', () => {
  const mock = new MockUpstream();
  let t: TestApp;
  let base: string;
  const client = async (fields: Record<string, unknown>) =>
    new OpenAI({ apiKey: (await t.newKey(fields)).key, baseURL: `${base}/v1`, maxRetries: 0 });
  /** An audio file of `bytes` bytes (the mock bills a token for each 1,600 of them). */
  const audio = (bytes: number) => toFile(Buffer.alloc(bytes, 0x49), 'call.mp3');

  beforeAll(async () => {
    await mock.start();
    ({ t, base } = await mockedGateway(mock.url, {
      routes: [{ model: 'transcriber', targets: [{ provider: 'openai', model: 'gpt-4o-transcribe' }] }],
    }));
  });
  afterAll(async () => {
    await t?.shutdown();
    await mock.stop();
  });

  it('transcribes with the openai client, metered from the usage in audio and text tokens', async () => {
    const openai = await client({ project: 'calls' });
    const done = await openai.audio.transcriptions.create({
      file: await audio(160_000),
      model: 'gpt-4o-transcribe',
      prompt: 'A support call.',
    });
    expect(done.text).toBe('Thank you for calling. How can I help you today?');
    // The form went as it came, with the provider's key.
    const sent = mock.received.at(-1)!;
    expect(sent).toMatchObject({
      path: '/v1/audio/transcriptions',
      headers: { authorization: 'Bearer sk-upstream' },
    });
    expect(String(sent.headers['content-type'])).toMatch(/^multipart\/form-data; boundary=/);
    expect(sent.raw.length).toBeGreaterThan(160_000);
    const [call] = await lastCalls(t, 1);
    expect(call).toMatchObject({
      api: 'openai-transcriptions',
      model_requested: 'gpt-4o-transcribe',
      status: 'ok',
      pricing_status: 'priced',
      project: 'calls',
      tokens: { input: 106, output: 12, input_audio: 100 },
      // 100 audio tokens at $6, 6 prompt tokens at $2.50 and 12 text tokens out at $10 a million.
      cost_usd: '0.000735',
    });
  });

  it('streams a transcript, metered from its last event', async () => {
    const openai = await client({});
    const stream = await openai.audio.transcriptions.create({
      file: await audio(160_000),
      model: 'gpt-4o-transcribe',
      stream: true,
    });
    const types: string[] = [];
    for await (const e of stream) types.push(e.type);
    expect(types.at(-1)).toBe('transcript.text.done');
    expect(types.filter((x) => x === 'transcript.text.delta')).toHaveLength(10);
    const [call] = await lastCalls(t, 1);
    expect(call).toMatchObject({ api: 'openai-transcriptions', status: 'ok', cost_usd: '0.00072' });
  });

  it('passes a transcript asked as text on as text, metered estimated', async () => {
    const openai = await client({});
    const text = await openai.audio.transcriptions.create({
      file: await audio(16_000),
      model: 'gpt-4o-transcribe',
      response_format: 'text',
    });
    expect(String(text).trim()).toBe('Thank you for calling. How can I help you today?');
    const [call] = await lastCalls(t, 1);
    expect(call).toMatchObject({ status: 'ok', error_type: 'upstream_no_usage' });
    expect(call!.tokens.output).toBeGreaterThan(0);
  });

  it("prices whisper-1's transcripts by the second its usage gives", async () => {
    const openai = await client({});
    await openai.audio.transcriptions.create({ file: await audio(32_000), model: 'whisper-1' });
    const [call] = await lastCalls(t, 1);
    // 2 seconds at $0.006 a minute.
    expect(call).toMatchObject({ status: 'ok', pricing_status: 'priced', cost_usd: '0.0002' });
    // Asked as text, with no usage, its estimated tokens have no price: unpriced, not $0.
    await openai.audio.transcriptions.create({
      file: await audio(32_000),
      model: 'whisper-1',
      response_format: 'text',
    });
    const [text] = await lastCalls(t, 1);
    expect(text).toMatchObject({ status: 'ok', pricing_status: 'unpriced', cost_usd: null });
  });

  it("reserves the file's audio on the key's budget, and holds it to the key's models", async () => {
    // 2 MB reserves 10,486 audio tokens at $6 a million, $0.063: past $0.05. 160 KB fits.
    const openai = await client({ budget_usd: 0.05, period: 'month', models: ['gpt-4o-transcribe'] });
    const from = mock.received.length;
    const refused = (await openai.audio.transcriptions
      .create({ file: await audio(2_000_000), model: 'gpt-4o-transcribe' })
      .catch((e: unknown) => e)) as Failure;
    expect(refused).toMatchObject({ status: 429, code: 'budget_exceeded' });
    const other = (await openai.audio.transcriptions
      .create({ file: await audio(1_000), model: 'whisper-1' })
      .catch((e: unknown) => e)) as Failure;
    expect(other).toMatchObject({ status: 403, code: 'model_not_allowed' });
    expect(mock.received.length).toBe(from);
    const fits = await openai.audio.transcriptions.create({
      file: await audio(160_000),
      model: 'gpt-4o-transcribe',
    });
    expect(fits.text).toMatch(/^Thank you/);
  });

  it('sends the model a route names in the form, the rest of it as it came', async () => {
    const openai = await client({});
    await openai.audio.transcriptions.create({
      file: await audio(16_000),
      model: 'transcriber',
      language: 'en',
    });
    const sent = mock.received.at(-1)!.raw;
    expect(sent).toContain('name="model"\r\n\r\ngpt-4o-transcribe\r\n');
    expect(sent).toContain('name="language"\r\n\r\nen\r\n');
    expect(sent).not.toContain('transcriber');
    const [call] = await lastCalls(t, 1);
    expect(call).toMatchObject({
      model_requested: 'transcriber',
      pricing_status: 'priced',
      cost_usd: '0.00018',
    });
  });
});
