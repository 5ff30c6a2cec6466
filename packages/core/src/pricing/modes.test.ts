import { describe, expect, it } from 'vitest';
import { exactToUsd } from '../money.js';
import { pricedBy, testCatalog } from '../testing/catalog-fixture.js';
import { buildCatalog } from './build/build-catalog.js';
import type { PriceInput } from './types.js';

const cat = testCatalog();
/** After 2026-03-13, when Anthropic's long-context tiers for Opus 4.6 and Sonnet 4.6 went. */
const TIME = Date.parse('2026-11-01T00:00:00Z');

/** 1,000 input and 100 output tokens (and cache reads) of an Anthropic model, with `modes` in the
 * usage object as the Messages API reports them. */
function call(model: string, modes: Record<string, string> = {}, cacheRead = 0): PriceInput {
  return {
    provider: 'anthropic',
    api: 'anthropic-messages',
    model,
    time: TIME,
    usage: {
      input_tokens: 1000,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: cacheRead,
      output_tokens: 100,
      service_tier: 'standard',
      ...modes,
    },
  };
}

const usd = (input: PriceInput, c = cat) => exactToUsd(pricedBy(c, input).total);

describe("Anthropic's pricing modes", () => {
  it('fast mode: claude-opus-4-6 at 6 times, cache reads too; claude-opus-4-8 at 2 times', () => {
    // 1,000 × $5 + 100 × $25, per million: $0.0075 at standard speed.
    expect(usd(call('claude-opus-4-6'))).toBe('0.0075');
    expect(usd(call('claude-opus-4-6', { speed: 'standard' }))).toBe('0.0075');
    expect(usd(call('claude-opus-4-6', { speed: 'fast' }))).toBe('0.045');
    // + 2,000 cache reads × $0.50, then 6 times: (0.0075 + 0.001) × 6.
    expect(usd(call('claude-opus-4-6', { speed: 'fast' }, 2000))).toBe('0.051');
    expect(usd(call('claude-opus-4-8-20261015', { speed: 'fast' }))).toBe('0.015');
  });

  it("US-only inference at 1.1 times, the provider's rule for a model the tables name no factor for", () => {
    // claude-sonnet-4-6: 1,000 × $3 + 100 × $15 = $0.0045; LiteLLM names no factor for it.
    expect(cat.resolve('anthropic', 'claude-sonnet-4-6')?.model.modes).toBeUndefined();
    expect(usd(call('claude-sonnet-4-6', { inference_geo: 'us' }))).toBe('0.00495');
    expect(usd(call('claude-sonnet-4-6', { inference_geo: 'global' }))).toBe('0.0045');
    // Both modes stack: 0.0075 × 2 × 1.1.
    expect(usd(call('claude-opus-4-8', { speed: 'fast', inference_geo: 'us' }))).toBe('0.0165');
  });

  it('reads the modes from a whole answer passed as usage, as it reads the service tier', () => {
    const body = {
      id: 'msg_1',
      type: 'message',
      model: 'claude-opus-4-6',
      usage: call('', { speed: 'fast' }).usage,
    };
    expect(usd({ ...call('claude-opus-4-6'), usage: body })).toBe('0.045');
  });

  it('leaves a call unpriced, saying why, where the tables give the mode no factor', () => {
    const fast = cat.price(call('claude-sonnet-4-6', { speed: 'fast' }));
    expect(fast).toMatchObject({
      status: 'unpriced',
      reason: expect.stringMatching(/^fast mode .* claude-sonnet-4-6$/),
    });
    expect(fast.tokens).toMatchObject({ input: 1000, output: 100 });
    const eu = cat.price(call('claude-opus-4-6', { inference_geo: 'eu' }));
    expect(eu).toMatchObject({ status: 'unpriced', reason: expect.stringMatching(/geography "eu"/) });
  });

  it("a tenant's own prices move with the mode as the list does", () => {
    const c = testCatalog({
      overrides: [
        {
          tenant: 'acme',
          provider: 'anthropic',
          model: 'claude-opus-4-6',
          prices: { input_mtok: '4', output_mtok: '20' },
        },
      ],
    });
    const r = pricedBy(c, { ...call('claude-opus-4-6', { speed: 'fast' }), tenant: 'acme' });
    expect(exactToUsd(r.total)).toBe('0.045');
    // (1,000 × $4 + 100 × $20) × 6, per million.
    expect(exactToUsd(r.effective)).toBe('0.036');
  });

  it('builds the factors from LiteLLM, and the provider rule only where its models agree', () => {
    const entry = (input: number, modes: Record<string, number>) => ({
      litellm_provider: 'anthropic',
      input_cost_per_token: input,
      output_cost_per_token: input * 5,
      provider_specific_entry: modes,
    });
    const built = (litellm: Record<string, unknown>) =>
      buildCatalog({
        genai: [{ id: 'anthropic', name: 'Anthropic', extractors: [], models: [] }],
        litellm,
        date: '2026-12-05',
      }).catalog.providers.find((p) => p.id === 'anthropic')!;
    const agree = built({
      'claude-a': entry(1e-6, { us: 1.1, fast: 6 }),
      'claude-b': entry(2e-6, { us: 1.1, fast: 2 }),
    });
    expect(agree.modes).toEqual({ inference_geo_us: '1.1' });
    expect(agree.models.find((m) => m.id === 'claude-a')?.modes).toEqual({
      fast: '6',
      inference_geo_us: '1.1',
    });
    const differ = built({
      'claude-a': entry(1e-6, { us: 1.1 }),
      'claude-b': entry(2e-6, { us: 1.2, fast: -1 }),
    });
    expect(differ.modes).toBeUndefined();
    expect(differ.models.find((m) => m.id === 'claude-b')?.modes).toEqual({ inference_geo_us: '1.2' });
  });
});
