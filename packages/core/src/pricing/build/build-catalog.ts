import { createHash } from 'node:crypto';
import type { CatalogData, CatalogModel, CatalogProvider, Clause, PriceSet } from '../catalog-types.js';
import { matches } from '../match.js';
import { FREE_NAME, flatPrice } from './common.js';
import { fillContainerFee, fillFromLiteLlm, fillToolFees } from './fill.js';
import { fromGenaiPrices } from './genai-prices.js';
import {
  fromLangfuse,
  fromLiteLlm,
  fromPortkey,
  litellmContainerFees,
  litellmOtherUnits,
  portkeyImages,
  type SecondaryPrice,
} from './secondary.js';

export interface CatalogSources {
  genai: unknown;
  litellm?: unknown;
  portkey?: Record<string, unknown>;
  langfuse?: unknown;
  /** Snapshot labels for the record, e.g. { genai: '47df840 (2026-08-21)' }. */
  snapshots?: Record<string, string>;
  /** The newest source date, YYYY-MM-DD: the first part of the version. */
  date: string;
}

export interface Disagreement {
  provider: string;
  model: string;
  field: keyof PriceSet;
  primary: string;
  other: string;
  source: SecondaryPrice['source'];
  /** (other - primary) / primary, or null when primary is 0. */
  relative: number | null;
}

export interface BuildResult {
  catalog: CatalogData;
  added: Record<SecondaryPrice['source'], number>;
  disagreements: Disagreement[];
  /** The names genai-prices prices with another model's entry that the other tables, two or more
   * of them agreeing, price otherwise: each is a model of its own, at their price (splitAliases). */
  split: { provider: string; model: string; from: string; sources: SecondaryPrice['source'][] }[];
}

const COMPARED: (keyof PriceSet)[] = ['input_mtok', 'output_mtok', 'cache_read_mtok', 'cache_write_mtok'];

function findModel(
  providers: Map<string, CatalogProvider>,
  p: CatalogProvider,
  ref: string,
): CatalogModel | null {
  for (const m of p.models) if (matches(m.match, ref)) return m;
  for (const fid of p.fallback_providers ?? []) {
    const fp = providers.get(fid);
    if (!fp) continue;
    for (const m of fp.models) if (matches(m.match, ref)) return m;
  }
  return null;
}

function defaultPrices(m: CatalogModel): PriceSet {
  return Array.isArray(m.prices) ? (m.prices[0]?.prices ?? {}) : m.prices;
}

/**
 * Builds the catalog: genai-prices first; LiteLLM, then Portkey, then Langfuse add only the models
 * (and batch rates) genai-prices lacks, and LiteLLM fills the token prices and long-context tiers a
 * genai-prices model lacks (fill.ts). Where two sources price the same model, the disagreement is
 * recorded for `tally prices check`, and the primary price stands.
 */
export function buildCatalog(src: CatalogSources): BuildResult {
  const providers = fromGenaiPrices(src.genai);
  const byId = new Map(providers.map((p) => [p.id, p]));
  const added = { litellm: 0, portkey: 0, langfuse: 0 };
  const disagreements: Disagreement[] = [];
  const all: SecondaryPrice[] = [
    ...(src.litellm ? fromLiteLlm(src.litellm) : []),
    ...(src.portkey ? fromPortkey(src.portkey) : []),
    ...(src.langfuse ? fromLangfuse(src.langfuse) : []),
  ];
  // A listing at zero (gemini/gemini-exp-1206 at 0 / 0, where gemini-exp-1206 is 0.3 / 2.5) is
  // more often a placeholder than a price: it comes after every other listing, so it never wins
  // over a price, and it adds a model only where the source says the model is free. Else the model
  // stays unpriced, never $0.
  // A model LiteLLM bills by the second, character or image takes no other table's token price.
  const otherUnits = litellmOtherUnits(src.litellm);
  const secondary = [...all.filter((s) => !s.zero), ...all.filter((s) => s.zero)].filter(
    (s) => s.source === 'litellm' || !otherUnits.has(`${s.provider}/${s.model}`),
  );
  const genaiIds = new Set(providers.map((p) => p.id));
  const reported = new Set<string>();
  /** The LiteLLM entries each genai-prices model takes in, within its own provider. */
  const litellmOf = new Map<CatalogModel, SecondaryPrice[]>();
  /** And Portkey's, for the hosted tools' fees. */
  const portkeyOf = new Map<CatalogModel, SecondaryPrice[]>();
  for (const s of secondary) {
    const priced = !s.zero || s.free === true || FREE_NAME.test(s.model);
    let p = byId.get(s.provider);
    if (!p) {
      if (!priced) continue;
      p = { id: s.provider, name: s.provider, aliases: [], extractors: [], models: [] };
      providers.push(p);
      byId.set(p.id, p);
    }
    const existing = findModel(byId, p, s.model);
    if (existing) {
      if (existing.source === 'genai-prices') {
        const prim = defaultPrices(existing);
        for (const f of COMPARED) {
          const a = flatPrice(prim[f]);
          const b = flatPrice(s.prices[f]);
          if (a === undefined || b === undefined) continue;
          const rel = Number(a) === 0 ? (Number(b) === 0 ? 0 : null) : (Number(b) - Number(a)) / Number(a);
          // Float noise in a source (0.0833333333333333 against 0.08333333333333334) is no disagreement.
          if (rel !== null && Math.abs(rel) < 1e-9) continue;
          const key = `${p.id}\u0000${existing.id}\u0000${f}\u0000${s.source}\u0000${b}`;
          if (reported.has(key)) continue;
          reported.add(key);
          disagreements.push({
            provider: p.id,
            model: existing.id,
            field: f,
            primary: a,
            other: b,
            source: s.source,
            relative: rel,
          });
        }
        if (s.batch && !existing.batch && genaiIds.has(p.id) && existing.id.toLowerCase() === s.model) {
          existing.batch = s.batch;
        }
        if (s.max_output_tokens && !existing.max_output_tokens && existing.id.toLowerCase() === s.model) {
          existing.max_output_tokens = s.max_output_tokens;
        }
        if ((s.source === 'litellm' || s.source === 'portkey') && p.models.includes(existing) && !s.zero) {
          const of = s.source === 'litellm' ? litellmOf : portkeyOf;
          const list = of.get(existing);
          if (list) list.push(s);
          else of.set(existing, [s]);
        }
      } else if (
        existing.source === 'litellm' &&
        s.source === 'portkey' &&
        p.models.includes(existing) &&
        !s.zero
      ) {
        // A model LiteLLM added takes Portkey's hosted tools' fees as genai-prices' models do
        // (gpt-5-search-api's searches): where the two agree on its token prices.
        const list = portkeyOf.get(existing);
        if (list) list.push(s);
        else portkeyOf.set(existing, [s]);
      }
      continue;
    }
    if (!priced) continue;
    const model: CatalogModel = {
      id: s.model,
      match: { equals: s.model },
      prices: s.prices,
      source: s.source,
    };
    if (s.batch) model.batch = s.batch;
    if (s.service_tiers) model.service_tiers = s.service_tiers;
    if (s.modes) model.modes = s.modes;
    if (s.context_window) model.context_window = s.context_window;
    if (s.max_output_tokens) model.max_output_tokens = s.max_output_tokens;
    p.models.push(model);
    added[s.source]++;
  }
  const split = splitAliases(providers, secondary);
  for (const [model, entries] of litellmOf) fillFromLiteLlm(model, entries);
  for (const [model, entries] of portkeyOf) fillToolFees(model, entries);
  for (const [id, kcount] of litellmContainerFees(src.litellm)) {
    const p = byId.get(id);
    if (p) fillContainerFee(p, kcount);
  }
  for (const p of providers) providerModes(p);
  // The prices an image of dall-e-2 and dall-e-3, billed by the image with answers that give no
  // usage, from Portkey's tables (US cents an image by quality and size; the only table that has
  // them so: LiteLLM's per-pixel prices are rounded). Other models Portkey lists by the image are
  // left out: its tables quote some in dollars, some per token.
  for (const { provider, model, images } of src.portkey ? portkeyImages(src.portkey) : []) {
    const p = byId.get(provider);
    if (!p || !/^dall-e-[23]$/.test(model) || findModel(byId, p, model)) continue;
    p.models.push({ id: model, match: { equals: model }, prices: {}, source: 'portkey', images });
  }
  const body = JSON.stringify(providers);
  const hash = createHash('sha256').update(body).digest('hex').slice(0, 8);
  const sources = Object.entries(src.snapshots ?? {}).map(([name, snapshot]) => ({ name, snapshot }));
  return { catalog: { version: `${src.date}.${hash}`, sources, providers }, added, disagreements, split };
}

/** The names a model's match takes in one by one (`equals`), its own id aside (in any case). */
function aliasesOf(clause: Clause, id: string): string[] {
  const c = clause as { equals?: unknown; or?: Clause[] };
  const own = typeof c.equals === 'string' && c.equals.toLowerCase() !== id.toLowerCase() ? [c.equals] : [];
  return [...own, ...(c.or ?? []).flatMap((x) => aliasesOf(x, id))];
}

/** `clause` without `equals: name` among its alternatives. */
function withoutAlias(clause: Clause, name: string): Clause {
  const c = clause as { or?: Clause[] };
  if (!c.or) return clause;
  return { ...clause, or: c.or.filter((x) => (x as { equals?: unknown }).equals !== name) } as Clause;
}

const inOut = (p: PriceSet) => `${flatPrice(p.input_mtok)} ${flatPrice(p.output_mtok)}`;
/** Whether two listings price input and output alike: each price both give is the same (an
 * embedding model's output, which one leaves out and another gives as 0, is no difference). */
const sameInOut = (a: PriceSet, b: PriceSet) =>
  (['input_mtok', 'output_mtok'] as const).every((f) => {
    const x = flatPrice(a[f]);
    const y = flatPrice(b[f]);
    return x === undefined || y === undefined || Number(x) === Number(y);
  });

/**
 * genai-prices prices some names with another model's entry: a dated snapshot with its family
 * (`gpt-4o-2024-05-13` with gpt-4o, at $2.50 / $10), a variant with its base. Where two or more of
 * the other tables name that exact model, and all of them agree on its input and output prices and
 * differ from the entry's (LiteLLM, Portkey and Langfuse all give gpt-4o-2024-05-13 $5 / $15, as
 * OpenAI's own page does), the name becomes a model of its own at their price (the first table's
 * listing, LiteLLM's before Portkey's and Langfuse's), ahead of the entry that took it in. One table
 * against genai-prices is not enough: it is recorded as a disagreement, and genai-prices stands.
 */
function splitAliases(providers: CatalogProvider[], secondary: SecondaryPrice[]): BuildResult['split'] {
  const byName = new Map<string, SecondaryPrice[]>();
  for (const s of secondary) {
    if (s.zero) continue;
    const key = `${s.provider}\u0000${s.model}`;
    const list = byName.get(key);
    if (list) list.push(s);
    else byName.set(key, [s]);
  }
  const split: BuildResult['split'] = [];
  for (const p of providers) {
    for (let i = 0; i < p.models.length; i++) {
      const m = p.models[i]!;
      if (m.source !== 'genai-prices' || Array.isArray(m.prices)) continue;
      for (const alias of aliasesOf(m.match, m.id)) {
        const entries = byName.get(`${p.id}\u0000${alias.toLowerCase()}`) ?? [];
        const sources = [...new Set(entries.map((e) => e.source))];
        const prices = new Set(entries.map((e) => inOut(e.prices)));
        const first = entries[0];
        if (!first || sources.length < 2 || prices.size !== 1 || sameInOut(first.prices, m.prices)) continue;
        const own: CatalogModel = {
          id: alias,
          match: { equals: alias },
          prices: first.prices,
          source: first.source,
        };
        if (first.batch) own.batch = first.batch;
        const window = first.context_window ?? m.context_window;
        if (window) own.context_window = window;
        const maxOut = first.max_output_tokens ?? m.max_output_tokens;
        if (maxOut) own.max_output_tokens = maxOut;
        m.match = withoutAlias(m.match, alias);
        p.models.splice(i, 0, own);
        i++;
        split.push({ provider: p.id, model: alias, from: m.id, sources });
      }
    }
  }
  return split;
}

/** US-only inference's factor is the provider's rule (Anthropic's 1.1 on every model that can run
 * there), where every model that names it names the same: its models without one take it
 * (CatalogProvider.modes). Fast mode's factor is each model's own (6 for claude-opus-4-6, 2 for
 * claude-opus-4-8), and a model without one has no fast price. */
function providerModes(p: CatalogProvider): void {
  const seen = new Set(p.models.map((m) => m.modes?.inference_geo_us).filter((v) => v !== undefined));
  if (seen.size === 1) p.modes = { inference_geo_us: [...seen][0]! };
}
