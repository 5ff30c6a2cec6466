import type { ProviderConfig } from './types.js';

/** The model calls the gateway meters: `compact` is the Responses API's compaction of a
 * conversation (POST /v1/responses/compact), a model call billed as a response is; `images` is
 * OpenAI's image generation (POST /v1/images/generations); `completions`, the legacy text
 * completions (POST /v1/completions), which base models served by vLLM and the like still take;
 * `image_edits`, its image edits (POST /v1/images/edits, a multipart form like a transcription's);
 * `translations`, whisper-1's translation of speech into English (POST /v1/audio/translations);
 * `speech`, OpenAI's text to speech (POST /v1/audio/speech), whose answer is the audio itself;
 * `realtime`, its Realtime API's sessions (a WebSocket at /v1/realtime, realtime.ts). */
export type Endpoint =
  | 'chat'
  | 'completions'
  | 'responses'
  | 'compact'
  | 'embeddings'
  | 'images'
  | 'image_edits'
  | 'transcriptions'
  | 'translations'
  | 'speech'
  | 'realtime'
  | 'messages';

/** The API flavour of each endpoint's usage object, for pricing. */
export const ENDPOINT_API: Record<Endpoint, string> = {
  chat: 'openai-chat',
  // Its usage is a chat completion's.
  completions: 'openai-chat',
  responses: 'openai-responses',
  compact: 'openai-responses',
  embeddings: 'openai-embeddings',
  images: 'openai-images',
  image_edits: 'openai-images',
  transcriptions: 'openai-transcriptions',
  // whisper-1's, billed by the second as its transcriptions are.
  translations: 'openai-transcriptions',
  speech: 'openai-speech',
  realtime: 'openai-realtime',
  messages: 'anthropic-messages',
};

const OPENAI_PATHS: Record<Exclude<Endpoint, 'messages'>, string> = {
  chat: '/chat/completions',
  completions: '/completions',
  responses: '/responses',
  compact: '/responses/compact',
  embeddings: '/embeddings',
  images: '/images/generations',
  image_edits: '/images/edits',
  transcriptions: '/audio/transcriptions',
  translations: '/audio/translations',
  speech: '/audio/speech',
  realtime: '/realtime',
};

/** The endpoints whose requests are multipart forms (a file and text fields), not JSON. */
export function isForm(endpoint: Endpoint): boolean {
  return endpoint === 'transcriptions' || endpoint === 'translations' || endpoint === 'image_edits';
}

export interface UpstreamTarget {
  origin: string;
  path: string;
  headers: Record<string, string>;
  /** The model the body names: the one routed to, or, where the body must name a deployment (Azure's
   * v1 API), the deployment. */
  bodyModel: string;
}

interface ParsedBase {
  origin: string;
  basePath: string;
}

const baseCache = new Map<string, ParsedBase>();

function parseBase(url: string): ParsedBase {
  let hit = baseCache.get(url);
  if (!hit) {
    const u = new URL(url);
    hit = { origin: u.origin, basePath: u.pathname.replace(/\/+$/, '') };
    baseCache.set(url, hit);
  }
  return hit;
}

/** The catalog provider id a provider's calls are priced under. */
export function priceProviderOf(p: ProviderConfig): string {
  if (p.price_provider) return p.price_provider;
  if (p.kind === 'azure') return 'azure';
  if (p.kind === 'anthropic') return 'anthropic';
  if (p.kind === 'openai') return 'openai';
  return p.id;
}

/** Which endpoints a provider serves natively. */
export function servesNatively(p: ProviderConfig, endpoint: Endpoint): boolean {
  return p.kind === 'anthropic' ? endpoint === 'messages' : endpoint !== 'messages';
}

/** An OpenAI chat or Responses call to an Anthropic provider is translated to messages. */
export function translatedToMessages(p: ProviderConfig, endpoint: Endpoint): boolean {
  return p.kind === 'anthropic' && (endpoint === 'chat' || endpoint === 'responses');
}

/** Whether an Anthropic messages call to this provider is translated to chat completions (and
 * its answer back): every provider that is not Anthropic's. */
export function translatedFromMessages(p: ProviderConfig, endpoint: Endpoint): boolean {
  return endpoint === 'messages' && p.kind !== 'anthropic';
}

/** Whether a provider takes calls of an endpoint: natively, or translated either way. */
export function serves(p: ProviderConfig, endpoint: Endpoint): boolean {
  return (
    servesNatively(p, endpoint) || translatedToMessages(p, endpoint) || translatedFromMessages(p, endpoint)
  );
}

/**
 * The upstream URL and headers for one call. `clientHeaders` passes on the few client headers that
 * change what a provider does (Anthropic's version and beta flags, OpenAI's organisation).
 */
export function upstreamFor(
  p: ProviderConfig,
  endpoint: Endpoint,
  model: string,
  clientHeaders: Record<string, string | string[] | undefined>,
): UpstreamTarget {
  const { origin, basePath } = parseBase(p.base_url);
  // identity: usage is read from the answer, so it must come uncompressed.
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'accept-encoding': 'identity',
  };
  if (p.kind === 'anthropic') {
    if (p.api_key) headers['x-api-key'] = p.api_key;
    const version = clientHeaders['anthropic-version'];
    headers['anthropic-version'] = typeof version === 'string' ? version : '2023-06-01';
    const beta = clientHeaders['anthropic-beta'];
    if (typeof beta === 'string') headers['anthropic-beta'] = beta;
    const v1 = basePath.endsWith('/v1') ? basePath : `${basePath}/v1`;
    return { origin, path: `${v1}/messages`, headers, bodyModel: model };
  }
  const suffix = OPENAI_PATHS[endpoint as Exclude<Endpoint, 'messages'>];
  if (p.kind === 'azure') {
    if (p.api_key) headers['api-key'] = p.api_key;
    const deployment = p.deployments?.[model] ?? model;
    // The v1 API takes the deployment in the body, and so does the Responses API under any version
    // (Azure serves it at /openai/v1/responses, not under a deployment); the dated versions name
    // the deployment in the path for the other endpoints.
    if (!p.api_version || p.api_version === 'v1' || endpoint === 'responses' || endpoint === 'compact') {
      return { origin, path: `${basePath}/openai/v1${suffix}`, headers, bodyModel: deployment };
    }
    return {
      origin,
      path: `${basePath}/openai/deployments/${encodeURIComponent(deployment)}${suffix}?api-version=${encodeURIComponent(p.api_version)}`,
      headers,
      bodyModel: model,
    };
  }
  addAccount(p, headers);
  return { origin, path: `${basePath}${suffix}`, headers, bodyModel: model };
}

/** The model list path of an OpenAI-compatible provider. */
export function modelsPath(p: ProviderConfig): {
  origin: string;
  path: string;
  headers: Record<string, string>;
} {
  const { origin, basePath } = parseBase(p.base_url);
  const headers: Record<string, string> = {};
  if (p.kind === 'anthropic') {
    if (p.api_key) headers['x-api-key'] = p.api_key;
    headers['anthropic-version'] = '2023-06-01';
    return { origin, path: `${basePath.endsWith('/v1') ? basePath : `${basePath}/v1`}/models`, headers };
  }
  if (p.kind === 'azure') {
    if (p.api_key) headers['api-key'] = p.api_key;
    return { origin, path: `${basePath}/openai/v1/models`, headers };
  }
  addAccount(p, headers);
  return { origin, path: `${basePath}/models`, headers };
}

/** An OpenAI-style provider's key, and the organization and project its calls are made for. */
function addAccount(p: ProviderConfig, headers: Record<string, string>): void {
  if (p.api_key) headers['authorization'] = `Bearer ${p.api_key}`;
  if (p.organization) headers['openai-organization'] = p.organization;
  if (p.project) headers['openai-project'] = p.project;
}
