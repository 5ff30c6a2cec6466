import { describe, expect, it } from 'vitest';
import { exactToUsd } from '../money.js';
import { pricedBy, testCatalog } from '../testing/catalog-fixture.js';
import type { PriceInput } from './types.js';

const cat = testCatalog();

function total(input: PriceInput): string {
  return exactToUsd(pricedBy(cat, input).total);
}

/** A chat completion as OpenAI answers it (the recorded answers' shape), served by `tier`. */
function chatBody(tier: string | undefined) {
  return {
    id: 'chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT',
    object: 'chat.completion',
    created: 1741569952,
    model: 'gpt-4o-2024-08-06',
    choices: [{ index: 0, message: { role: 'assistant', content: 'Hello!' }, finish_reason: 'stop' }],
    usage: {
      prompt_tokens: 10_000,
      completion_tokens: 500,
      total_tokens: 10_500,
      prompt_tokens_details: { cached_tokens: 4000, audio_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0 },
    },
    ...(tier === undefined ? {} : { service_tier: tier }),
    system_fingerprint: 'fp_f9f4fb6dbf',
  };
}

describe('service tiers', () => {
  const gpt4o = (tier: string | undefined, usage: unknown = chatBody(tier).usage): PriceInput => ({
    provider: 'openai',
    api: 'openai-chat',
    model: 'gpt-4o-2024-08-06',
    usage,
    service_tier: tier ?? null,
  });

  it('priority: gpt-4o at $4.25 / $2.125 cached / $17 per million', () => {
    // 6,000 × $4.25 + 4,000 × $2.125 + 500 × $17, per million.
    expect(total(gpt4o('priority'))).toBe('0.0425');
    // Read from the answer itself when the whole body is passed as usage.
    expect(total(gpt4o(undefined, chatBody('priority')))).toBe('0.0425');
  });

  it('flex: o3 through the Responses API at $1 / $0.25 cached / $4 per million', () => {
    const r = total({
      provider: 'openai',
      api: 'openai-responses',
      model: 'o3-2025-04-16',
      service_tier: 'flex',
      time: Date.parse('2026-08-01T00:00:00Z'),
      usage: {
        input_tokens: 5000,
        input_tokens_details: { cached_tokens: 1024 },
        output_tokens: 3000,
        output_tokens_details: { reasoning_tokens: 2000 },
        total_tokens: 8000,
      },
    });
    // 3,976 × $1 + 1,024 × $0.25 + 3,000 × $4, per million.
    expect(r).toBe('0.016232');
  });

  it('default, auto, scale or no tier at all: the standard prices', () => {
    // 6,000 × $2.50 + 4,000 × $1.25 + 500 × $10, per million.
    for (const tier of ['default', 'auto', 'scale', undefined]) {
      expect(total(gpt4o(tier)), String(tier)).toBe('0.025');
      expect(total(gpt4o(undefined, chatBody(tier)))).toBe('0.025');
    }
  });

  it("Anthropic's usage names its tier: a Message Batches result is at batch prices", () => {
    const call = (tier: string) => ({
      provider: 'anthropic',
      api: 'anthropic-messages',
      model: 'claude-sonnet-4-5-20250929',
      usage: { input_tokens: 1000, output_tokens: 100, service_tier: tier },
    });
    expect(total(call('standard'))).toBe('0.0045');
    expect(total(call('batch'))).toBe('0.00225');
  });
});
