import { MockUpstream, mockSpeech, SKIP_WITHOUT_RECORDINGS } from '@tally/gateway/testing';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastCalls, mockedGateway, type TestApp } from '../testing/test-app.js';

type Failure = { status: number; code: string | null; message: string };

describe.skipIf(SKIP_WITHOUT_RECORDINGS)('gateway: transcriptions and speech', () => {
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
    expect(call).toMatchObject({
      status: 'ok',
      pricing_status: 'priced',
      tokens: { input: 0, output: 0, audio_seconds: 2 },
      cost_usd: '0.0002',
    });
    // Asked as text or subtitles, which give no duration, it is asked for its verbose JSON, billed
    // by that, and answered in the format asked, made from the JSON's segments: 2.5 seconds, billed
    // as 3 (to the nearest second, as whisper-1's usage gives them).
    const plain = async (format: 'text' | 'srt' | 'vtt') => {
      const answer = await openai.audio.transcriptions.create({
        file: await audio(40_000),
        model: 'whisper-1',
        response_format: format,
      });
      expect(mock.received.at(-1)!.raw).toContain('name="response_format"\r\n\r\nverbose_json\r\n');
      expect((await lastCalls(t, 1))[0]).toMatchObject({
        pricing_status: 'priced',
        tokens: { audio_seconds: 3 },
        cost_usd: '0.0003',
      });
      return String(answer);
    };
    expect(await plain('text')).toBe('Thank you for calling. How can I help you today?\n');
    expect(await plain('srt')).toBe(
      '1\n00:00:00,000 --> 00:00:01,250\nThank you for calling.\n\n' +
        '2\n00:00:01,250 --> 00:00:02,500\nHow can I help you today?\n\n',
    );
    expect(await plain('vtt')).toBe(
      'WEBVTT\n\n00:00:00.000 --> 00:00:01.250\nThank you for calling.\n\n' +
        '00:00:01.250 --> 00:00:02.500\nHow can I help you today?\n\n',
    );
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

  it("holds whisper-1's transcripts to a budget by the file's seconds", async () => {
    // 2 MB reserves 10,000 audio tokens, 500 seconds at 20 a second: $0.05 at $0.006 a minute, past
    // $0.02. 168 KB reserves 42 seconds ($0.0042): it goes, and costs the 11 seconds its usage gives.
    const openai = await client({ budget_usd: 0.02, period: 'month' });
    expect(
      await openai.audio.transcriptions
        .create({ file: await audio(2_000_000), model: 'whisper-1' })
        .catch((e: unknown) => e),
    ).toMatchObject({ status: 429, code: 'budget_exceeded' });
    await openai.audio.transcriptions.create({ file: await audio(168_000), model: 'whisper-1' });
    expect((await lastCalls(t, 1))[0]).toMatchObject({ status: 'ok', cost_usd: '0.0011' });
    // A file whose reservation is not a whole number of seconds (42.05) is held to the next one.
    await openai.audio.transcriptions.create({ file: await audio(168_001), model: 'whisper-1' });
    expect((await lastCalls(t, 1))[0]).toMatchObject({ status: 'ok', cost_usd: '0.0011' });
  });

  it("translates with the openai client, billed by whisper-1's seconds, the answer as asked", async () => {
    const openai = await client({ project: 'intl', budget_usd: 0.02, period: 'month' });
    const done = await openai.audio.translations.create({ file: await audio(168_000), model: 'whisper-1' });
    // The JSON the client asked for: its text, nothing more.
    expect(done).toEqual({ text: 'Good morning. Your parcel arrives today.' });
    // Asked of whisper-1 as its verbose JSON, which gives the duration it bills.
    const sent = mock.received.at(-1)!;
    expect(sent.path).toBe('/v1/audio/translations');
    expect(sent.raw).toContain('name="response_format"\r\n\r\nverbose_json\r\n');
    expect((await lastCalls(t, 1))[0]).toMatchObject({
      api: 'openai-transcriptions',
      model_requested: 'whisper-1',
      status: 'ok',
      pricing_status: 'priced',
      project: 'intl',
      tokens: { audio_seconds: 11 },
      // 10.5 seconds, billed as 11 (to the nearest second), at $0.006 a minute.
      cost_usd: '0.0011',
    });
    // Asked verbose itself, it is answered verbose, and costs the same.
    const verbose = await openai.audio.translations.create({
      file: await audio(168_000),
      model: 'whisper-1',
      response_format: 'verbose_json',
    });
    expect(verbose).toMatchObject({ duration: 10.5, text: 'Good morning. Your parcel arrives today.' });
    expect((await lastCalls(t, 1))[0]).toMatchObject({ cost_usd: '0.0011' });
    // As text, which gives no duration, it is asked verbose too, and answered the text.
    const text = await openai.audio.translations.create({
      file: await audio(168_000),
      model: 'whisper-1',
      response_format: 'text',
    });
    expect(String(text)).toBe('Good morning. Your parcel arrives today.\n');
    expect((await lastCalls(t, 1))[0]).toMatchObject({ pricing_status: 'priced', cost_usd: '0.0011' });
    // The budget holds a translation by its file's seconds, as a transcription's.
    expect(
      await openai.audio.translations
        .create({ file: await audio(2_000_000), model: 'whisper-1' })
        .catch((e: unknown) => e),
    ).toMatchObject({ status: 429, code: 'budget_exceeded' });
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

  /** 60 characters. */
  const input = 'Your order has shipped. It will arrive on Thursday, by noon.';

  it("speaks with the openai client, the audio passed on whole, and tts-1 billed by the input's characters", async () => {
    const openai = await client({ project: 'notify' });
    const speech = await openai.audio.speech.create({ model: 'tts-1', voice: 'alloy', input });
    expect(speech.headers.get('content-type')).toBe('audio/mpeg');
    expect(speech.headers.get('x-tally-call-id')).toBeTruthy();
    const audio = Buffer.from(await speech.arrayBuffer());
    expect(audio.equals(mockSpeech(input, 'mp3'))).toBe(true);
    expect(mock.received.at(-1)).toMatchObject({
      path: '/v1/audio/speech',
      headers: { authorization: 'Bearer sk-upstream' },
      body: { model: 'tts-1', voice: 'alloy', input },
    });
    const [call] = await lastCalls(t, 1);
    expect(call).toMatchObject({
      api: 'openai-speech',
      model_requested: 'tts-1',
      status: 'ok',
      pricing_status: 'priced',
      project: 'notify',
      tokens: { input: 0, output: 0, characters: 60 },
      // 60 characters at $15 a million.
      cost_usd: '0.0009',
    });
    // tts-1-hd at $30 a million; a character is a code point (the emoji is one, not two).
    await (
      await openai.audio.speech.create({ model: 'tts-1-hd', voice: 'alloy', input: `${input} 🎉` })
    ).arrayBuffer();
    expect((await lastCalls(t, 1))[0]).toMatchObject({
      model_requested: 'tts-1-hd',
      tokens: { characters: 62 },
      cost_usd: '0.00186',
    });
  });

  it("meters gpt-4o-mini-tts from a streamed speech's usage, and estimates a plain one from its audio", async () => {
    const openai = await client({});
    const streamed = await openai.audio.speech.create({
      model: 'gpt-4o-mini-tts',
      voice: 'coral',
      input,
      stream_format: 'sse',
    });
    const events = (await streamed.text()).trim().split('\n\n');
    expect(events.at(-1)).toContain('"speech.audio.done"');
    expect(events.length).toBeGreaterThan(2);
    expect((await lastCalls(t, 1))[0]).toMatchObject({
      model_requested: 'gpt-4o-mini-tts',
      pricing_status: 'priced',
      // Its characters are counted too, though its price is by the token.
      tokens: { input: 15, output: 80, characters: 60 },
      // 15 tokens in at $0.60 and 80 out at $12 a million.
      cost_usd: '0.000969',
    });
    // As raw 24 kHz samples, 192,000 bytes: 4 seconds, 84 audio tokens at 21 a second, estimated.
    const pcm = await openai.audio.speech.create({
      model: 'gpt-4o-mini-tts',
      voice: 'coral',
      input,
      response_format: 'pcm',
    });
    expect((await pcm.arrayBuffer()).byteLength).toBe(192_000);
    const [plain] = await lastCalls(t, 1);
    expect(plain).toMatchObject({ pricing_status: 'estimated', tokens: { output: 84 } });
    const inputTokens = (plain as { tokens: { input: number } }).tokens.input;
    expect(inputTokens).toBeGreaterThan(10);
    expect(plain!.cost_usd).toBe(((inputTokens * 0.6 + 84 * 12) / 1e6).toString());
  });

  it('meters a speech the client stops listening to part-way, at its characters', async () => {
    const openai = await client({ project: 'cut' });
    const long = input.repeat(40);
    const abort = new AbortController();
    const speech = await openai.audio.speech.create(
      { model: 'tts-1', voice: 'alloy', input: long, response_format: 'pcm' },
      { signal: abort.signal },
    );
    const reader = speech.body!.getReader();
    const first = await reader.read();
    expect(first.value!.byteLength).toBeGreaterThan(0);
    abort.abort();
    await reader.cancel().catch(() => undefined);
    // Metered once the gateway sees the client gone.
    let cut = (await lastCalls(t, 1))[0];
    for (let i = 0; i < 100 && cut?.project !== 'cut'; i++) {
      await new Promise((r) => setTimeout(r, 20));
      cut = (await lastCalls(t, 1))[0];
    }
    expect(cut).toMatchObject({
      status: 'error',
      error_type: 'client_disconnected',
      // 2,400 characters at $15 a million: the whole input, which the provider bills.
      cost_usd: '0.036',
    });
  });

  it("holds a speech to the key's budget at its characters' cost, and passes the upstream's refusal on", async () => {
    const openai = await client({ budget_usd: 0.001, period: 'month' });
    const refused = (await openai.audio.speech
      .create({ model: 'tts-1-hd', voice: 'alloy', input })
      .catch((e: unknown) => e)) as Failure;
    // $0.0018 of characters: past the budget, and nothing sent.
    expect(refused).toMatchObject({ status: 429, code: 'budget_exceeded' });
    await (await openai.audio.speech.create({ model: 'tts-1', voice: 'alloy', input })).arrayBuffer();
    expect((await lastCalls(t, 1))[0]).toMatchObject({ status: 'ok', cost_usd: '0.0009' });
    // The budget has $0.0001 left: the next is refused before it goes.
    expect(
      await openai.audio.speech.create({ model: 'tts-1', voice: 'alloy', input }).catch((e: unknown) => e),
    ).toMatchObject({ status: 429, code: 'budget_exceeded' });
    const other = await client({});
    const bad = (await other.audio.speech
      .create({ model: 'tts-1', voice: 'alloy', input, stream_format: 'sse' })
      .catch((e: unknown) => e)) as Failure;
    expect(bad.status).toBe(400);
    expect(bad.message).toContain('not supported for tts-1');
    expect((await lastCalls(t, 1))[0]).toMatchObject({ status: 'error', cost_usd: '0' });
  });
});
