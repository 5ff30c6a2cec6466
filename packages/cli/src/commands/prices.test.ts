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
