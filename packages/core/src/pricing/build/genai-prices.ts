import type {
  CatalogModel,
  CatalogProvider,
  Clause,
  ConditionalPrice,
  Extractor,
  Price,
  PriceSet,
} from '../catalog-types.js';
import { lowerClause, numToDecimal, PROVIDER_ALIASES } from './common.js';

interface GenaiModel {
  id: string;
  name?: string;
  match: Clause;
  context_window?: number;
  deprecated?: boolean;
  prices: Record<string, unknown> | { constraint?: unknown; prices: Record<string, unknown> }[];
}

interface GenaiProvider {
  id: string;
  name: string;
  provider_match?: Clause | null;
  model_match?: Clause | null;
  fallback_model_providers?: string[];
  extractors?: Extractor[] | null;
  models: GenaiModel[];
}

function convertPrice(v: unknown): Price | undefined {
  if (typeof v === 'number' || typeof v === 'string') return numToDecimal(v);
  if (typeof v === 'object' && v !== null && 'base' in v) {
    const t = v as { base: unknown; tiers?: { start: number; price: unknown }[] };
    const base = numToDecimal(t.base);
    if (base === undefined) return undefined;
    const tiers = (t.tiers ?? []).map((x) => ({ start: x.start, price: numToDecimal(x.price) ?? '0' }));
    return { base, tiers };
  }
  return undefined;
}

function convertSet(raw: Record<string, unknown>): PriceSet {
  const out: Record<string, Price> = {};
  for (const [k, v] of Object.entries(raw)) {
    const p = convertPrice(v);
    if (p !== undefined) out[k] = p;
  }
  return out as PriceSet;
}

/** genai-prices v2 data.json: the primary source, taken as it is (numbers become decimal strings,
 * match text is lower-cased since its clauses are case-insensitive). */
export function fromGenaiPrices(data: unknown): CatalogProvider[] {
  if (!Array.isArray(data)) throw new Error('genai-prices data must be an array of providers');
  return (data as GenaiProvider[]).map((p) => {
    const models: CatalogModel[] = p.models.map((m) => {
      const prices = Array.isArray(m.prices)
        ? m.prices.map(
            (c): ConditionalPrice =>
              c.constraint
                ? {
                    constraint: c.constraint as NonNullable<ConditionalPrice['constraint']>,
                    prices: convertSet(c.prices),
                  }
                : { prices: convertSet(c.prices) },
          )
        : convertSet(m.prices);
      const model: CatalogModel = { id: m.id, match: lowerClause(m.match), prices, source: 'genai-prices' };
      if (m.name) model.name = m.name;
      if (m.context_window) model.context_window = m.context_window;
      if (m.deprecated) model.deprecated = true;
      return model;
    });
    const provider: CatalogProvider = {
      id: p.id,
      name: p.name,
      aliases: PROVIDER_ALIASES[p.id] ?? [],
      extractors: p.extractors ?? [],
      models,
    };
    if (p.provider_match) provider.provider_match = lowerClause(p.provider_match);
    if (p.model_match) provider.model_match = lowerClause(p.model_match);
    if (p.fallback_model_providers) provider.fallback_providers = p.fallback_model_providers;
    return provider;
  });
}
