import { describe, expect, it } from 'vitest';
import { exactToUsd } from '../money.js';
import { pricedBy, testCatalog } from '../testing/catalog-fixture.js';
import type { PriceInput } from './types.js';

const cat = testCatalog();

function usd(input: PriceInput) {
  const r = pricedBy(cat, input);
  return { input: exactToUsd(r.input), output: exactToUsd(r.output), total: exactToUsd(r.total) };
}

/** Prices genai-prices lacks, filled from LiteLLM in the catalog build. */
describe('prices filled from LiteLLM', () => {
  it("gpt-4o-audio-preview's audio tokens at its audio rates ($40 in, $80 out per million)", () => {
    const usage = {
      prompt_tokens: 1000,
      completion_tokens: 200,
      prompt_tokens_details: { audio_tokens: 500, cached_tokens: 0 },
      completion_tokens_details: { audio_tokens: 100, reasoning_tokens: 0 },
    };
    for (const model of [
      'gpt-4o-audio-preview',
      'gpt-4o-audio-preview-2024-12-17',
      'gpt-4o-audio-preview-2025-06-03',
    ]) {
      // 500 × $2.50 + 500 × $40; 100 × $10 + 100 × $80, per million.
      expect(usd({ provider: 'openai', api: 'openai-chat', model, usage }), model).toEqual({
        input: '0.02125',
        output: '0.009',
        total: '0.03025',
      });
    }
  });

  it('claude-sonnet-4 above 200K input pays the long-context rates, as claude-sonnet-4-5 does', () => {
    const usage = { input_tokens: 150_000, cache_read_input_tokens: 60_000, output_tokens: 1000 };
    const call = { provider: 'anthropic', api: 'anthropic-messages', usage };
    // 150,000 × $6 + 60,000 × $0.60 + 1,000 × $22.50, per million.
    const above = { input: '0.936', output: '0.0225', total: '0.9585' };
    expect(usd({ ...call, model: 'claude-sonnet-4-20250514' })).toEqual(above);
    expect(usd({ ...call, model: 'claude-sonnet-4-5-20250929' })).toEqual(above);
    // At 200K, the base rates: 140,000 × $3 + 60,000 × $0.30 + 1,000 × $15.
    const at = { ...usage, input_tokens: 140_000 };
    expect(usd({ ...call, model: 'claude-sonnet-4-20250514', usage: at }).total).toBe('0.453');
    // A 1 hour cache write above 200K: twice the base input, as Anthropic prices it ($12).
    const write = {
      input_tokens: 200_000,
      cache_creation_input_tokens: 1000,
      cache_creation: { ephemeral_1h_input_tokens: 1000 },
      output_tokens: 0,
    };
    expect(usd({ ...call, model: 'claude-sonnet-4-20250514', usage: write }).input).toBe('1.212');
  });
});

/** Names genai-prices prices with another model's entry, where the other tables agree otherwise. */
describe('names the other tables price apart', () => {
  const chat = (provider: string, model: string) => ({
    provider,
    api: 'openai-chat',
    model,
    usage: { prompt_tokens: 1_000_000, completion_tokens: 1_000_000 },
  });
  it('gpt-4o-2024-05-13 at $5 / $15, as LiteLLM, Portkey, Langfuse and OpenAI give it; gpt-4o and its later snapshots at $2.50 / $10', () => {
    expect(usd(chat('openai', 'gpt-4o-2024-05-13'))).toEqual({ input: '5', output: '15', total: '20' });
    for (const model of ['gpt-4o', 'gpt-4o-2024-08-06', 'gpt-4o-2024-11-20'])
      expect(usd(chat('openai', model)), model).toEqual({ input: '2.5', output: '10', total: '12.5' });
    expect(pricedBy(cat, chat('openai', 'gpt-4o-2024-05-13')).source).toBe(
      'litellm:openai/gpt-4o-2024-05-13',
    );
  });

  it("Groq's gpt-oss-safeguard-20b at its own price, not gpt-oss-120b's; one table alone does not move genai-prices", () => {
    expect(usd(chat('groq', 'openai/gpt-oss-safeguard-20b')).total).toBe('0.375');
    expect(usd(chat('groq', 'openai/gpt-oss-120b')).total).toBe('0.75');
    // Only LiteLLM prices codestral-latest otherwise (1 / 3): genai-prices' codestral (0.30 / 0.90)
    // stands.
    expect(usd(chat('mistral', 'codestral-latest')).total).toBe('1.2');
  });
});

/** LiteLLM's 0 / 0 listings: placeholders more often than prices. */
describe('listings at zero', () => {
  const chat = (provider: string, model: string): PriceInput => ({
    provider,
    api: 'openai-chat',
    model,
    usage: { prompt_tokens: 1_000_000, completion_tokens: 0 },
  });

  it('never win over a listing with a price', () => {
    // gemini/gemini-exp-1206 lists 0 / 0; gemini-exp-1206 lists $0.30 / $2.50.
    expect(usd(chat('google', 'gemini-exp-1206')).total).toBe('0.3');
  });

  it('leave a model no other listing prices unpriced, unless the source says it is free', () => {
    for (const [provider, model] of [
      ['ollama', 'llama3'],
      ['volcengine', 'deepseek-v3-2-251201'],
      ['google', 'gemini-exp-1114'],
    ]) {
      expect(cat.price(chat(provider!, model!)), model).toMatchObject({ status: 'unpriced' });
    }
    // The name says so, or LiteLLM's notes do ("at no cost during public preview").
    expect(usd(chat('together', 'meta-llama/Llama-3.3-70B-Instruct-Turbo-Free')).total).toBe('0');
    expect(usd(chat('google', 'meta/llama-3.1-8b-instruct-maas')).total).toBe('0');
  });

  it('a listing priced per query is no zero listing', () => {
    // LiteLLM prices rerank-v3.5 per query (tokens at 0); Portkey's per-search price must not
    // become $2,000 per million tokens, nor its tokens be free: it is unpriced.
    expect(cat.price(chat('cohere', 'rerank-v3.5'))).toMatchObject({ status: 'unpriced' });
  });
});

/** Models billed in another unit than tokens, which another table quotes as if per token. */
describe('models billed by the second, the character or the image', () => {
  it('are not priced per token from a table that quotes their unit price as a token price', () => {
    // Portkey quotes whisper-1's $0.006 a minute as 0.6 cents a token, and tts-1's $15 a million
    // characters as a token price; LiteLLM bills them by the second and by the character.
    for (const [provider, model] of [
      ['openai', 'whisper-1'],
      ['openai', 'tts-1'],
      ['openai', 'tts-1-hd'],
      ['deepgram', 'nova-3'],
    ] as const) {
      const r = cat.price({ provider, model, tokens: { input: 1000, output: 0 } });
      expect(r.status, `${provider}/${model}`).toBe('unpriced');
    }
    expect(
      cat.price({ provider: 'openai', model: 'whisper-1', tokens: { input: 1000, output: 0 } }),
    ).toMatchObject({
      reason: 'model whisper-1 has no price for tokens (1000)',
    });
  });

  it("prices dall-e by the image, at its quality and size (Portkey's prices an image)", () => {
    const images = (provider: string, model: string, count: number, quality?: string, size?: string) =>
      cat.price({
        provider,
        api: 'openai-images',
        model,
        tokens: {},
        images: { count, quality: quality ?? null, size: size ?? null },
      });
    // dall-e-3: $0.04 a standard square image, $0.12 an HD portrait; dall-e-2: $0.016 at 256x256.
    expect(images('openai', 'dall-e-3', 1)).toMatchObject({ status: 'priced', listNano: 40_000_000n });
    expect(images('openai', 'dall-e-3', 1, 'hd', '1024x1792')).toMatchObject({ listNano: 120_000_000n });
    expect(images('openai', 'dall-e-3', 1, 'hd')).toMatchObject({ listNano: 80_000_000n });
    expect(images('openai', 'dall-e-2', 2, undefined, '256x256')).toMatchObject({
      listNano: 32_000_000n,
      tokens: { image_generations: 2 },
    });
    expect(images('azure', 'dall-e-3', 3, 'standard', '1792x1024')).toMatchObject({ listNano: 240_000_000n });
    // A size the tables give no price for is no price, never $0.
    expect(images('openai', 'dall-e-2', 1, undefined, '2048x2048')).toMatchObject({
      status: 'unpriced',
      reason: 'model dall-e-2 has no price for an image (2048x2048)',
    });
    // Nor is a model priced by the token, asked for images it has no price an image for.
    expect(images('openai', 'gpt-4o', 1)).toMatchObject({ status: 'unpriced' });
  });

  it('are never $0 a token where a table bills them in another unit, and quotes 0 a token', () => {
    // LiteLLM lists Azure's dall-e-3 at 0 a token out with its price per pixel, Gemini's
    // lyria-3-clip-preview at 0 a token with its price per image, Cohere's rerank models at 0 a
    // token with their price a query (which Portkey gives as a price a token), and Mistral's OCR by
    // the page; Portkey lists deepbricks' dall-e-3 and Google's Imagen 4 at 0 a token with their
    // prices per image, sora-2 and Veo with their prices a second of video, and seedream with its
    // price an image.
    for (const [provider, model] of [
      ['azure', 'hd/1024-x-1024/dall-e-3'],
      ['azure', 'standard/1792-x-1024/dall-e-3'],
      ['google', 'lyria-3-clip-preview'],
      ['google', 'imagen-4.0-generate-001-lte-128k'],
      ['deepbricks', 'dall-e-3'],
      ['openai', 'sora-2'],
      ['openai', 'sora-2-pro'],
      ['azure', 'sora-2'],
      ['google', 'veo-3.1-generate-preview-lte-128k'],
      ['together', 'minimax/hailuo-02'],
      ['byteplus', 'seedream-4-5'],
      ['cohere', 'rerank-v3.5'],
      ['aws', 'cohere.rerank-v3-5:0'],
      ['azure-ai', 'cohere-rerank-v3.5'],
      ['mistral', 'mistral-ocr-latest'],
    ] as const) {
      const r = cat.price({ provider, model, tokens: { input: 1000, output: 1000 } });
      expect(r.status, `${provider}/${model}`).toBe('unpriced');
    }
    // A model that really is free stays free.
    const free = cat.price({ provider: 'openrouter', model: 'qwen/qwen3-4b:free', tokens: { input: 1000 } });
    expect(free.status).toBe('priced');
  });

  it("prices a transcription billed by the second from its usage's seconds", () => {
    // whisper-1: $0.006 a minute; Deepgram's nova-3: $0.0043 a minute (LiteLLM's per-second rates).
    const seconds = (provider: string, model: string, s: number) =>
      usd({ provider, api: 'openai-transcriptions', model, usage: { type: 'duration', seconds: s } }).total;
    expect(seconds('openai', 'whisper-1', 90)).toBe('0.009');
    expect(seconds('deepgram', 'nova-3', 60)).toBe('0.0043002');
  });

  it("prices a speech billed by the character from its input's characters", () => {
    // tts-1: $15 a million characters, tts-1-hd $30, ElevenLabs' eleven_v3 $180 (LiteLLM's rates).
    const speech = (provider: string, model: string, usage: Record<string, number>) =>
      cat.price({ provider, api: 'openai-speech', model, usage });
    expect(speech('openai', 'tts-1', { characters: 1000 })).toMatchObject({
      status: 'priced',
      listNano: 15_000_000n,
    });
    expect(speech('openai', 'tts-1-hd', { characters: 1000 })).toMatchObject({ listNano: 30_000_000n });
    expect(speech('elevenlabs', 'eleven_v3', { characters: 1000 })).toMatchObject({ listNano: 180_000_000n });
    // gpt-4o-mini-tts bills tokens: a streamed speech's usage prices it, its characters beside them
    // changing nothing; its characters alone are no price, never $0.
    expect(
      speech('openai', 'gpt-4o-mini-tts', { characters: 60, input_tokens: 14, output_tokens: 101 }),
    ).toMatchObject({ status: 'priced', listNano: 1_220_400n });
    expect(speech('openai', 'gpt-4o-mini-tts', { characters: 60 })).toMatchObject({
      status: 'unpriced',
      reason: 'model gpt-4o-mini-tts has no price for characters (60)',
    });
    expect(speech('openai', 'tts-1', { characters: 60, input_tokens: 14, output_tokens: 101 })).toMatchObject(
      {
        status: 'unpriced',
        reason: 'model tts-1 has no price for tokens (115)',
      },
    );
  });

  it('keeps a model those tables price per token too', () => {
    // gpt-4o-mini-tts: text in at $0.60 a million (LiteLLM also bills its audio out by the token).
    expect(
      usd({ provider: 'openai', model: 'gpt-4o-mini-tts', tokens: { input: 1_000_000, output: 0 } }).total,
    ).toBe('0.6');
  });
});
