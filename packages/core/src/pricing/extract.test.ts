import { describe, expect, it } from 'vitest';
import { isTallyError } from '../errors.js';
import { exactToUsd } from '../money.js';
import { pricedBy, testCatalog } from '../testing/catalog-fixture.js';
import type { PriceInput } from './types.js';

const cat = testCatalog();

/** The error a price call raises, or null when it prices. */
function failure(input: PriceInput): { code: string; message: string } | null {
  try {
    cat.price(input);
    return null;
  } catch (err) {
    if (!isTallyError(err)) throw err;
    return { code: err.code, message: err.message };
  }
}

const chat = (usage: Record<string, unknown>): PriceInput => ({
  provider: 'openai',
  api: 'openai-chat',
  model: 'gpt-4o-2024-08-06',
  usage,
});

describe('token counts', () => {
  it('a count that is not a whole number from 0 to 2^31-1 makes the usage unreadable', () => {
    for (const bad of [10.5, 1e300, -3, 3_000_000_000, '12']) {
      expect(failure(chat({ prompt_tokens: bad, completion_tokens: 5 })), String(bad)).toEqual({
        code: 'invalid_usage',
        message: expect.stringMatching(/^usage\.prompt_tokens must be a non-negative whole number/),
      });
      expect(failure(chat({ prompt_tokens: 5, completion_tokens: bad })), String(bad)).toMatchObject({
        code: 'invalid_usage',
      });
      expect(
        failure(
          chat({ prompt_tokens: 5, completion_tokens: 5, prompt_tokens_details: { cached_tokens: bad } }),
        ),
      ).toMatchObject({ code: 'invalid_usage', message: expect.stringContaining('cached_tokens') });
    }
    expect(failure(chat({ prompt_tokens: 2_147_483_647, completion_tokens: 0 }))).toBeNull();
  });

  it('so does a sum past the bound (Anthropic input counts its cache reads and writes)', () => {
    const r = failure({
      provider: 'anthropic',
      api: 'anthropic-messages',
      model: 'claude-sonnet-4-5',
      usage: { input_tokens: 2_000_000_000, cache_read_input_tokens: 2_000_000_000, output_tokens: 1 },
    });
    expect(r).toEqual({ code: 'invalid_usage', message: expect.stringContaining('input_tokens') });
  });

  it('and normalised tokens are held to the same bound', () => {
    const base = { provider: 'openai', model: 'gpt-4o' };
    expect(failure({ ...base, tokens: { input: 1e300, output: 1 } })).toMatchObject({
      code: 'invalid_usage',
      message: expect.stringMatching(/^tokens\.input /),
    });
    expect(failure({ ...base, tokens: { input: 10, output: 2.5 } })).toMatchObject({ code: 'invalid_usage' });
    expect(failure({ ...base, tokens: { input: 10, output: 2 } })).toBeNull();
  });
});

describe('total_tokens beyond input and output', () => {
  const priced = (input: PriceInput) => {
    const r = pricedBy(cat, input);
    return { tokens: r.tokens, total: exactToUsd(r.total) };
  };
  const gemini = (usage: Record<string, unknown>): PriceInput => ({
    provider: 'google',
    api: 'openai-chat',
    model: 'gemini-2.5-flash',
    usage,
  });

  it("is Gemini's unreported thinking, through its OpenAI-compatible endpoint", () => {
    const r = priced(gemini({ prompt_tokens: 1000, completion_tokens: 200, total_tokens: 5200 }));
    expect(r.tokens).toMatchObject({ input: 1000, output: 4200, reasoning: 4000 });
    // 1,000 × $0.30 + 4,200 × $2.50, per million.
    expect(r.total).toBe('0.0108');
  });

  it('changes nothing where the total is the sum (OpenAI), or in the Responses shape', () => {
    const cases: [PriceInput, Record<string, number>][] = [
      [
        chat({
          prompt_tokens: 1000,
          completion_tokens: 500,
          total_tokens: 1500,
          completion_tokens_details: { reasoning_tokens: 300 },
        }),
        { output: 500, reasoning: 300 },
      ],
      [
        {
          ...chat({}),
          api: 'openai-responses',
          usage: { input_tokens: 1000, output_tokens: 500, total_tokens: 1500 },
        },
        { output: 500, reasoning: 0 },
      ],
    ];
    for (const [input, tokens] of cases)
      expect(priced(input).tokens).toMatchObject({ input: 1000, ...tokens });
  });

  it('is checked like any other count', () => {
    expect(
      failure(gemini({ prompt_tokens: 1000, completion_tokens: 200, total_tokens: 5200.5 })),
    ).toMatchObject({
      code: 'invalid_usage',
      message: expect.stringContaining('total_tokens'),
    });
  });
});
