import { spawn } from 'node:child_process';
import { Catalog } from '@tally/core';
import { describe, expect, it } from 'vitest';
import { readCatalog } from '../pricer.js';
import { TALLY_BIN } from '../testing/spawn-server.js';
import { priceLine } from './price.js';

function runPrice(
  input: string,
  args: string[] = [],
): Promise<{ lines: Record<string, unknown>[]; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [TALLY_BIN, 'price', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (err) reject(new Error(err));
      resolve({
        lines: out
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l)),
        code,
      });
    });
    child.stdin.end(input);
  });
}

describe('tally price', () => {
  it('answers one line per input line: priced, unpriced and error, and goes on after a bad line', async () => {
    const input = [
      JSON.stringify({
        provider: 'anthropic',
        api: 'anthropic-messages',
        model: 'claude-sonnet-4-5-20250929',
        usage: {
          input_tokens: 2743,
          cache_read_input_tokens: 0,
          cache_creation_input_tokens: 0,
          output_tokens: 4,
        },
      }),
      '{not json',
      JSON.stringify({
        provider: 'openai',
        api: 'openai-chat',
        model: 'gpt-unknown',
        usage: { prompt_tokens: 3 },
      }),
      JSON.stringify({ provider: 'openai', model: 'gpt-4o' }),
      JSON.stringify({
        provider: 'google',
        api: 'gemini',
        model: 'gemini-2.5-flash',
        usage: { promptTokenCount: 1000, candidatesTokenCount: 100, thoughtsTokenCount: 400 },
      }),
    ].join('\n');
    const { lines, code } = await runPrice(`${input}\n`);
    expect(code).toBe(0);
    expect(lines).toHaveLength(5);
    expect(lines[0]).toMatchObject({
      status: 'priced',
      input_usd: '0.008229',
      output_usd: '0.00006',
      total_usd: '0.008289',
      price_source: 'genai-prices:anthropic/claude-sonnet-4-5',
    });
    expect(lines[1]).toMatchObject({ status: 'error', error: { code: 'invalid_json' } });
    expect(lines[2]).toMatchObject({ status: 'unpriced', reason: expect.stringContaining('gpt-unknown') });
    expect(lines[3]).toMatchObject({ status: 'error', error: { code: 'invalid_request' } });
    expect(lines[4]).toMatchObject({ status: 'priced', input_usd: '0.0003', output_usd: '0.00125' });
  });

  it('prices a call at the service tier that served it, given or read from the whole answer', async () => {
    const usage = {
      prompt_tokens: 10_000,
      completion_tokens: 500,
      prompt_tokens_details: { cached_tokens: 4000 },
    };
    const call = { provider: 'openai', api: 'openai-chat', model: 'gpt-4o' };
    const { lines } = await runPrice(
      [
        { ...call, usage, service_tier: 'priority' },
        { ...call, usage: { model: 'gpt-4o-2024-08-06', usage, service_tier: 'priority' } },
        { ...call, usage, service_tier: 'default' },
      ]
        .map((l) => JSON.stringify(l))
        .join('\n'),
    );
    expect(lines.map((l) => l['total_usd'])).toEqual(['0.0425', '0.0425', '0.025']);
  });

  it('prices as of a given time', async () => {
    const line = JSON.stringify({
      provider: 'openai',
      api: 'openai-chat',
      model: 'o3',
      usage: { prompt_tokens: 1_000_000 },
    });
    const old = await runPrice(line, ['--at', '2025-06-01T00:00:00Z']);
    const now = await runPrice(line);
    expect(old.lines[0]).toMatchObject({ input_usd: '10' });
    expect(now.lines[0]).toMatchObject({ input_usd: '2' });
  });
});

describe('the figures of tally price', () => {
  const own = { input_mtok: '2', output_mtok: '8' };
  const catalog = new Catalog(readCatalog(), {
    overrides: [
      { tenant: 'default', provider: 'anthropic', model: 'claude-sonnet-4-6', discount_pct: 15 },
      { tenant: 'default', provider: 'openai', model: 'gpt-4o', prices: own },
    ],
  });
  const line = (model: string, provider: string, api: string, usage: object) =>
    priceLine(catalog, JSON.stringify({ provider, api, model, usage }), Date.parse('2026-08-01T00:00:00Z'));

  it("prices OpenAI's hosted tool calls given as tool_calls, and refuses any other shape", () => {
    const at = Date.parse('2026-08-01T00:00:00Z');
    const usage = { input_tokens: 328, output_tokens: 356 };
    const req = (tool_calls: unknown) =>
      priceLine(
        catalog,
        JSON.stringify({ provider: 'openai', api: 'openai-responses', model: 'gpt-4.1', usage, tool_calls }),
        at,
      );
    // 328 × $2 + 356 × $8 per million, two web searches at $10 a thousand, one file search at $2.50.
    expect(req({ web_searches: 2, file_searches: 1 })).toMatchObject({
      total_usd: '0.026004',
      tokens: { web_searches: 2, file_searches: 1 },
    });
    // And a code interpreter container session at $0.03; a 4 GB one has no fee in the tables.
    expect(req({ web_searches: 2, file_searches: 1, code_containers: 1 })).toMatchObject({
      total_usd: '0.056004',
      tokens: { code_containers: 1 },
    });
    expect(req({ code_containers_4g: 1 })).toMatchObject({ status: 'unpriced' });
    for (const bad of [[1], 'two', { code_interpreter: 1 }]) {
      expect(req(bad)).toMatchObject({ status: 'error', error: { code: 'invalid_request' } });
    }
    expect(req({ web_searches: -1 })).toMatchObject({ status: 'error', error: { code: 'invalid_usage' } });
  });

  it('prints the list figures with the source of the list price, and the effective cost with its own', () => {
    const usage = { input_tokens: 100, cache_read_input_tokens: 10_000, output_tokens: 200 };
    expect(line('claude-sonnet-4-6', 'anthropic', 'anthropic-messages', usage)).toMatchObject({
      input_usd: '0.0033',
      output_usd: '0.003',
      total_usd: '0.0063',
      effective_usd: '0.005355',
      price_source: 'genai-prices:anthropic/claude-sonnet-4-6',
      effective_source: 'override:default/anthropic/claude-sonnet-4-6 (-15%)',
    });
    const chat = { prompt_tokens: 1_000_000, completion_tokens: 0 };
    expect(line('gpt-4o', 'openai', 'openai-chat', chat)).toMatchObject({
      total_usd: '2.5',
      effective_usd: '2',
      price_source: 'genai-prices:openai/gpt-4o',
      effective_source: 'override:default/openai/gpt-4o',
    });
    // Search fees are in the total only, in neither input nor output: 1,000 × $3 + 100 × $15 per
    // million, and one search at $10 per thousand.
    const searched = { input_tokens: 1000, output_tokens: 100, server_tool_use: { web_search_requests: 1 } };
    expect(line('claude-sonnet-4-5', 'anthropic', 'anthropic-messages', searched)).toMatchObject({
      input_usd: '0.003',
      output_usd: '0.0015',
      total_usd: '0.0145',
    });
    // Without an override, the effective cost is the list's.
    expect(line('gpt-4o-mini', 'openai', 'openai-chat', chat)).toMatchObject({
      total_usd: '0.15',
      effective_usd: '0.15',
      effective_source: 'genai-prices:openai/gpt-4o-mini',
    });
  });
});
