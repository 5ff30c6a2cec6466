import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { buildCatalog, type CatalogSources, TallyError } from '@tally/core';
import type { Command } from 'commander';
import { catalogPath, readCatalog } from '../pricer.js';

/** Where the public price tables sit beside a checkout (shared/data/prices). */
function defaultSources(): string {
  const candidates = [
    resolve(process.cwd(), '../shared/data/prices'),
    resolve(process.cwd(), 'shared/data/prices'),
  ];
  return candidates.find((c) => existsSync(c)) ?? candidates[0]!;
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new TallyError('invalid_request', `Cannot read price table ${path}: ${(err as Error).message}`);
  }
}

export function readSources(dir: string): CatalogSources {
  const genaiPath = join(dir, 'genai-prices/prices/new_data/v2/data.json');
  if (!existsSync(genaiPath)) {
    throw new TallyError('invalid_request', `No genai-prices v2 data at ${genaiPath}. Pass --sources <dir>.`);
  }
  const portkeyDir = join(dir, 'portkey-models/pricing');
  const portkey: Record<string, unknown> = {};
  if (existsSync(portkeyDir)) {
    for (const f of readdirSync(portkeyDir)
      .filter((f) => f.endsWith('.json'))
      .sort()) {
      portkey[f] = readJson(join(portkeyDir, f));
    }
  }
  const litellmPath = join(dir, 'litellm/model_prices_and_context_window.json');
  const langfusePath = join(dir, 'langfuse/worker/src/constants/default-model-prices.json');
  return {
    genai: readJson(genaiPath),
    ...(existsSync(litellmPath) ? { litellm: readJson(litellmPath) } : {}),
    portkey,
    ...(existsSync(langfusePath) ? { langfuse: readJson(langfusePath) } : {}),
    snapshots: {
      'genai-prices': 'pydantic/genai-prices@47df840 (2026-08-21)',
      litellm: 'BerriAI/litellm model_prices_and_context_window.json (2026-08-01)',
      portkey: 'Portkey-AI/models@f654307 (2026-08-21)',
      langfuse: 'langfuse/langfuse@6275144 (2026-08-21)',
    },
    date: '2026-08-21',
  };
}

export function registerPrices(program: Command): void {
  const prices = program.command('prices').description('the price catalog');

  prices
    .command('build')
    .description('rebuild the catalog from the public price tables')
    .option('--sources <dir>', 'folder holding genai-prices, litellm, portkey-models and langfuse')
    .option('--out <file>', 'where to write the catalog', catalogPath())
    .action((opts: { sources?: string; out: string }) => {
      const { catalog, added, disagreements, split } = buildCatalog(
        readSources(opts.sources ?? defaultSources()),
      );
      writeFileSync(opts.out, `${JSON.stringify(catalog)}\n`);
      const models = catalog.providers.reduce((n, p) => n + p.models.length, 0);
      process.stdout.write(
        `catalog ${catalog.version}: ${catalog.providers.length} providers, ${models} models ` +
          `(added from litellm ${added.litellm}, portkey ${added.portkey}, langfuse ${added.langfuse}; ` +
          `${disagreements.length} price disagreements) -> ${opts.out}\n`,
      );
      for (const x of split)
        process.stdout.write(
          `  ${x.provider}/${x.model}: priced apart from ${x.from}, as ${x.sources.join(', ')} agree\n`,
        );
    });

  prices
    .command('check')
    .description('list where the price sources disagree with genai-prices')
    .option('--sources <dir>', 'folder holding the price tables')
    .option('--min-diff <pct>', 'only differences of at least this many percent', '0')
    .option('--json', 'print JSON lines')
    .action((opts: { sources?: string; minDiff: string; json?: boolean }) => {
      const { disagreements } = buildCatalog(readSources(opts.sources ?? defaultSources()));
      const min = Number(opts.minDiff) / 100;
      const rows = disagreements
        .filter((d) => d.relative === null || Math.abs(d.relative) >= min)
        .sort(
          (a, b) =>
            Math.abs(b.relative ?? Number.POSITIVE_INFINITY) -
            Math.abs(a.relative ?? Number.POSITIVE_INFINITY),
        );
      if (opts.json) {
        for (const r of rows) process.stdout.write(`${JSON.stringify(r)}\n`);
        return;
      }
      process.stdout.write(
        `${'provider/model'.padEnd(48)} ${'field'.padEnd(16)} ${'genai'.padStart(10)} ${'other'.padStart(10)} source    diff\n`,
      );
      for (const r of rows) {
        const diff = r.relative === null ? 'n/a' : `${(r.relative * 100).toFixed(1)}%`;
        process.stdout.write(
          `${`${r.provider}/${r.model}`.padEnd(48)} ${r.field.padEnd(16)} ${r.primary.padStart(10)} ${r.other.padStart(10)} ${r.source.padEnd(9)} ${diff}\n`,
        );
      }
      process.stdout.write(`${rows.length} disagreements (USD per million tokens)\n`);
    });

  prices
    .command('list')
    .description('list providers, or the models of one provider')
    .option('--provider <id>', "list this provider's models and prices")
    .action((opts: { provider?: string }) => {
      const catalog = readCatalog();
      if (!opts.provider) {
        process.stdout.write(`catalog ${catalog.version}\n`);
        for (const p of catalog.providers) {
          const alias = p.aliases.length ? ` (also ${p.aliases.join(', ')})` : '';
          process.stdout.write(`${p.id.padEnd(28)} ${String(p.models.length).padStart(5)} models${alias}\n`);
        }
        return;
      }
      const p = catalog.providers.find(
        (x) => x.id === opts.provider || x.aliases.includes(opts.provider ?? ''),
      );
      if (!p) throw new TallyError('unknown_provider', `No provider "${opts.provider}" in the catalog.`);
      for (const m of p.models) {
        const ps = Array.isArray(m.prices) ? m.prices[m.prices.length - 1]?.prices : m.prices;
        process.stdout.write(`${m.id.padEnd(56)} ${m.source.padEnd(13)} ${JSON.stringify(ps)}\n`);
      }
    });
}
