import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { exactToUsd, parseScaled } from '../money.js';
import { SHARED_DATA, SKIP_WITHOUT_SHARED, testCatalog } from '../testing/catalog-fixture.js';

/**
 * Real OpenAI responses (FauxpenAI recordings, shared/data/openai-recorded): every usage object in a
 * successful response, JSON or streamed, priced against OpenAI's published list prices, written here
 * independently of the catalog (USD per million tokens: input, output).
 */
const LIST: Record<string, [string, string]> = {
  'gpt-4-0613': ['30', '60'],
  'gpt-4o-2024-08-06': ['2.5', '10'],
  'text-embedding-ada-002-v2': ['0.1', '0'],
  'text-embedding-3-small': ['0.02', '0'],
  'text-embedding-3-large': ['0.13', '0'],
};

type Usage = { prompt_tokens: number; completion_tokens?: number };
interface Recorded {
  response?: { status: number; body: unknown };
}

function usages(file: string): { model: string; usage: Usage; streamed: boolean }[] {
  const data = JSON.parse(
    gunzipSync(readFileSync(join(SHARED_DATA, 'openai-recorded/fauxpenai-spec', file))).toString(),
  ) as Record<string, Recorded>;
  const out: { model: string; usage: Usage; streamed: boolean }[] = [];
  for (const rec of Object.values(data)) {
    if (rec.response?.status !== 200) continue;
    const body = rec.response.body;
    const chunks = Array.isArray(body) ? body : [body];
    for (const c of chunks as { model?: string; usage?: Usage }[]) {
      if (c?.usage && c.model) out.push({ model: c.model, usage: c.usage, streamed: Array.isArray(body) });
    }
  }
  return out;
}

const expected = (model: string, u: Usage) => {
  const [i, o] = LIST[model]!;
  // USD ×1e12 per token is exact for these prices.
  const exact =
    parseScaled(i, 6) * BigInt(u.prompt_tokens) + parseScaled(o, 6) * BigInt(u.completion_tokens ?? 0);
  return exact * 10n ** 12n;
};

describe.skipIf(SKIP_WITHOUT_SHARED)('recorded OpenAI responses', () => {
  const cat = testCatalog();

  it('prices every chat completion usage, JSON and streamed, to the nano-dollar', () => {
    const all = usages('chatcompletions/results.json.gz');
    expect(all.length).toBeGreaterThan(1000);
    expect(all.some((u) => u.streamed)).toBe(true);
    for (const { model, usage } of all) {
      const r = cat.price({ provider: 'openai', api: 'openai-chat', model, usage });
      expect(r.status, model).toBe('priced');
      if (r.status !== 'priced') continue;
      expect(exactToUsd(r.total)).toBe(exactToUsd(expected(model, usage)));
      expect(r.tokens.input).toBe(usage.prompt_tokens);
    }
  });

  it('prices every embeddings usage', () => {
    const all = usages('embeddings/results.json.gz');
    expect(all.length).toBe(16);
    for (const { model, usage } of all) {
      const r = cat.price({ provider: 'openai', api: 'openai-embeddings', model, usage });
      expect(r.status, model).toBe('priced');
      if (r.status === 'priced') expect(r.total).toBe(expected(model, usage));
    }
  });
});
