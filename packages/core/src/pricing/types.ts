import type { Tokens } from '../model.js';
import type { ExactUsd, NanoUsd } from '../money.js';

export interface PriceInput {
  /** Provider id, e.g. openai, anthropic, google, aws, azure. */
  provider: string;
  /** API flavour of `usage` (openai-chat, anthropic-messages, gemini, ...). */
  api?: string | null;
  model: string;
  /** The provider's raw usage object, exactly as returned. */
  usage?: unknown;
  /** Already-normalised tokens, used when there is no raw usage. */
  tokens?: Partial<Tokens> | null;
  /** When the call happened (epoch ms), for prices that change over time. */
  time?: number;
  tenant?: string;
  /** Priced at the provider's batch rates. */
  batch?: boolean;
  /** The service tier the response says served the call (OpenAI's `service_tier`: priority and
   * flex have prices of their own). Without it, the tier is read from the raw usage object (or the
   * whole body passed as usage), else the standard prices apply. */
  service_tier?: string | null;
  /** The pricing modes a request asks for (Anthropic's `speed` and `inference_geo`), for a price
   * made before any answer, such as a budget's reservation. Without it, the modes are read from
   * the raw usage object, which names those that served the call. */
  modes?: { speed?: unknown; inference_geo?: unknown };
  /** Calls of the provider's hosted tools that its usage object does not count: OpenAI's
   * Responses API lists each web search, file search, image and code interpreter call as an item
   * of the answer's `output`, and bills searches and images per call, containers per session.
   * Added to what the usage (or `tokens`) counts. */
  tool_calls?: HostedToolCalls | null;
  /** Images a model billed by the image made (dall-e-2, dall-e-3: their answers give no usage), at
   * the quality and size the request asked (null: the model's default). Priced from the model's
   * price an image (CatalogModel.images), added to what its tokens cost. */
  images?: ImageCount | null;
}

/** A number of images of one quality and size (PriceInput.images). */
export interface ImageCount {
  count: number;
  quality?: string | null;
  size?: string | null;
}

/** Hosted tool calls billed per call (see PriceInput.tool_calls). */
export type HostedToolCalls = Partial<Record<HostedToolCall, number>>;

/** Code interpreter container sessions, by memory: the default 1 GB, and the larger sizes. */
export const CODE_CONTAINER_CALLS = [
  'code_containers',
  'code_containers_4g',
  'code_containers_16g',
  'code_containers_64g',
] as const;

/** The hosted tool calls a call may count apart from its usage (HostedToolCalls' fields). */
export const HOSTED_TOOL_CALLS = [
  'web_searches',
  'file_searches',
  ...CODE_CONTAINER_CALLS,
  // Images of OpenAI's image generation tool.
  'image_generations',
] as const;
export type HostedToolCall = (typeof HOSTED_TOOL_CALLS)[number];

/** How many of the hosted tool calls `names` `calls` holds, together. */
export function hostedCount(
  calls: Readonly<Partial<Record<string, number>>> | null | undefined,
  names: readonly string[],
): number {
  let n = 0;
  for (const k of names) n += calls?.[k] ?? 0;
  return n;
}

/** Whether `k` names a hosted tool call (HOSTED_TOOL_CALLS). */
export const isHostedToolCall = (k: string): k is HostedToolCall =>
  (HOSTED_TOOL_CALLS as readonly string[]).includes(k);

export interface Priced {
  status: 'priced';
  tokens: Tokens;
  /** Every input-side token, cache reads and writes included. */
  input: ExactUsd;
  /** Every output-side token, reasoning and audio included. */
  output: ExactUsd;
  /** Input and output, plus per-request and search fees, which are in neither. */
  total: ExactUsd;
  /** What the tenant pays: the total after its override (a negotiated discount or its own prices);
   * equal to the total without one. */
  effective: ExactUsd;
  listNano: NanoUsd;
  /** The effective total, rounded to nano-USD. */
  effectiveNano: NanoUsd;
  provider: string;
  model: string;
  /** Where the list price came from, e.g. genai-prices:openai/gpt-4o (for a model only an override
   * prices, override:acme/vllm/our-llama). */
  source: string;
  /** Where the effective price came from: the override, e.g. override:acme/openai/gpt-4o (-15%), or
   * the list's source when there is none. */
  effectiveSource: string;
  version: string;
}

export interface Unpriced {
  status: 'unpriced';
  tokens: Tokens | null;
  reason: string;
  version: string;
}

export type PriceOutcome = Priced | Unpriced;

export type Pricer = (input: PriceInput) => PriceOutcome;
