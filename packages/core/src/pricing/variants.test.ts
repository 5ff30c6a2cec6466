import { describe, expect, it } from 'vitest';
import { exactToUsd } from '../money.js';
import { pricedBy, testCatalog } from '../testing/catalog-fixture.js';
import type { PriceInput } from './types.js';
import { applyVariant } from './variants.js';

const cat = testCatalog();

function total(input: PriceInput): string {
  return exactToUsd(pricedBy(cat, input).total);
}

describe('batch prices', () => {
  it('above 200K input, a batch call pays the long-context rates discounted, cache reads included', () => {
    const usage = { promptTokenCount: 250_000, cachedContentTokenCount: 50_000, candidatesTokenCount: 1000 };
    const call = { provider: 'google', api: 'gemini', model: 'gemini-2.5-pro', usage };
    // Standard above 200K: $2.50 input, $0.25 cached, $15 output per million; the tables give a flat
    // batch price of $0.625 / $5 against the base tier's $1.25 / $10: half price, every tier.
    expect(total(call)).toBe('0.5275');
    // 200,000 × $1.25 + 50,000 × $0.125 + 1,000 × $7.50, per million.
    expect(total({ ...call, batch: true })).toBe('0.26375');
  });

  it('below the tier too, cache reads are discounted with the input', () => {
    const usage = {
      prompt_tokens: 1_000_000,
      completion_tokens: 0,
      prompt_tokens_details: { cached_tokens: 400_000 },
    };
    const call = { provider: 'openai', api: 'openai-chat', model: 'gpt-4o', usage };
    // 600,000 × $1.25 + 400,000 × $0.625 (OpenAI's batch price for cached input), per million.
    expect(total({ ...call, batch: true })).toBe('1');
  });

  it('keeps what the variant gives, scales the rest by side, and leaves fees alone', () => {
    const standard = {
      input_mtok: { base: '3', tiers: [{ start: 200_000, price: '6' }] },
      cache_write_1h_mtok: '6',
      output_mtok: { base: '15', tiers: [{ start: 200_000, price: '22.5' }] },
      output_audio_mtok: '20',
      web_searches_kcount: '10',
    };
    const variant = {
      input_mtok: '1.5',
      output_mtok: { base: '7.5', tiers: [{ start: 200_000, price: '12' }] },
    };
    expect(applyVariant(standard, variant)).toEqual({
      input_mtok: { base: '1.5', tiers: [{ start: 200_000, price: '3' }] },
      cache_write_1h_mtok: '3',
      output_mtok: variant.output_mtok,
      output_audio_mtok: '10',
      web_searches_kcount: '10',
    });
    expect(applyVariant(standard, variant)).toBe(applyVariant(standard, variant));
    // Only an input price: the output side stands.
    expect(
      applyVariant({ input_mtok: '3', cache_read_mtok: '0.3', output_mtok: '15' }, { input_mtok: '1' }),
    ).toEqual({
      input_mtok: '1',
      cache_read_mtok: '0.1',
      output_mtok: '15',
    });
  });
});
