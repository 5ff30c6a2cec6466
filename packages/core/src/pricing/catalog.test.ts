import { describe, expect, it } from 'vitest';
import { fixedClock } from '../clock.js';
import { exactToUsd } from '../money.js';
import { testCatalog } from '../testing/catalog-fixture.js';
import type { Priced, PriceInput } from './types.js';

const cat = testCatalog();

function priced(input: PriceInput): Priced {
  const r = cat.price(input);
  if (r.status !== 'priced') throw new Error(`unpriced: ${r.reason}`);
  return r;
}

const usd = (r: Priced) => ({
  input: exactToUsd(r.input),
  output: exactToUsd(r.output),
  total: exactToUsd(r.total),
});

describe('usage normalisation traps', () => {
  it('openai-chat: prompt_tokens already include cached tokens', () => {
    const r = priced({
      provider: 'openai',
      api: 'openai-chat',
      model: 'gpt-4o-2024-08-06',
      usage: { prompt_tokens: 1000, completion_tokens: 100, prompt_tokens_details: { cached_tokens: 400 } },
    });
    // 600 uncached × $2.50/M + 400 cached × $1.25/M; 100 × $10/M.
    expect(usd(r)).toEqual({ input: '0.002', output: '0.001', total: '0.003' });
    expect(r.tokens).toMatchObject({ input: 1000, cache_read: 400, output: 100 });
  });

  it('openai-responses: input_tokens include cached, output includes reasoning', () => {
    const r = priced({
      provider: 'openai',
      api: 'openai-responses',
      model: 'o3-mini',
      usage: {
        input_tokens: 2000,
        input_tokens_details: { cached_tokens: 1000 },
        output_tokens: 500,
        output_tokens_details: { reasoning_tokens: 300 },
      },
    });
    // o3-mini: $1.10/M input, $0.55/M cached, $4.40/M output (reasoning billed as output).
    expect(usd(r)).toEqual({ input: '0.00165', output: '0.0022', total: '0.00385' });
    expect(r.tokens).toMatchObject({ input: 2000, cache_read: 1000, output: 500, reasoning: 300 });
  });

  it('openai-embeddings: only input is billed', () => {
    const r = priced({
      provider: 'openai',
      api: 'openai-embeddings',
      model: 'text-embedding-3-small',
      usage: { prompt_tokens: 5000, total_tokens: 5000 },
    });
    expect(usd(r)).toEqual({ input: '0.0001', output: '0', total: '0.0001' });
  });

  it('anthropic-messages: input_tokens exclude cache reads and writes', () => {
    const r = priced({
      provider: 'anthropic',
      api: 'anthropic-messages',
      model: 'claude-sonnet-4-5-20250929',
      usage: {
        input_tokens: 100,
        cache_creation_input_tokens: 2000,
        cache_read_input_tokens: 10000,
        cache_creation: { ephemeral_5m_input_tokens: 1500, ephemeral_1h_input_tokens: 500 },
        output_tokens: 200,
      },
    });
    // 100 × $3 + 1500 × $3.75 (5 min write) + 500 × $6 (1 h write) + 10000 × $0.30, per million.
    expect(usd(r)).toEqual({ input: '0.011925', output: '0.003', total: '0.014925' });
    expect(r.tokens).toMatchObject({
      input: 12100,
      cache_read: 10000,
      cache_write: 2000,
      cache_write_1h: 500,
    });
  });

  it('anthropic: long context above 200k input tokens is priced at the higher tier for the whole call', () => {
    const base = { provider: 'anthropic', api: 'anthropic-messages', model: 'claude-sonnet-4-5' };
    const at = priced({ ...base, usage: { input_tokens: 200_000, output_tokens: 1000 } });
    const above = priced({ ...base, usage: { input_tokens: 200_001, output_tokens: 1000 } });
    expect(usd(at)).toEqual({ input: '0.6', output: '0.015', total: '0.615' });
    expect(usd(above)).toEqual({ input: '1.200006', output: '0.0225', total: '1.222506' });
  });

  it('anthropic: web searches are billed per search, outside input and output', () => {
    const r = priced({
      provider: 'anthropic',
      api: 'anthropic-messages',
      model: 'claude-sonnet-4-5',
      usage: { input_tokens: 1000, output_tokens: 100, server_tool_use: { web_search_requests: 2 } },
    });
    expect(usd(r)).toEqual({ input: '0.003', output: '0.0015', total: '0.0245' });
  });

  it('gemini: thoughtsTokenCount is separate from candidatesTokenCount and billed as output', () => {
    const r = priced({
      provider: 'google',
      api: 'gemini',
      model: 'gemini-2.5-flash',
      usage: {
        promptTokenCount: 1000,
        candidatesTokenCount: 100,
        thoughtsTokenCount: 400,
        totalTokenCount: 1500,
      },
    });
    expect(usd(r)).toEqual({ input: '0.0003', output: '0.00125', total: '0.00155' });
    expect(r.tokens).toMatchObject({ input: 1000, output: 500, reasoning: 400 });
  });

  it('gemini: cached content is part of the prompt count', () => {
    const r = priced({
      provider: 'google',
      api: 'gemini',
      model: 'gemini-2.5-flash',
      usage: { promptTokenCount: 10000, cachedContentTokenCount: 8000, candidatesTokenCount: 10 },
    });
    // 2000 × $0.30 + 8000 × $0.03, per million.
    expect(usd(r).input).toBe('0.00084');
  });

  it('bedrock-converse: inputTokens exclude cache reads and writes', () => {
    const r = priced({
      provider: 'aws',
      api: 'bedrock-converse',
      model: 'anthropic.claude-3-5-haiku-20241022-v1:0',
      usage: { inputTokens: 100, cacheReadInputTokens: 1000, cacheWriteInputTokens: 0, outputTokens: 50 },
    });
    expect(r.tokens).toMatchObject({ input: 1100, cache_read: 1000, output: 50 });
    expect(usd(r)).toEqual({ input: '0.00016', output: '0.0002', total: '0.00036' });
  });

  it('x-ai: completion_tokens exclude reasoning, which is added to output (once: the total counts it)', () => {
    const r = priced({
      provider: 'x-ai',
      api: 'openai-chat',
      model: 'grok-3-mini',
      usage: {
        prompt_tokens: 1000,
        completion_tokens: 100,
        total_tokens: 1400,
        completion_tokens_details: { reasoning_tokens: 300 },
      },
    });
    expect(r.tokens).toMatchObject({ output: 400, reasoning: 300 });
    expect(usd(r).output).toBe('0.0002');
  });

  it('any OpenAI-compatible provider without an extractor of its own uses the chat shape', () => {
    const r = priced({
      provider: 'together',
      api: 'openai-chat',
      model: 'meta-llama/Llama-3.3-70B-Instruct-Turbo',
      usage: { prompt_tokens: 1000, completion_tokens: 100 },
    });
    expect(usd(r)).toEqual({ input: '0.00088', output: '0.000088', total: '0.000968' });
  });

  it("accepts a provider's own flavour names and common api aliases", () => {
    const cohere = priced({
      provider: 'cohere',
      api: 'openai-chat',
      model: 'command-r-plus',
      usage: {
        billed_units: { input_tokens: 1000, output_tokens: 100 },
        tokens: { input_tokens: 1200, output_tokens: 100 },
      },
    });
    // Cohere bills billed_units, not the raw token counts.
    expect(cohere.tokens).toMatchObject({ input: 1000, output: 100 });
    const perplexity = priced({
      provider: 'perplexity',
      api: 'default',
      model: 'sonar',
      usage: { prompt_tokens: 1000, completion_tokens: 100 },
    });
    // sonar: $1/M in and out, plus a per-request fee outside input and output.
    expect(usd(perplexity).input).toBe('0.001');
    expect(perplexity.total > perplexity.input + perplexity.output).toBe(true);
    const alias = priced({
      provider: 'anthropic',
      api: 'messages',
      model: 'claude-3-5-haiku',
      usage: { input_tokens: 10, output_tokens: 1 },
    });
    expect(alias.tokens.input).toBe(10);
  });

  it('rejects usage that cannot be right', () => {
    expect(() =>
      cat.price({
        provider: 'openai',
        api: 'openai-chat',
        model: 'gpt-4o',
        usage: { prompt_tokens: 10, completion_tokens: 1, prompt_tokens_details: { cached_tokens: 50 } },
      }),
    ).toThrow(/cache_read_tokens exceed input_tokens/);
    expect(() =>
      cat.price({ provider: 'openai', api: 'openai-chat', model: 'gpt-4o', usage: { completion_tokens: 1 } }),
    ).toThrow(/prompt_tokens/);
    expect(() =>
      cat.price({ provider: 'openai', api: 'openai-chat', model: 'gpt-4o', usage: { prompt_tokens: -1 } }),
    ).toThrow(/non-negative/);
    expect(() => cat.price({ provider: 'openai', api: 'fax', model: 'gpt-4o', usage: {} })).toThrow(
      /Unknown api/,
    );
  });
});

describe('model matching', () => {
  const name = (provider: string, model: string) => cat.resolve(provider, model)?.model.id ?? null;

  it('handles provider prefixes and dated snapshots', () => {
    expect(name('openai', 'openai/gpt-4o')).toBe('gpt-4o');
    expect(name('openai', 'gpt-4o-2024-08-06')).toBe('gpt-4o');
    expect(name('openai', 'GPT-4o')).toBe('gpt-4o');
    expect(name('anthropic', 'anthropic/claude-3-5-haiku-20241022')).toBe('claude-3-5-haiku-latest');
    expect(name('google', 'models/gemini-2.5-pro')).toBe('gemini-2.5-pro');
  });

  it('handles Bedrock region prefixes, versions and ARNs', () => {
    const id = 'anthropic.claude-3-7-sonnet-20250219-v1:0';
    expect(name('aws', id)).not.toBeNull();
    expect(name('bedrock', `us.${id}`)).not.toBeNull();
    expect(name('aws', `bedrock/eu.${id}`)).not.toBeNull();
    expect(name('aws', `arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.${id}`)).not.toBeNull();
  });

  it('maps Azure deployment names through config, and falls back to OpenAI models', () => {
    const azure = testCatalog({ azureDeployments: { 'prod-chat': 'gpt-4o-mini' } });
    expect(azure.resolve('azure', 'prod-chat')?.model.id).toBe('gpt-4o-mini');
    expect(name('azure', 'prod-chat')).toBeNull();
    expect(name('azure-openai', 'gpt-4o')).toBe('gpt-4o');
  });

  it('accepts the provider ids of other tools', () => {
    for (const [alias, id] of [
      ['xai', 'x-ai'],
      ['bedrock', 'aws'],
      ['vertex_ai', 'google'],
      ['together_ai', 'together'],
      ['fireworks_ai', 'fireworks'],
      ['gemini', 'google'],
    ] as const) {
      expect(cat.findProvider(alias)?.id).toBe(id);
    }
  });

  it('prices providers the secondary tables add', () => {
    const r = cat.price({
      provider: 'deepinfra',
      api: 'openai-chat',
      model: 'meta-llama/Meta-Llama-3.1-8B-Instruct',
      usage: { prompt_tokens: 1, completion_tokens: 1 },
    });
    expect(r.status).toBe('priced');
    if (r.status === 'priced') expect(r.source).toMatch(/^(litellm|portkey):/);
  });

  it('never prices an unknown model at $0', () => {
    const r = cat.price({
      provider: 'openai',
      api: 'openai-chat',
      model: 'gpt-99',
      usage: { prompt_tokens: 1 },
    });
    expect(r).toMatchObject({ status: 'unpriced', reason: expect.stringMatching(/gpt-99/) });
    const p = cat.price({ provider: 'nobody', api: 'openai-chat', model: 'x', usage: { prompt_tokens: 1 } });
    expect(p).toMatchObject({ status: 'unpriced', reason: expect.stringMatching(/provider "nobody"/) });
  });
});

describe('prices over time, batch and overrides', () => {
  it('applies the price in force at the call time', () => {
    const usage = { prompt_tokens: 1_000_000, completion_tokens: 0 };
    const before = priced({
      provider: 'openai',
      api: 'openai-chat',
      model: 'o3',
      usage,
      time: Date.parse('2025-06-01T00:00:00Z'),
    });
    const after = priced({
      provider: 'openai',
      api: 'openai-chat',
      model: 'o3',
      usage,
      time: Date.parse('2025-07-01T00:00:00Z'),
    });
    expect(exactToUsd(before.input)).toBe('10');
    expect(exactToUsd(after.input)).toBe('2');
  });

  it('applies time-of-day prices (DeepSeek off-peak) by the call time', () => {
    const c = testCatalog({ clock: fixedClock(Date.parse('2026-01-01T12:00:00Z')) });
    const usage = { prompt_tokens: 1_000_000, completion_tokens: 0 };
    const peak = c.price({ provider: 'deepseek', api: 'openai-chat', model: 'deepseek-chat', usage });
    const night = c.price({
      provider: 'deepseek',
      api: 'openai-chat',
      model: 'deepseek-chat',
      usage,
      time: Date.parse('2026-01-01T20:00:00Z'),
    });
    expect(peak.status === 'priced' && night.status === 'priced').toBe(true);
    if (peak.status === 'priced' && night.status === 'priced') expect(night.total < peak.total).toBe(true);
  });

  it('prices batch calls at batch rates where the sources give them', () => {
    const usage = { prompt_tokens: 1_000_000, completion_tokens: 1_000_000 };
    const std = priced({ provider: 'openai', api: 'openai-chat', model: 'gpt-4o', usage });
    const batch = priced({ provider: 'openai', api: 'openai-chat', model: 'gpt-4o', usage, batch: true });
    expect(exactToUsd(std.total)).toBe('12.5');
    expect(exactToUsd(batch.total)).toBe('6.25');
  });

  it('a negotiated discount gives an effective cost below list; a custom model is added', () => {
    const c = testCatalog({
      overrides: [
        { tenant: 'acme', provider: 'openai', model: 'gpt-4o', discount_pct: 15 },
        {
          tenant: 'acme',
          provider: 'vllm',
          model: 'our-llama',
          prices: { input_mtok: '0.2', output_mtok: '0.4' },
        },
      ],
    });
    const usage = { prompt_tokens: 1_000_000, completion_tokens: 0 };
    const list = c.price({ provider: 'openai', api: 'openai-chat', model: 'gpt-4o', usage });
    const acme = c.price({
      provider: 'openai',
      api: 'openai-chat',
      model: 'gpt-4o-2024-08-06',
      usage,
      tenant: 'acme',
    });
    expect(list).toMatchObject({ listNano: 2_500_000_000n, effectiveNano: 2_500_000_000n });
    expect(acme).toMatchObject({ listNano: 2_500_000_000n, effectiveNano: 2_125_000_000n });
    const custom = c.price({
      provider: 'vllm',
      api: 'openai-chat',
      model: 'our-llama',
      usage,
      tenant: 'acme',
    });
    expect(custom).toMatchObject({ status: 'priced', effectiveNano: 200_000_000n });
    expect(c.price({ provider: 'vllm', api: 'openai-chat', model: 'our-llama', usage }).status).toBe(
      'unpriced',
    );
  });
});
