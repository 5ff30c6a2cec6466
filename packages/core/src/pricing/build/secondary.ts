import {
  type CatalogModel,
  type ImagePrices,
  type Price,
  type PriceModes,
  type PriceSet,
  SERVICE_TIERS,
} from '../catalog-types.js';
import { canonicalProvider, perTokenToMtok, pricesNothing, setPrice, timesPow10 } from './common.js';

/** One model price from a secondary table, in catalog units. */
export interface SecondaryPrice {
  source: 'litellm' | 'portkey' | 'langfuse';
  provider: string;
  model: string;
  prices: PriceSet;
  batch?: PriceSet;
  service_tiers?: CatalogModel['service_tiers'];
  modes?: PriceModes;
  context_window?: number;
  max_output_tokens?: number;
  /** The listing prices nothing at all (LiteLLM's 0 / 0 entries). */
  zero?: true;
  /** The source says the model is free (LiteLLM's notes: "at no cost"). */
  free?: true;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function tiered(base: string | undefined, entry: Obj, field: string, suffix: string): Price | undefined {
  if (base === undefined) return undefined;
  const tiers: { start: number; price: string }[] = [];
  const re = new RegExp(`^${field}_above_(\\d+)k_tokens${suffix}$`);
  for (const [k, v] of Object.entries(entry)) {
    const m = re.exec(k);
    const p = m ? perTokenToMtok(v) : undefined;
    if (m && p !== undefined) tiers.push({ start: Number(m[1]) * 1000, price: p });
  }
  return tiers.length ? { base, tiers: tiers.sort((a, b) => a.start - b.start) } : base;
}

/** LiteLLM's token prices under one suffix: '' for the standard ones, `_batches` for batch,
 * `_priority` and `_flex` for those service tiers. */
function litellmTokenPrices(e: Obj, suffix: string, standard: boolean): PriceSet {
  const prices: PriceSet = {};
  const price = (k: keyof PriceSet, field: string, base = perTokenToMtok(e[field + suffix])) =>
    setPrice(prices, k, tiered(base, e, field, suffix));
  const input = perTokenToMtok(e[`input_cost_per_token${suffix}`]);
  const output = perTokenToMtok(e[`output_cost_per_token${suffix}`]);
  if (input === undefined && output === undefined) return prices;
  // A standard entry that quotes one side only (an embedding model) costs nothing on the other.
  price('input_mtok', 'input_cost_per_token', input ?? (standard ? '0' : undefined));
  price('output_mtok', 'output_cost_per_token', output ?? (standard ? '0' : undefined));
  price('cache_read_mtok', 'cache_read_input_token_cost');
  price('cache_write_mtok', 'cache_creation_input_token_cost');
  price('cache_write_1h_mtok', 'cache_creation_input_token_cost_above_1hr');
  price('input_audio_mtok', 'input_cost_per_audio_token');
  price('output_audio_mtok', 'output_cost_per_audio_token');
  price('output_reasoning_mtok', 'output_cost_per_reasoning_token');
  return prices;
}

/** The factors of Anthropic's pricing modes in a LiteLLM entry's `provider_specific_entry`
 * (`{"us": 1.1, "fast": 6}`); a factor that is not a positive number is left out. */
function litellmModes(entry: unknown): PriceModes | undefined {
  if (!isObj(entry)) return undefined;
  const modes: PriceModes = {};
  const factor = (v: unknown) =>
    typeof v === 'number' && Number.isFinite(v) && v > 0 ? String(v) : undefined;
  const fast = factor(entry['fast']);
  const us = factor(entry['us']);
  if (fast) modes.fast = fast;
  if (us) modes.inference_geo_us = us;
  return Object.keys(modes).length > 0 ? modes : undefined;
}

/** LiteLLM's prices in units that are not tokens: audio by the second, text by the character,
 * images by the image or the pixel, video by the second, a rerank by the query, a request, a page
 * read by OCR. */
const OTHER_UNITS = [
  'input_cost_per_second',
  'output_cost_per_second',
  'output_cost_per_second_1080p',
  'input_cost_per_audio_per_second',
  'input_cost_per_character',
  'output_cost_per_character',
  'input_cost_per_image',
  'output_cost_per_image',
  'input_cost_per_pixel',
  'output_cost_per_pixel',
  'input_cost_per_video_per_second',
  'output_cost_per_video_per_second',
  'input_cost_per_query',
  'input_cost_per_request',
  'ocr_cost_per_page',
  'annotation_cost_per_page',
  'ocr_cost_per_credit',
];

/** Whether a LiteLLM entry is billed in a unit other than tokens (OTHER_UNITS, above 0), at no
 * token price above 0. */
function pricedOtherwise(e: Obj): boolean {
  const positive = (k: string) => typeof e[k] === 'number' && (e[k] as number) > 0;
  return (
    OTHER_UNITS.some(positive) && !positive('input_cost_per_token') && !positive('output_cost_per_token')
  );
}

/**
 * The models (`provider/model`) LiteLLM bills in a unit other than tokens, with no token price
 * (or 0): whisper-1 by the second of audio, tts-1 by the character, dall-e by the image, Cohere's
 * rerank models by the query. Portkey's table
 * gives such a model a "token" price that is its price in that unit (whisper-1's $0.006 a minute as
 * $0.006 a token), so another table's token price for one of them is not taken.
 */
export function litellmOtherUnits(data: unknown): Set<string> {
  const out = new Set<string>();
  if (!isObj(data)) return out;
  for (const [key, e] of Object.entries(data)) {
    if (!isObj(e) || typeof e['litellm_provider'] !== 'string') continue;
    const tokens = typeof e['input_cost_per_token'] === 'number';
    if (tokens ? !pricedOtherwise(e) : !OTHER_UNITS.some((k) => typeof e[k] === 'number')) continue;
    const slash = key.indexOf('/');
    out.add(
      `${canonicalProvider(e['litellm_provider'])}/${(slash > 0 ? key.slice(slash + 1) : key).toLowerCase()}`,
    );
  }
  return out;
}

/** LiteLLM's model_prices_and_context_window.json (USD per token). */
export function fromLiteLlm(data: unknown): SecondaryPrice[] {
  if (!isObj(data)) throw new Error('LiteLLM prices must be an object');
  const out: SecondaryPrice[] = [];
  for (const [key, e] of Object.entries(data)) {
    if (key === 'sample_spec' || !isObj(e) || typeof e['litellm_provider'] !== 'string') continue;
    let prices = litellmTokenPrices(e, '', true);
    // An entry billed in another unit whose token prices are 0 (Azure's dall-e-3: 0 a token out,
    // and its price per pixel; Cohere's rerank models: 0 a token, and their price per query) is not
    // free by the token: its tokens are not what it is billed for.
    if (pricedOtherwise(e)) prices = {};
    if (prices.input_mtok === undefined) {
      // A transcription model billed by the second of audio (whisper-1, Deepgram's), or a speech
      // model by the character of its input (tts-1, ElevenLabs', Polly's): that price.
      const perSecond = timesPow10(e['input_cost_per_second'], 3);
      const perChar = timesPow10(e['input_cost_per_character'], 6);
      if (e['mode'] === 'audio_transcription' && perSecond !== undefined)
        prices = { input_audio_seconds_kcount: perSecond };
      else if (e['mode'] === 'audio_speech' && perChar !== undefined) prices = { input_mchars: perChar };
      else continue;
    }
    const provider = canonicalProvider(e['litellm_provider']);
    const slash = key.indexOf('/');
    const model = (slash > 0 ? key.slice(slash + 1) : key).toLowerCase();
    // Per-request and per-search fees are quoted per thousand in the catalog.
    setPrice(prices, 'requests_kcount', timesPow10(e['input_cost_per_request'], 3));
    const search = e['search_context_cost_per_query'];
    if (isObj(search))
      setPrice(prices, 'web_searches_kcount', timesPow10(search['search_context_size_medium'], 3));
    const entry: SecondaryPrice = { source: 'litellm', provider, model, prices };
    const batch = litellmTokenPrices(e, '_batches', false);
    if (Object.keys(batch).length > 0) entry.batch = batch;
    const tiers: NonNullable<SecondaryPrice['service_tiers']> = {};
    for (const tier of SERVICE_TIERS) {
      // A tier priced on one side only (gpt-5-nano's priority input at 50 times standard, and no
      // output) is taken for a slip of the table rather than a price.
      const set = litellmTokenPrices(e, `_${tier}`, false);
      if (set.input_mtok && set.output_mtok) tiers[tier] = set;
    }
    if (Object.keys(tiers).length > 0) entry.service_tiers = tiers;
    const modes = litellmModes(e['provider_specific_entry']);
    if (modes) entry.modes = modes;
    if (pricesNothing(e, (k) => k.includes('cost') || k.startsWith('search_context_size'))) entry.zero = true;
    const notes = isObj(e['metadata']) ? e['metadata']['notes'] : undefined;
    if (typeof notes === 'string' && /\b(?:free|no cost)\b/i.test(notes)) entry.free = true;
    if (typeof e['max_input_tokens'] === 'number') entry.context_window = e['max_input_tokens'];
    const maxOut = e['max_output_tokens'];
    if (typeof maxOut === 'number' && Number.isInteger(maxOut) && maxOut > 0)
      entry.max_output_tokens = maxOut;
    out.push(entry);
  }
  return out;
}

/**
 * The fee for a session of a code container (OpenAI's code interpreter) that LiteLLM quotes for a
 * provider as a whole (`openai/container`: `code_interpreter_cost_per_session`), per thousand
 * sessions, by provider. The sessions are of the default container, 1 GB: the table has no other.
 */
export function litellmContainerFees(data: unknown): Map<string, string> {
  const out = new Map<string, string>();
  if (!isObj(data)) return out;
  for (const [key, e] of Object.entries(data)) {
    if (!isObj(e) || typeof e['litellm_provider'] !== 'string' || !key.endsWith('/container')) continue;
    const fee = e['code_interpreter_cost_per_session'];
    const kcount = typeof fee === 'number' && fee > 0 ? timesPow10(fee, 3) : undefined;
    if (kcount !== undefined) out.set(canonicalProvider(e['litellm_provider']), kcount);
  }
  return out;
}

function cents(pc: Obj, key: string): string | undefined {
  const v = pc[key];
  return isObj(v) ? perTokenToMtok(v['price'], true) : undefined;
}

/** Portkey's per-call fees (`additional_units`) that the catalog carries, by price key. */
const PORTKEY_TOOL_FEES: readonly (readonly [string, keyof PriceSet])[] = [
  ['web_search', 'web_searches_kcount'],
  ['file_search', 'storage_searches_kcount'],
];

/** The prices an image of Portkey's `image` tables (US cents, by quality then size), in USD; null
 * for a model without one, or one that prices no image. */
function portkeyImagePrices(table: unknown): ImagePrices | null {
  if (!isObj(table)) return null;
  const out: ImagePrices = {};
  for (const [quality, sizes] of Object.entries(table)) {
    if (!isObj(sizes)) continue;
    for (const [size, v] of Object.entries(sizes)) {
      const usd = isObj(v) ? timesPow10(v['price'], -2) : undefined;
      if (usd === undefined || Number(usd) === 0) continue;
      const q = quality.toLowerCase();
      out[q] = { ...out[q], [size.toLowerCase()]: usd };
    }
  }
  return Object.keys(out).length > 0 ? out : null;
}

/** The models Portkey prices by the image (its `image` tables), each with its provider (the
 * catalog's id) and those prices in USD. */
export function portkeyImages(
  files: Record<string, unknown>,
): { provider: string; model: string; images: ImagePrices }[] {
  const out: { provider: string; model: string; images: ImagePrices }[] = [];
  for (const [file, data] of Object.entries(files)) {
    if (!isObj(data)) continue;
    const provider = canonicalProvider(file.replace(/\.json$/, ''));
    for (const [model, e] of Object.entries(data)) {
      if (!isObj(e) || !isObj(e['pricing_config'])) continue;
      const payg = e['pricing_config']['pay_as_you_go'];
      const images = isObj(payg) ? portkeyImagePrices(payg['image']) : null;
      if (images) out.push({ provider, model: model.toLowerCase(), images });
    }
  }
  return out;
}

/** Portkey's pricing/<provider>.json files (US cents per token). */
export function fromPortkey(files: Record<string, unknown>): SecondaryPrice[] {
  const out: SecondaryPrice[] = [];
  for (const [file, data] of Object.entries(files)) {
    if (!isObj(data)) continue;
    const provider = canonicalProvider(file.replace(/\.json$/, ''));
    for (const [model, e] of Object.entries(data)) {
      if (model === 'default' || !isObj(e) || !isObj(e['pricing_config'])) continue;
      const payg = e['pricing_config']['pay_as_you_go'];
      if (!isObj(payg)) continue;
      const input = cents(payg, 'request_token');
      const output = cents(payg, 'response_token');
      if (input === undefined && output === undefined) continue;
      // A model at 0 a token that the table prices in another unit is not free by the token:
      // deepbricks' dall-e-3 by the image, sora and veo by the second of video, seedream by the
      // image generated, gpt-image-1 by its text and image tokens.
      if (!Number(input) && !Number(output) && !pricesNothing(payg, (k) => k === 'price')) continue;
      const prices: PriceSet = { input_mtok: input ?? '0', output_mtok: output ?? '0' };
      const add = (k: keyof PriceSet, src: string) => {
        const v = cents(payg, src);
        if (v !== undefined && v !== '0') prices[k] = v;
      };
      add('cache_read_mtok', 'cache_read_input_token');
      add('cache_write_mtok', 'cache_write_input_token');
      add('input_audio_mtok', 'request_audio_token');
      add('output_audio_mtok', 'response_audio_token');
      add('cache_audio_read_mtok', 'cache_read_audio_input_token');
      add('output_reasoning_mtok', 'reasoning_token');
      // Hosted tools billed per call (OpenAI's web search and file search), in cents a call: the
      // catalog quotes them per thousand.
      const units = payg['additional_units'];
      if (isObj(units)) {
        for (const [unit, key] of PORTKEY_TOOL_FEES) {
          const fee = isObj(units[unit]) ? timesPow10(units[unit]['price'], 1) : undefined;
          if (fee !== undefined && fee !== '0') prices[key] = fee;
        }
      }
      const entry: SecondaryPrice = { source: 'portkey', provider, model: model.toLowerCase(), prices };
      if (pricesNothing(payg, (k) => k === 'price')) entry.zero = true;
      const batch = e['pricing_config']['batch_config'];
      if (isObj(batch)) {
        const bi = cents(batch, 'request_token');
        const bo = cents(batch, 'response_token');
        if (bi !== undefined || bo !== undefined) {
          entry.batch = {};
          if (bi !== undefined) entry.batch.input_mtok = bi;
          if (bo !== undefined) entry.batch.output_mtok = bo;
        }
      }
      out.push(entry);
    }
  }
  return out;
}

function langfuseProvider(model: string): string {
  if (/^(gpt|o\d|text-|chatgpt|davinci|babbage|ada|whisper|tts|dall-e|omni|codex)/.test(model))
    return 'openai';
  if (model.includes('claude')) return 'anthropic';
  if (model.includes('gemini') || model.includes('gemma')) return 'google';
  if (/mistral|mixtral|codestral|pixtral|ministral|magistral|devstral/.test(model)) return 'mistral';
  if (model.includes('grok')) return 'x-ai';
  if (model.includes('deepseek')) return 'deepseek';
  if (model.includes('command')) return 'cohere';
  return 'openai';
}

/** Langfuse's default-model-prices.json (USD per token; the default tier of each model). */
export function fromLangfuse(data: unknown): SecondaryPrice[] {
  if (!Array.isArray(data)) throw new Error('Langfuse prices must be an array');
  const out: SecondaryPrice[] = [];
  for (const m of data) {
    if (!isObj(m) || typeof m['modelName'] !== 'string' || !Array.isArray(m['pricingTiers'])) continue;
    const tier = (m['pricingTiers'] as Obj[]).find((t) => t['isDefault'] === true) ?? m['pricingTiers'][0];
    if (!isObj(tier) || !isObj(tier['prices'])) continue;
    const p = tier['prices'];
    const input = perTokenToMtok(p['input']);
    const output = perTokenToMtok(p['output']);
    if (input === undefined && output === undefined) continue;
    const model = m['modelName'].toLowerCase();
    const prices: PriceSet = { input_mtok: input ?? '0', output_mtok: output ?? '0' };
    const cr = perTokenToMtok(p['input_cache_read'] ?? p['input_cached_tokens']);
    if (cr !== undefined) prices.cache_read_mtok = cr;
    const cw = perTokenToMtok(p['input_cache_creation'] ?? p['input_cache_creation_5m']);
    if (cw !== undefined) prices.cache_write_mtok = cw;
    const cw1h = perTokenToMtok(p['input_cache_creation_1h']);
    if (cw1h !== undefined) prices.cache_write_1h_mtok = cw1h;
    const entry: SecondaryPrice = { source: 'langfuse', provider: langfuseProvider(model), model, prices };
    if (pricesNothing(p, () => true)) entry.zero = true;
    out.push(entry);
  }
  return out;
}
