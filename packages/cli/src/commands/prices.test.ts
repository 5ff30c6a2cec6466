import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildCatalog } from '@tally/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { readCatalog } from '../pricer.js';
import { readSources } from './prices.js';

const SOURCES = fileURLToPath(new URL('../../../../../shared/data/prices', import.meta.url));
const skip = !existsSync(SOURCES) && !process.env['CI'];

describe.skipIf(skip)('the price catalog', () => {
  let built: ReturnType<typeof buildCatalog>;
  beforeAll(() => {
    built = buildCatalog(readSources(SOURCES));
  });

  it('is exactly what the public tables build (the committed catalog is not stale)', () => {
    const committed = readCatalog();
    expect(committed.version).toBe(built.catalog.version);
    expect(JSON.stringify(committed.providers)).toBe(JSON.stringify(built.catalog.providers));
  });

  it('takes genai-prices first and fills gaps from the other tables', () => {
    const providers = built.catalog.providers;
    const openai = providers.find((p) => p.id === 'openai')!;
    expect(openai.models[0]!.source).toBe('genai-prices');
    expect(built.added.litellm).toBeGreaterThan(500);
    expect(built.added.portkey).toBeGreaterThan(100);
    // A provider only the secondary tables know.
    expect(providers.find((p) => p.id === 'deepinfra')?.models.length).toBeGreaterThan(10);
    // Batch rates come from LiteLLM for a model genai-prices prices.
    expect(openai.models.find((m) => m.id === 'gpt-4o')?.batch).toEqual({
      input_mtok: '1.25',
      output_mtok: '5',
    });
  });

  it('fills from LiteLLM only what genai-prices lacks: every price it gives stands', () => {
    const genai = readSources(SOURCES).genai as {
      id: string;
      models: { id: string; prices: Record<string, unknown> | { prices: Record<string, unknown> }[] }[];
    }[];
    const base = (v: unknown) => String((v as { base?: unknown })?.base ?? v);
    let compared = 0;
    for (const gp of genai) {
      const models = built.catalog.providers.find((p) => p.id === gp.id)!.models;
      for (const gm of gp.models) {
        const m = models.find((x) => x.id === gm.id)!;
        const own = Array.isArray(gm.prices) ? gm.prices.map((c) => c.prices) : [gm.prices];
        const now = Array.isArray(m.prices) ? m.prices.map((c) => c.prices) : [m.prices];
        own.forEach((set, i) => {
          for (const [k, v] of Object.entries(set)) {
            expect(Number(base(now[i]![k as keyof (typeof now)[number]])), `${gp.id}/${gm.id} ${k}`).toBe(
              Number(base(v)),
            );
            compared++;
          }
        });
      }
    }
    expect(compared).toBeGreaterThan(3000);
  });

  it('lists where the sources disagree', () => {
    const titan = built.disagreements.filter((d) => d.model === 'amazon.titan-text-express-v1');
    expect(titan).toContainEqual(
      expect.objectContaining({
        provider: 'aws',
        field: 'input_mtok',
        primary: '0.2',
        other: '1.3',
        source: 'litellm',
      }),
    );
    for (const d of built.disagreements) expect(d.primary).not.toBe(d.other);
  });
});
