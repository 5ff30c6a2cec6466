import { describe, expect, it } from 'vitest';
import { pricedBy, testCatalog } from '../testing/catalog-fixture.js';
import type { PriceInput } from './types.js';

/** 1M prompt tokens of gpt-4o: $2.50 at list. */
const call = (provider: string, model = 'gpt-4o'): PriceInput => ({
  provider,
  api: 'openai-chat',
  model,
  usage: { prompt_tokens: 1_000_000, completion_tokens: 0 },
  tenant: 'acme',
});

function effective(c: ReturnType<typeof testCatalog>, input: PriceInput): bigint {
  const r = pricedBy(c, input);
  expect(r.listNano).toBe(2_500_000_000n);
  return r.effectiveNano;
}

describe('overrides by provider', () => {
  it("an Azure call takes Azure's override, not the one of OpenAI, whose entry it is priced by", () => {
    const c = testCatalog({
      overrides: [
        { tenant: 'acme', provider: 'openai', model: 'gpt-4o', discount_pct: 15 },
        { tenant: 'acme', provider: 'azure', model: 'gpt-4o', discount_pct: 5 },
      ],
    });
    expect(c.resolve('azure', 'gpt-4o')?.provider.id).toBe('openai');
    expect(effective(c, call('azure'))).toBe(2_375_000_000n);
    expect(effective(c, call('azure-openai', 'gpt-4o-2024-08-06'))).toBe(2_375_000_000n);
    expect(effective(c, call('openai'))).toBe(2_125_000_000n);
  });

  it("a fallback provider's override never applies to another provider's calls", () => {
    const c = testCatalog({
      overrides: [{ tenant: 'acme', provider: 'openai', model: 'gpt-4o', discount_pct: 15 }],
    });
    expect(effective(c, call('azure'))).toBe(2_500_000_000n);
    expect(effective(c, call('openai'))).toBe(2_125_000_000n);
  });

  it("an override named by a provider's alias is that provider's", () => {
    const c = testCatalog({
      overrides: [{ tenant: 'acme', provider: 'azure-openai', model: 'gpt-4o', discount_pct: 5 }],
    });
    expect(effective(c, call('azure'))).toBe(2_375_000_000n);
  });
});

describe('explicit prices for a catalog model', () => {
  const c = testCatalog({
    overrides: [
      { tenant: 'acme', provider: 'openai', model: 'gpt-4o', prices: { input_mtok: '2', output_mtok: '8' } },
      {
        tenant: 'acme',
        provider: 'anthropic',
        model: 'claude-sonnet-4-5',
        prices: { input_mtok: '2.4', output_mtok: '12' },
      },
    ],
  });
  const nano = (input: PriceInput) => {
    const r = pricedBy(c, { ...input, tenant: 'acme' });
    return [r.listNano, r.effectiveNano];
  };

  it('price cache reads in the ratio of the input price they set, never above list', () => {
    const usage = {
      prompt_tokens: 10_000,
      completion_tokens: 1000,
      prompt_tokens_details: { cached_tokens: 8000 },
    };
    // List: 2,000 × $2.50 + 8,000 × $1.25 + 1,000 × $10. Own: the cached rate is $1.25 × 2 / 2.5 = $1.
    expect(nano({ provider: 'openai', api: 'openai-chat', model: 'gpt-4o', usage })).toEqual([
      25_000_000n,
      20_000_000n,
    ]);
    // A batch call: the list halves, and so does the tenant's price.
    expect(nano({ provider: 'openai', api: 'openai-chat', model: 'gpt-4o', usage, batch: true })).toEqual([
      12_500_000n,
      10_000_000n,
    ]);
  });

  it('and cache writes (5 minutes and 1 hour) likewise; search fees stay', () => {
    const usage = {
      input_tokens: 1000,
      cache_creation_input_tokens: 2000,
      cache_read_input_tokens: 10_000,
      cache_creation: { ephemeral_5m_input_tokens: 1500, ephemeral_1h_input_tokens: 500 },
      output_tokens: 200,
      server_tool_use: { web_search_requests: 1 },
    };
    // List: 1,000 × $3 + 1,500 × $3.75 + 500 × $6 + 10,000 × $0.30 + 200 × $15, per million, + $0.01.
    // Own, at 80 %: $2.40, $3, $4.80, $0.24 and $12; the search still $0.01.
    const [list, own] = nano({
      provider: 'anthropic',
      api: 'anthropic-messages',
      model: 'claude-sonnet-4-5',
      usage,
    });
    expect([list, own]).toEqual([27_625_000n, 24_100_000n]);
  });
});
