/** The catalog as stored (packages/core/catalog/catalog.json): built from the public price sources
 * by `tally prices build`, versioned, and read-only at run time. Prices are decimal strings. */

export type Clause =
  | { equals: string }
  | { starts_with: string }
  | { ends_with: string }
  | { contains: string }
  | { regex: string }
  | { or: Clause[] }
  | { and: Clause[] };

export interface TieredPrice {
  base: string;
  tiers: { start: number; price: string }[];
}

export type Price = string | TieredPrice;

/** Per million tokens (`_mtok`) or per thousand (`_kcount`), in USD. */
export const PRICE_FIELDS = [
  'input_mtok',
  'output_mtok',
  'cache_read_mtok',
  'cache_write_mtok',
  'cache_write_1h_mtok',
  'input_audio_mtok',
  'output_audio_mtok',
  'cache_audio_read_mtok',
  'input_image_mtok',
  'cache_image_read_mtok',
  'output_image_mtok',
  'input_video_mtok',
  'output_video_mtok',
  'output_reasoning_mtok',
  'output_citation_mtok',
  'requests_kcount',
  'web_searches_kcount',
  'storage_searches_kcount',
  'code_containers_kcount',
  'code_containers_4g_kcount',
  'code_containers_16g_kcount',
  'code_containers_64g_kcount',
  'image_generations_kcount',
  'input_audio_seconds_kcount',
  'input_mchars',
] as const;
export type PriceField = (typeof PRICE_FIELDS)[number];

export type PriceSet = Partial<Record<PriceField, Price>>;

export interface ConditionalPrice {
  constraint?: { start_date: string } | { start_time: string; end_time: string } | null;
  prices: PriceSet;
}

export type PriceSource = 'genai-prices' | 'litellm' | 'portkey' | 'langfuse' | 'override';

/** OpenAI's (and Gemini's) service tiers with prices of their own: the response's `service_tier`
 * says which served the call. Any other tier (default, auto, scale) is priced at the standard rates. */
export const SERVICE_TIERS = ['priority', 'flex'] as const;
export type ServiceTier = (typeof SERVICE_TIERS)[number];

/**
 * Anthropic's pricing modes, each a factor on every token price of a call that its usage names:
 * fast mode (`usage.speed: "fast"`) and US-only inference (`usage.inference_geo: "us"`). They
 * stack with each other, with the long-context tiers and with the cache rates (decimal strings).
 */
export interface PriceModes {
  fast?: string;
  inference_geo_us?: string;
}

export interface CatalogModel {
  id: string;
  name?: string;
  match: Clause;
  prices: PriceSet | ConditionalPrice[];
  /** Batch API prices, where a source gives them. */
  batch?: PriceSet;
  /** The prices of the service tiers that have their own, where a source gives them. */
  service_tiers?: Partial<Record<ServiceTier, PriceSet>>;
  /** The factors of the pricing modes this model has, where a source gives them (PriceModes). */
  modes?: PriceModes;
  source: PriceSource;
  context_window?: number;
  /** The most output tokens one call may ask for (LiteLLM's table): what a budget reserves for a
   * call that sets no limit of its own. */
  max_output_tokens?: number;
  deprecated?: boolean;
  /** USD an image, by quality then size (`default` for either where the request names none), for
   * a model billed by the image whose answer gives no usage (dall-e-2 and dall-e-3): Portkey's
   * tables. */
  images?: ImagePrices;
}

/** USD an image, by quality (`standard`, `hd`, `default`...) then size (`1024x1792`, `default`...). */
export type ImagePrices = Record<string, Record<string, string>>;

export type ExtractorPathStep = string | { type: 'array-match'; field: string; match: Clause };

export interface Extractor {
  api_flavor: string;
  root: string | string[];
  model_path?: string | string[];
  mappings: { path: string | ExtractorPathStep[]; dest: string; required: boolean }[];
}

export interface CatalogProvider {
  id: string;
  name: string;
  /** Other ids that name this provider (e.g. xai, bedrock, vertex_ai). */
  aliases: string[];
  provider_match?: Clause;
  model_match?: Clause;
  fallback_providers?: string[];
  extractors: Extractor[];
  models: CatalogModel[];
  /** A mode's factor for every model of the provider that gives none of its own: where each of the
   * provider's models that names the mode names the same factor (Anthropic's US-only inference,
   * 1.1, a rule of the provider's rather than of a model's). */
  modes?: PriceModes;
}

export interface CatalogData {
  /** Changes whenever any price changes: the newest source date and a content hash. */
  version: string;
  sources: { name: string; snapshot: string }[];
  providers: CatalogProvider[];
}
