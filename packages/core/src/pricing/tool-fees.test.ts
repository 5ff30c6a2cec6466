import { describe, expect, it } from 'vitest';
import { exactToUsd } from '../money.js';
import { pricedBy, testCatalog } from '../testing/catalog-fixture.js';
import { fillContainerFee, fillToolFees } from './build/fill.js';
import { fromPortkey, litellmContainerFees } from './build/secondary.js';
import type { CatalogModel, CatalogProvider } from './catalog-types.js';
import type { PriceInput } from './types.js';

const cat = testCatalog();

/** A Responses answer's usage (OpenAI's reference example). */
const usage = {
  input_tokens: 328,
  input_tokens_details: { cached_tokens: 0 },
  output_tokens: 356,
  output_tokens_details: { reasoning_tokens: 0 },
  total_tokens: 684,
};
const call = (model: string, tool_calls?: PriceInput['tool_calls']): PriceInput => ({
  provider: 'openai',
  api: 'openai-responses',
  model,
  usage,
  tool_calls: tool_calls ?? null,
});
const total = (input: PriceInput) => exactToUsd(pricedBy(cat, input).total);

describe("OpenAI's hosted tools, billed per call", () => {
  it('adds $10 a thousand web searches and $2.50 a thousand file searches to the tokens', () => {
    // gpt-4.1: 328 × $2 + 356 × $8 per million = $0.003504.
    expect(total(call('gpt-4.1'))).toBe('0.003504');
    const priced = pricedBy(cat, call('gpt-4.1', { web_searches: 3, file_searches: 2 }));
    expect(exactToUsd(priced.total)).toBe('0.038504');
    // The fees are in neither the input's cost nor the output's.
    expect(exactToUsd(priced.input)).toBe('0.000656');
    expect(exactToUsd(priced.output)).toBe('0.002848');
    expect(priced.tokens).toMatchObject({ web_searches: 3, file_searches: 2, input: 328, output: 356 });
    // A reasoning model and a small one carry the same fees.
    expect(total(call('o4-mini', { web_searches: 1 }))).toBe(
      (Number(total(call('o4-mini'))) + 0.01).toFixed(7).replace(/0+$/, ''),
    );
    expect(total(call('gpt-5-mini', { file_searches: 4 }))).toBe(
      (Number(total(call('gpt-5-mini'))) + 0.01).toFixed(7).replace(/0+$/, ''),
    );
  });

  it("gives a model LiteLLM added the fees Portkey gives it, where they agree on its tokens (gpt-5-search-api's searches)", () => {
    // gpt-5-search-api: 328 × $1.25 + 356 × $10 per million, and a search at $10 a thousand.
    expect(total(call('gpt-5-search-api'))).toBe('0.00397');
    expect(total(call('gpt-5-search-api', { web_searches: 1 }))).toBe('0.01397');
  });

  it('adds them to the searches a usage object counts, and to normalised tokens', () => {
    const tokens = { input: 1000, output: 100, web_searches: 1, file_searches: 1 };
    const base = { provider: 'openai', model: 'gpt-4o' };
    // gpt-4o: 1000 × $2.50 + 100 × $10 per million = $0.0035; one of each search.
    expect(total({ ...base, tokens })).toBe('0.016');
    expect(total({ ...base, tokens, tool_calls: { web_searches: 1 } })).toBe('0.026');
  });

  it('leaves a call unpriced, saying why, where no price covers its searches, rather than at its tokens', () => {
    // No table gives gpt-5-nano a search fee.
    expect(cat.price(call('gpt-5-nano', { web_searches: 2 }))).toMatchObject({
      status: 'unpriced',
      reason: 'model gpt-5-nano has no price for web_searches (2 made)',
      tokens: { web_searches: 2, input: 328 },
    });
    expect(cat.price(call('gpt-5-nano')).status).toBe('priced');
    // Claude 3 Haiku has no web search price: its usage's count of them is unpriced too.
    const haiku = cat.price({
      provider: 'anthropic',
      api: 'anthropic-messages',
      model: 'claude-3-haiku-20240307',
      usage: { input_tokens: 10, output_tokens: 5, server_tool_use: { web_search_requests: 1 } },
    });
    expect(haiku).toMatchObject({
      status: 'unpriced',
      reason: expect.stringContaining('web_searches (1 made)'),
    });
    // A tenant's own price for them prices it.
    const own = testCatalog({
      overrides: [
        { tenant: 'default', provider: 'openai', model: 'gpt-5-nano', prices: { web_searches_kcount: '10' } },
      ],
    });
    const priced = own.price(call('gpt-5-nano', { web_searches: 2 }));
    expect(priced.status).toBe('priced');
    expect(priced.status === 'priced' && exactToUsd(priced.effective)).toBe(
      (Number(total(call('gpt-5-nano'))) + 0.02).toFixed(8).replace(/0+$/, ''),
    );
  });

  it('refuses a count that is not one, with the field it came in', () => {
    for (const bad of [-1, 1.5, 2 ** 31, Number.NaN]) {
      expect(() => cat.price(call('gpt-4.1', { web_searches: bad }))).toThrow(
        expect.objectContaining({
          code: 'invalid_usage',
          message: expect.stringContaining('tool_calls.web_searches'),
        }),
      );
    }
  });
});

describe("the fees from Portkey's table", () => {
  const portkey = {
    'openai.json': {
      'gpt-test': {
        pricing_config: {
          pay_as_you_go: {
            request_token: { price: 0.0002 },
            response_token: { price: 0.0008 },
            additional_units: {
              web_search: { price: 1 },
              file_search: { price: 0.25 },
              routing: { price: 3 },
            },
          },
        },
      },
    },
  };

  it('reads web and file search fees in cents a call as dollars a thousand', () => {
    const [entry] = fromPortkey(portkey);
    expect(entry!.prices).toEqual({
      input_mtok: '2',
      output_mtok: '8',
      web_searches_kcount: '10',
      storage_searches_kcount: '2.5',
    });
  });

  it('fills a model that lacks them only where its prices are the entry’s, never over its own', () => {
    const entries = fromPortkey(portkey);
    const model = (prices: CatalogModel['prices']): CatalogModel => ({
      id: 'gpt-test',
      match: { equals: 'gpt-test' },
      prices,
      source: 'genai-prices',
    });
    const same = model({ input_mtok: '2.00', output_mtok: '8', web_searches_kcount: '25' });
    fillToolFees(same, entries);
    expect(same.prices).toEqual({
      input_mtok: '2.00',
      output_mtok: '8',
      web_searches_kcount: '25',
      storage_searches_kcount: '2.5',
    });
    // A dated list: only the period at the entry's prices takes them.
    const dated = model([
      { prices: { input_mtok: '10', output_mtok: '40' } },
      { prices: { input_mtok: '2', output_mtok: '8' } },
    ]);
    fillToolFees(dated, entries);
    expect(dated.prices).toEqual([
      { prices: { input_mtok: '10', output_mtok: '40' } },
      {
        prices: {
          input_mtok: '2',
          output_mtok: '8',
          web_searches_kcount: '10',
          storage_searches_kcount: '2.5',
        },
      },
    ]);
    const other = model({ input_mtok: '3', output_mtok: '8' });
    fillToolFees(other, entries);
    expect(other.prices).toEqual({ input_mtok: '3', output_mtok: '8' });
  });
});

/** The catalog with a tenant's own prices for gpt-4.1: its list token prices, and `fees`. */
const gpt41With = (fees: Record<string, string>) =>
  testCatalog({
    overrides: [
      {
        tenant: 'default',
        provider: 'openai',
        model: 'gpt-4.1',
        prices: { input_mtok: '2', output_mtok: '8', ...fees },
      },
    ],
  });

describe("OpenAI's code interpreter containers, billed per session", () => {
  it('adds $0.03 a session of a 1 GB container to the tokens, on any OpenAI or Azure model', () => {
    const priced = pricedBy(cat, call('gpt-4.1', { code_containers: 2 }));
    expect(exactToUsd(priced.total)).toBe('0.063504');
    expect(exactToUsd(priced.input)).toBe('0.000656');
    expect(priced.tokens).toMatchObject({ code_containers: 2, web_searches: 0, input: 328 });
    // The session is billed whichever model runs it: a small one, with searches too.
    expect(total(call('gpt-5-nano', { code_containers: 1 }))).toBe(
      (Number(total(call('gpt-5-nano'))) + 0.03).toFixed(8).replace(/0+$/, ''),
    );
    expect(total(call('o4-mini', { code_containers: 1, web_searches: 1 }))).toBe(
      (Number(total(call('o4-mini'))) + 0.04).toFixed(8).replace(/0+$/, ''),
    );
    const azure = pricedBy(cat, { ...call('gpt-4.1', { code_containers: 1 }), provider: 'azure' });
    expect(exactToUsd(azure.total)).toBe('0.033504');
    // As normalised tokens (an llm.call event's), a count of sessions at the default size.
    expect(total({ provider: 'openai', model: 'gpt-4o', tokens: { input: 1000, code_containers: 1 } })).toBe(
      '0.0325',
    );
  });

  it('leaves a call with a larger container unpriced, saying why, unless the tenant prices it', () => {
    // The tables price the default container only: a 4 GB one is not priced at its fee.
    expect(cat.price(call('gpt-4.1', { code_containers_4g: 1 }))).toMatchObject({
      status: 'unpriced',
      reason: 'model gpt-4.1 has no price for code_containers_4g (1 made)',
      tokens: { code_containers: 1 },
    });
    const own = gpt41With({ code_containers_4g_kcount: '120' });
    const priced = own.price(call('gpt-4.1', { code_containers_4g: 1, code_containers: 1 }));
    expect(priced.status === 'priced' && exactToUsd(priced.effective)).toBe('0.153504');
  });

  it("reads LiteLLM's per-provider session fee, and fills it into each of the provider's models", () => {
    const fees = litellmContainerFees({
      'openai/container': {
        code_interpreter_cost_per_session: 0.03,
        litellm_provider: 'openai',
        mode: 'chat',
      },
      'azure/container': { code_interpreter_cost_per_session: 0.03, litellm_provider: 'azure', mode: 'chat' },
      'free/container': { code_interpreter_cost_per_session: 0.0, litellm_provider: 'free' },
      'gpt-4o': { input_cost_per_token: 2.5e-6, litellm_provider: 'openai' },
    });
    expect([...fees]).toEqual([
      ['openai', '30'],
      ['azure', '30'],
    ]);
    const provider: CatalogProvider = {
      id: 'openai',
      name: 'OpenAI',
      aliases: [],
      extractors: [],
      models: [
        { id: 'a', match: { equals: 'a' }, prices: { input_mtok: '1' }, source: 'genai-prices' },
        {
          id: 'b',
          match: { equals: 'b' },
          prices: [
            { prices: { input_mtok: '1', code_containers_kcount: '40' } },
            { constraint: { start_date: '2026-01-01' }, prices: { input_mtok: '2' } },
          ],
          source: 'genai-prices',
        },
      ],
    };
    fillContainerFee(provider, '30');
    expect(provider.models[0]!.prices).toEqual({ input_mtok: '1', code_containers_kcount: '30' });
    // A fee a model has stands.
    expect(provider.models[1]!.prices).toEqual([
      { prices: { input_mtok: '1', code_containers_kcount: '40' } },
      { constraint: { start_date: '2026-01-01' }, prices: { input_mtok: '2', code_containers_kcount: '30' } },
    ]);
  });
});

describe("OpenAI's image generation tool", () => {
  it('leaves a call with images unpriced, saying why, unless the tenant prices them', () => {
    // Its images are billed at the image model's rates, by a quality and size the answer does not
    // give: the tables have no price for one.
    expect(cat.price(call('gpt-4.1', { image_generations: 2 }))).toMatchObject({
      status: 'unpriced',
      reason: 'model gpt-4.1 has no price for image_generations (2 made)',
      tokens: { image_generations: 2, input: 328 },
    });
    const own = gpt41With({ image_generations_kcount: '42' });
    const priced = own.price(call('gpt-4.1', { image_generations: 2 }));
    expect(priced.status === 'priced' && exactToUsd(priced.effective)).toBe('0.087504');
  });
});
