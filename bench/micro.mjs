// Micro-benchmarks of the hot domain code: pricing one call and normalising provider usage.
// Baseline in the same run: JSON.parse of the same usage line, the cost of merely reading a call.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { bench, group, run } from 'mitata';
import { Catalog, extractUsage } from '../packages/core/dist/index.js';

const catalogFile = fileURLToPath(new URL('../packages/core/catalog/catalog.json', import.meta.url));
const catalog = new Catalog(JSON.parse(readFileSync(catalogFile, 'utf8')));

const cases = {
  'openai-chat': {
    provider: 'openai',
    api: 'openai-chat',
    model: 'gpt-4o-2024-08-06',
    usage: {
      prompt_tokens: 1000,
      completion_tokens: 100,
      prompt_tokens_details: { cached_tokens: 400, audio_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0 },
    },
  },
  'anthropic-messages': {
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
  },
  gemini: {
    provider: 'google',
    api: 'gemini',
    model: 'gemini-2.5-pro',
    usage: {
      promptTokenCount: 250000,
      cachedContentTokenCount: 1000,
      candidatesTokenCount: 100,
      thoughtsTokenCount: 400,
    },
  },
  'bedrock-converse': {
    provider: 'aws',
    api: 'bedrock-converse',
    model: 'us.anthropic.claude-3-7-sonnet-20250219-v1:0',
    usage: { inputTokens: 100, cacheReadInputTokens: 1000, cacheWriteInputTokens: 0, outputTokens: 50 },
  },
};

const results = {};
export async function micro() {
  for (const [name, c] of Object.entries(cases)) {
    const line = JSON.stringify(c);
    const provider = catalog.findProvider(c.provider);
    group(name, () => {
      bench(`baseline: JSON.parse line (${name})`, () => JSON.parse(line));
      bench(`normalise usage (${name})`, () => extractUsage(provider, c.api, c.usage));
      bench(`price call (${name})`, () => catalog.price(c));
    });
  }
  const out = await run({ format: 'quiet' });
  for (const b of out.benchmarks) {
    const stats = b.runs[0]?.stats;
    if (stats) results[b.alias] = stats.avg;
  }
  const rows = [];
  for (const name of Object.keys(cases)) {
    const base = results[`baseline: JSON.parse line (${name})`];
    const norm = results[`normalise usage (${name})`];
    const price = results[`price call (${name})`];
    rows.push({ name, base, norm, price });
  }
  return rows;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const rows = await micro();
  for (const r of rows) console.log(r);
}
