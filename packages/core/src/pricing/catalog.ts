import type { Clock } from '../clock.js';
import { systemClock } from '../clock.js';
import { TallyError } from '../errors.js';
import { exactToNano, rateFrom } from '../money.js';
import { type CostBreakdown, calcCost, compilePrices, type UnitUsage } from './calc.js';
import type {
  CatalogData,
  CatalogModel,
  CatalogProvider,
  ConditionalPrice,
  ImagePrices,
  PriceSet,
} from './catalog-types.js';
import { extractUsage, serviceTierOf, usageModesOf } from './extract.js';
import { matches } from './match.js';
import { modelVariants } from './model-ref.js';
import {
  badTokenCount,
  checkUnitUsage,
  isTokenCount,
  tokensToUnitUsage,
  unitUsageToTokens,
} from './tokens.js';
import {
  HOSTED_TOOL_CALLS,
  type HostedToolCalls,
  type ImageCount,
  type PriceInput,
  type PriceOutcome,
} from './types.js';
import { UNITS } from './units.js';
import { applyVariant, followVariant, multiplyFactors, scaleTokenPrices } from './variants.js';

/** A tenant's negotiated price: a discount off list, or its own prices (which also add models). */
export interface PriceOverride {
  tenant: string;
  provider: string;
  model: string;
  /** Percent off the list price, e.g. 15 for 15%. */
  discount_pct?: number;
  prices?: PriceSet;
}

export interface CatalogOptions {
  clock?: Clock;
  /** Azure deployment name -> the model it serves. */
  azureDeployments?: Record<string, string>;
  overrides?: PriceOverride[];
}

export interface Resolved {
  provider: CatalogProvider;
  model: CatalogModel;
}

interface Resolution {
  resolved: Resolved | null;
  override: PriceOverride | null;
}

const MAX_CACHE = 20_000;

export class Catalog {
  readonly version: string;
  private readonly byId = new Map<string, CatalogProvider>();
  private readonly clock: Clock;
  private readonly azure: Map<string, string>;
  private readonly overrides = new Map<string, PriceOverride>();
  /** tenant -> provider -> model as sent -> resolution, up to MAX_CACHE entries in all. */
  private readonly cache = new Map<string, Map<string, Map<string, Resolution>>>();
  private cacheSize = 0;

  constructor(
    readonly data: CatalogData,
    opts: CatalogOptions = {},
  ) {
    this.version = data.version;
    this.clock = opts.clock ?? systemClock;
    for (const p of data.providers) this.byId.set(p.id, p);
    this.azure = new Map(Object.entries(opts.azureDeployments ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
    for (const o of opts.overrides ?? []) {
      // Keyed on the catalog's id of the provider, so that an alias (azure-openai) names the same one.
      const pid = this.findProvider(o.provider)?.id ?? o.provider.trim().toLowerCase();
      this.overrides.set(`${o.tenant}\u0000${pid}\u0000${o.model.trim().toLowerCase()}`, o);
    }
  }

  get providers(): readonly CatalogProvider[] {
    return this.data.providers;
  }

  /** Finds a provider by id: exact id, then aliases, then the data's provider_match clauses. */
  findProvider(id: string): CatalogProvider | null {
    const norm = id.trim().toLowerCase();
    const exact = this.byId.get(norm);
    if (exact) return exact;
    for (const p of this.data.providers) if (p.aliases.includes(norm)) return p;
    for (const p of this.data.providers) if (p.provider_match && matches(p.provider_match, norm)) return p;
    return null;
  }

  /** Finds the catalog model for a provider and a model name as a client sent it. */
  resolve(providerId: string, modelRef: string): Resolved | null {
    return this.lookup(providerId, modelRef).resolved;
  }

  /** The provider a call names (after a LiteLLM-style prefix), the model name within it, and the
   * model it resolves to, which may be in one of the provider's fallback providers. */
  private lookup(
    providerId: string,
    modelRef: string,
  ): { provider: CatalogProvider | null; ref: string; resolved: Resolved | null } {
    let pid = providerId;
    let ref = modelRef.trim().toLowerCase();
    if (pid.toLowerCase() === 'litellm' && ref.includes('/')) {
      const prefix = ref.slice(0, ref.indexOf('/'));
      if (this.findProvider(prefix)) {
        pid = prefix;
        ref = ref.slice(prefix.length + 1);
      }
    }
    const provider = this.findProvider(pid);
    if (!provider) return { provider: null, ref, resolved: null };
    const sent = ref;
    if (provider.id === 'azure') ref = (this.azure.get(ref) ?? ref).toLowerCase();
    const direct = this.findInProvider(provider, ref, true);
    if (direct) return { provider, ref: sent, resolved: direct };
    for (const v of modelVariants(ref, (p) => this.findProvider(p) !== null || p === 'bedrock')) {
      const hit = this.findInProvider(provider, v, true);
      if (hit) return { provider, ref: sent, resolved: hit };
    }
    return { provider, ref: sent, resolved: null };
  }

  private findInProvider(provider: CatalogProvider, ref: string, withFallback: boolean): Resolved | null {
    for (const model of provider.models) if (matches(model.match, ref)) return { provider, model };
    if (withFallback) {
      for (const fid of provider.fallback_providers ?? []) {
        const fp = this.byId.get(fid);
        const hit = fp ? this.findInProvider(fp, ref, false) : null;
        if (hit) return hit;
      }
    }
    return null;
  }

  /** The cache's resolutions for one tenant and provider. Nested maps rather than one joined key:
   * the strings come with their hashes, a joined key would be built and hashed on every call. */
  private cached(tenant: string, providerId: string): Map<string, Resolution> {
    let byProvider = this.cache.get(tenant);
    if (!byProvider) {
      byProvider = new Map();
      this.cache.set(tenant, byProvider);
    }
    let byModel = byProvider.get(providerId);
    if (!byModel) {
      byModel = new Map();
      byProvider.set(providerId, byModel);
    }
    return byModel;
  }

  private resolution(tenant: string, providerId: string, modelRef: string): Resolution {
    const hit = this.cached(tenant, providerId).get(modelRef);
    if (hit) return hit;
    const { provider, ref, resolved } = this.lookup(providerId, modelRef);
    // The override of the provider the call names: a model it prices with a fallback provider's
    // entry (Azure's gpt-4o is OpenAI's) takes none of that other provider's overrides.
    const key = `${tenant}\u0000${provider?.id ?? providerId.trim().toLowerCase()}\u0000`;
    const override =
      (resolved && this.overrides.get(key + resolved.model.id.toLowerCase())) ??
      this.overrides.get(key + ref) ??
      null;
    const r = { resolved, override };
    if (this.cacheSize >= MAX_CACHE) {
      this.cache.clear();
      this.cacheSize = 0;
    }
    this.cacheSize++;
    this.cached(tenant, providerId).set(modelRef, r);
    return r;
  }

  /** The most output tokens one call to the model may ask for, where a price table gives it. */
  maxOutputTokens(providerId: string, modelRef: string, tenant = 'default'): number | null {
    return this.resolution(tenant, providerId, modelRef).resolved?.model.max_output_tokens ?? null;
  }

  /** The price set in force at `time` (conditional prices: the last active entry wins, else the first). */
  activePrices(model: CatalogModel, time: number): PriceSet {
    if (!Array.isArray(model.prices)) return model.prices;
    const list = model.prices as ConditionalPrice[];
    for (let i = list.length - 1; i >= 0; i--) {
      const cp = list[i]!;
      if (!cp.constraint || constraintActive(cp.constraint, time)) return cp.prices;
    }
    return list[0]!.prices;
  }

  /** A tenant's own prices for a call. For a model the catalog prices, what they do not set (cache
   * reads and writes, audio) follows the list in the ratio of the input or output price they set,
   * so that an override below list is below list on every token; and they move with a batch or
   * service tier as the list does. A model only the override prices takes them as they are. */
  private ownPrices(own: PriceSet, standard: PriceSet | null, prices: PriceSet | null): PriceSet {
    if (!standard || !prices) return own;
    const full = applyVariant(standard, own);
    return prices === standard ? full : followVariant(full, prices, standard);
  }

  price(input: PriceInput): PriceOutcome {
    const version = this.version;
    const provider = this.findProvider(input.provider);
    const api = input.api ?? null;
    let usage: UnitUsage;
    if (input.usage !== undefined && input.usage !== null) {
      if (!api) throw new TallyError('unknown_api', 'api is required with a raw usage object.');
      usage = extractUsage(provider, api, input.usage);
    } else if (input.tokens) {
      usage = tokensToUnitUsage(input.tokens);
    } else {
      throw new TallyError('invalid_usage', 'Either usage or tokens is required.');
    }
    if (input.tool_calls) usage = withToolCalls(usage, input.tool_calls);
    const tokens = unitUsageToTokens(usage);
    const { resolved, override } = this.resolution(input.tenant ?? 'default', input.provider, input.model);
    if (!resolved && !override?.prices) {
      const reason = provider
        ? `model "${input.model}" is not in the price catalog for provider ${provider.id}`
        : `provider "${input.provider}" is not in the price catalog`;
      return { status: 'unpriced', tokens, reason, version };
    }
    const time = input.time ?? this.clock.now();
    let list: ReturnType<typeof calcCost> | null = null;
    let source = '';
    let standard: PriceSet | null = null;
    let prices: PriceSet | null = null;
    if (resolved) {
      standard = this.activePrices(resolved.model, time);
      const variant = variantPrices(resolved.model, input);
      prices = variant ? applyVariant(standard, variant) : standard;
      const modes = modeFactor(resolved.model, resolved.provider, input.modes ?? input.usage);
      if (modes !== null && 'missing' in modes) {
        return {
          status: 'unpriced',
          tokens,
          reason: `${modes.missing} for model ${resolved.model.id}`,
          version,
        };
      }
      if (modes !== null) prices = scaleTokenPrices(prices, modes.factor);
      list = calcCost(compilePrices(prices), usage);
      source = `${resolved.model.source}:${resolved.provider.id}/${resolved.model.id}`;
    }
    let effective = list;
    const label = override && `override:${override.tenant}/${override.provider}/${override.model}`;
    let effectiveSource = source;
    if (override?.prices) {
      effective = calcCost(compilePrices(this.ownPrices(override.prices, standard, prices)), usage);
      list ??= effective;
      source ||= label!;
      effectiveSource = label!;
    }
    // A hosted tool's calls that no price covers leave the call unpriced, with why, rather than
    // priced at their tokens alone, as an unknown model is never $0.
    const fee = unpricedFee(usage, prices, override?.prices, resolved?.model.images !== undefined);
    if (fee !== null) {
      const model = resolved?.model.id ?? override!.model;
      return { status: 'unpriced', tokens, reason: `model ${model} has no price for ${fee}`, version };
    }
    // Images billed by the image: at the model's price for their quality and size, on the list
    // price and the effective one alike (a tenant's overrides price tokens).
    if (input.images && input.images.count > 0) {
      const each = imagePrice(resolved?.model.images, input.images);
      if (each === null) {
        const { quality, size } = input.images;
        const model = resolved?.model.id ?? override!.model;
        const what = [quality, size].filter(Boolean).join(', ');
        return {
          status: 'unpriced',
          tokens,
          reason: `model ${model} has no price for an image${what ? ` (${what})` : ''}`,
          version,
        };
      }
      const cost = each * BigInt(Math.round(input.images.count));
      tokens.image_generations += Math.round(input.images.count);
      const withImages = (c: CostBreakdown) => ({ ...c, output: c.output + cost, total: c.total + cost });
      list = withImages(list!);
      effective = withImages(effective!);
    }
    const l = list!;
    let effectiveTotal = effective!.total;
    if (override?.discount_pct !== undefined && !override.prices) {
      const bp = BigInt(Math.round(override.discount_pct * 100));
      effectiveTotal = (effectiveTotal * (10_000n - bp)) / 10_000n;
      effectiveSource = `${label} (-${override.discount_pct}%)`;
    }
    const listNano = exactToNano(l.total);
    return {
      status: 'priced',
      tokens,
      input: l.input,
      output: l.output,
      total: l.total,
      effective: effectiveTotal,
      listNano,
      effectiveNano: effectiveTotal === l.total ? listNano : exactToNano(effectiveTotal),
      provider: resolved?.provider.id ?? override!.provider,
      model: resolved?.model.id ?? override!.model,
      source,
      effectiveSource,
      version,
    };
  }
}

/** The price of one image of this quality and size (ExactUsd), from a model's prices an image:
 * the quality asked, else the default's; the size asked, else the default's; null where the table
 * has none (or the model has no table). */
function imagePrice(table: ImagePrices | undefined, asked: ImageCount): bigint | null {
  if (!table) return null;
  const quality = asked.quality?.toLowerCase() ?? 'default';
  const sizes =
    table[quality] ?? (asked.quality == null || quality === 'auto' ? table['default'] : undefined);
  const size = asked.size?.toLowerCase() ?? 'default';
  const usd = sizes?.[size] ?? (asked.size == null || size === 'auto' ? sizes?.['default'] : undefined);
  return usd === undefined ? null : rateFrom(usd);
}

/** The batch or service-tier prices a call is at, if any: `batch`, else the tier the response names
 * (Anthropic's usage says "batch" for a Message Batches result). A tier the tables give no prices
 * for, or one without prices of its own (default, auto, scale), is at the standard prices. */
function variantPrices(model: CatalogModel, input: PriceInput): PriceSet | undefined {
  const tier = (input.service_tier ?? serviceTierOf(input.usage))?.toLowerCase();
  if (input.batch || tier === 'batch') return model.batch;
  return tier === 'priority' || tier === 'flex' ? model.service_tiers?.[tier] : undefined;
}

/**
 * The factor on a call's token prices of the pricing modes its usage (or request) names (PriceModes), null for
 * none; a mode the tables give no factor for leaves the call unpriced, with why, rather than
 * priced at standard rates it did not pay.
 */
function modeFactor(
  model: CatalogModel,
  provider: CatalogProvider,
  source: unknown,
): { factor: string } | { missing: string } | null {
  const named = usageModesOf(source);
  if (!named.fast && named.geo === null) return null;
  let factor = '1';
  if (named.fast) {
    const f = model.modes?.fast;
    if (f === undefined) return { missing: 'fast mode (usage.speed "fast") has no price in the tables' };
    factor = multiplyFactors(factor, f);
  }
  if (named.geo !== null) {
    const f =
      named.geo === 'us' ? (model.modes?.inference_geo_us ?? provider.modes?.inference_geo_us) : undefined;
    if (f === undefined)
      return {
        missing: `inference in geography "${named.geo}" (usage.inference_geo) has no price in the tables`,
      };
    factor = multiplyFactors(factor, f);
  }
  return { factor };
}

function secondsOfDay(hms: string): number {
  const m = /^(\d{2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?(Z|[+-]\d{2}:\d{2})?$/.exec(hms);
  if (!m) return 0;
  let s = Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3] ?? 0);
  const tz = m[4];
  if (tz && tz !== 'Z') {
    const sign = tz[0] === '-' ? -1 : 1;
    s -= sign * (Number(tz.slice(1, 3)) * 3600 + Number(tz.slice(4, 6)) * 60);
  }
  return ((s % 86_400) + 86_400) % 86_400;
}

function constraintActive(c: NonNullable<ConditionalPrice['constraint']>, time: number): boolean {
  if ('start_date' in c) return time >= Date.parse(`${c.start_date}T00:00:00Z`);
  const t = Math.floor((((time / 1000) % 86_400) + 86_400) % 86_400);
  const start = secondsOfDay(c.start_time);
  const end = secondsOfDay(c.end_time);
  return start <= end ? t >= start && t < end : t >= start || t < end;
}

/** Usage with the hosted tool calls its object does not count added (PriceInput.tool_calls). */
function withToolCalls(counted: UnitUsage, calls: HostedToolCalls): UnitUsage {
  const usage = { ...counted };
  const add = (key: string, n: number | undefined, what: string) => {
    if (n === undefined || n === 0) return;
    if (!isTokenCount(n)) throw badTokenCount(n, what);
    usage[key] = (usage[key] ?? 0) + n;
  };
  // Each is its unit's usage key, but a file search, which genai-prices names a storage search.
  for (const k of HOSTED_TOOL_CALLS)
    add(k === 'file_searches' ? 'storage_searches' : k, calls[k], `tool_calls.${k}`);
  return checkUnitUsage(usage);
}

/** The units of hosted tools' calls, priced per call (web searches, file searches, ...). */
const TOOL_CALL_UNITS = UNITS.filter((u) => u.dims['family'] === 'tool_calls');
/** The units of audio billed by its length. */
const SECONDS_UNITS = UNITS.filter((u) => u.dims['family'] === 'seconds');

/**
 * What `usage` holds that neither the prices nor a tenant's own prices price, or null: a hosted tool's calls
 * (`web_searches (2 made)`), seconds of audio for a model priced by the token, a speech's
 * characters alone for a model priced by the token (gpt-4o-mini-tts, whose answer gave no usage),
 * or tokens for a model priced only by the second, the character or the image (whisper-1, tts-1,
 * dall-e), which would otherwise cost nothing.
 */
function unpricedFee(
  usage: UnitUsage,
  prices: PriceSet | null | undefined,
  own: PriceSet | null | undefined,
  /** The model is billed by the image (dall-e: CatalogModel.images). */
  byImage: boolean,
): string | null {
  // Two sets, not a rest array and closures: this runs for every priced call.
  const has = (key: string) =>
    (prices != null && prices[key as keyof PriceSet] !== undefined) ||
    (own != null && own[key as keyof PriceSet] !== undefined);
  for (const u of TOOL_CALL_UNITS) {
    const n = usage[u.usageKey] ?? 0;
    if (n > 0 && !has(u.priceKey)) return `${u.usageKey} (${n} made)`;
  }
  for (const u of SECONDS_UNITS) {
    const n = usage[u.usageKey] ?? 0;
    if (n > 0 && !has(u.priceKey)) return `${u.usageKey} (${n})`;
  }
  const tokens = (usage['input_tokens'] ?? 0) + (usage['output_tokens'] ?? 0);
  // A speech's characters are counted for every model: a model priced by the token prices its
  // tokens instead, when it has them.
  const characters = usage['input_characters'] ?? 0;
  if (characters > 0 && tokens === 0 && !has('input_mchars')) return `characters (${characters})`;
  const otherwise = byImage || has('input_audio_seconds_kcount') || has('input_mchars');
  if (tokens > 0 && otherwise && !has('input_mtok') && !has('output_mtok')) return `tokens (${tokens})`;
  return null;
}
