import { describe, expect, it } from 'vitest';
import { testCatalog } from '../testing/catalog-fixture.js';
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
  const r = c.price(input);
  if (r.status !== 'priced') throw new Error(r.reason);
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
