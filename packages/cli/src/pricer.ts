import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Catalog, type CatalogData, type PriceOverride, type Pricer, type PriceSet } from '@tally/core';
import type { PriceOverrideConfig, TallyConfig } from '@tally/server';

const require = createRequire(import.meta.url);

export function catalogPath(): string {
  return require.resolve('@tally/core/catalog.json');
}

export function readCatalog(path = catalogPath()): CatalogData {
  return JSON.parse(readFileSync(path, 'utf8')) as CatalogData;
}

const PRICE_KEYS = [
  'input_mtok',
  'output_mtok',
  'cache_read_mtok',
  'cache_write_mtok',
  'cache_write_1h_mtok',
  'input_audio_mtok',
  'output_audio_mtok',
  'requests_kcount',
] as const;

export function toOverride(o: PriceOverrideConfig): PriceOverride {
  const out: PriceOverride = { tenant: o.tenant, provider: o.provider, model: o.model };
  if (o.discount_pct !== undefined) out.discount_pct = o.discount_pct;
  const prices: PriceSet = {};
  for (const k of PRICE_KEYS) {
    const v = o[k];
    if (v !== undefined) prices[k] = v;
  }
  if (Object.keys(prices).length > 0) out.prices = prices;
  return out;
}

export function loadCatalog(config?: Pick<TallyConfig, 'pricing'>): Catalog {
  return new Catalog(readCatalog(), {
    azureDeployments: config?.pricing.azure_deployments ?? {},
    overrides: (config?.pricing.overrides ?? []).map(toOverride),
  });
}

export function loadPricer(config: Pick<TallyConfig, 'pricing'>): {
  price: Pricer;
  version: string;
  catalog: Catalog;
} {
  const catalog = loadCatalog(config);
  return { price: (input) => catalog.price(input), version: catalog.version, catalog };
}
