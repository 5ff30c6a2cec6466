import { TallyError } from '../errors.js';
import type { UnitUsage } from './calc.js';
import type { CatalogProvider, Extractor, ExtractorPathStep } from './catalog-types.js';
import { matches } from './match.js';
import { badTokenCount, checkUnitUsage, isTokenCount } from './tokens.js';

type Mapping = Extractor['mappings'][number];
const m = (path: Mapping['path'], dest: string, required = false): Mapping => ({ path, dest, required });

/** Shapes for providers that publish no extractor of their own (OpenAI-compatible hosts and the
 * providers added from the secondary price tables). */
const GENERIC: Record<string, Extractor> = {
  chat: {
    api_flavor: 'chat',
    root: 'usage',
    mappings: [
      m('prompt_tokens', 'input_tokens', true),
      m(['prompt_tokens_details', 'cached_tokens'], 'cache_read_tokens'),
      m(['prompt_tokens_details', 'cache_write_tokens'], 'cache_write_tokens'),
      m(['prompt_tokens_details', 'audio_tokens'], 'input_audio_tokens'),
      m(['completion_tokens_details', 'audio_tokens'], 'output_audio_tokens'),
      m(['completion_tokens_details', 'reasoning_tokens'], 'output_reasoning_tokens'),
      m('completion_tokens', 'output_tokens'),
    ],
  },
  responses: {
    api_flavor: 'responses',
    root: 'usage',
    mappings: [
      m('input_tokens', 'input_tokens', true),
      m(['input_tokens_details', 'cached_tokens'], 'cache_read_tokens'),
      m(['input_tokens_details', 'cache_write_tokens'], 'cache_write_tokens'),
      m(['output_tokens_details', 'reasoning_tokens'], 'output_reasoning_tokens'),
      m('output_tokens', 'output_tokens', true),
    ],
  },
  embeddings: {
    api_flavor: 'embeddings',
    root: 'usage',
    mappings: [m('prompt_tokens', 'input_tokens', true)],
  },
  // OpenAI's transcriptions: gpt-4o-transcribe and later give tokens of the audio and the prompt in,
  // of the text out; whisper-1 gives the seconds of audio it bills.
  transcriptions: {
    api_flavor: 'transcriptions',
    root: 'usage',
    mappings: [
      m('input_tokens', 'input_tokens'),
      m(['input_token_details', 'text_tokens'], 'input_text_tokens'),
      m(['input_token_details', 'audio_tokens'], 'input_audio_tokens'),
      m('output_tokens', 'output_tokens'),
      m('seconds', 'input_audio_seconds'),
    ],
  },
  // OpenAI's Realtime API: a `response.done` event's usage (text, audio and image tokens in, cached
  // ones among them, text and audio tokens out).
  realtime: {
    api_flavor: 'realtime',
    root: ['response', 'usage'],
    mappings: [
      m('input_tokens', 'input_tokens'),
      m(['input_token_details', 'text_tokens'], 'input_text_tokens'),
      m(['input_token_details', 'audio_tokens'], 'input_audio_tokens'),
      m(['input_token_details', 'image_tokens'], 'input_image_tokens'),
      m(['input_token_details', 'cached_tokens'], 'cache_read_tokens'),
      m(['input_token_details', 'cached_tokens_details', 'text_tokens'], 'cache_text_read_tokens'),
      m(['input_token_details', 'cached_tokens_details', 'audio_tokens'], 'cache_audio_read_tokens'),
      m(['input_token_details', 'cached_tokens_details', 'image_tokens'], 'cache_image_read_tokens'),
      m(['output_token_details', 'text_tokens'], 'output_text_tokens'),
      m(['output_token_details', 'audio_tokens'], 'output_audio_tokens'),
      m('output_tokens', 'output_tokens'),
    ],
  },
  // OpenAI's speech (POST /v1/audio/speech): the characters of its input, which the gateway counts
  // (tts-1 is billed by them), and the tokens a streamed speech's usage gives (gpt-4o-mini-tts).
  speech: {
    api_flavor: 'speech',
    root: 'usage',
    mappings: [
      m('characters', 'input_characters'),
      m('input_tokens', 'input_tokens'),
      m('output_tokens', 'output_tokens'),
    ],
  },
  // OpenAI's image generation (gpt-image-1 and later): tokens of the prompt's text and images in,
  // of the image out.
  images: {
    api_flavor: 'images',
    root: 'usage',
    mappings: [
      m('input_tokens', 'input_tokens', true),
      m(['input_tokens_details', 'text_tokens'], 'input_text_tokens'),
      m(['input_tokens_details', 'image_tokens'], 'input_image_tokens'),
      m('output_tokens', 'output_tokens', true),
      m(['output_tokens_details', 'text_tokens'], 'output_text_tokens'),
      m(['output_tokens_details', 'image_tokens'], 'output_image_tokens'),
    ],
  },
  anthropic: {
    api_flavor: 'anthropic',
    root: 'usage',
    mappings: [
      // Anthropic's input_tokens exclude cache reads and writes: the total input is the sum.
      m('input_tokens', 'input_tokens', true),
      m('cache_creation_input_tokens', 'input_tokens'),
      m('cache_read_input_tokens', 'input_tokens'),
      m('cache_creation_input_tokens', 'cache_write_tokens'),
      m(['cache_creation', 'ephemeral_1h_input_tokens'], 'cache_write_1h_tokens'),
      m('cache_read_input_tokens', 'cache_read_tokens'),
      m(['server_tool_use', 'web_search_requests'], 'web_searches'),
      m('output_tokens', 'output_tokens', true),
    ],
  },
  gemini: {
    api_flavor: 'gemini',
    root: 'usageMetadata',
    mappings: [
      m('promptTokenCount', 'input_tokens'),
      m('toolUsePromptTokenCount', 'input_tokens'),
      m('cachedContentTokenCount', 'cache_read_tokens'),
      // Gemini's candidatesTokenCount excludes thinking: output is the sum, reasoning part of it.
      m('candidatesTokenCount', 'output_tokens'),
      m('thoughtsTokenCount', 'output_tokens'),
      m('thoughtsTokenCount', 'output_reasoning_tokens'),
    ],
  },
  converse: {
    api_flavor: 'converse',
    root: 'usage',
    mappings: [
      m('inputTokens', 'input_tokens', true),
      m('cacheReadInputTokens', 'input_tokens'),
      m('cacheWriteInputTokens', 'input_tokens'),
      m('cacheReadInputTokens', 'cache_read_tokens'),
      m('cacheWriteInputTokens', 'cache_write_tokens'),
      m('outputTokens', 'output_tokens', true),
    ],
  },
};

/** For each API flavour of ours, the provider extractor flavours to try, in order, then the
 * generic shape. A provider's own extractor knows its quirks (xAI and Perplexity leave reasoning
 * out of completion_tokens, Gemini leaves thoughts out of candidates). */
const FLAVOURS: Record<string, { names: string[]; generic: string }> = {
  'openai-chat': { names: ['chat', 'default'], generic: 'chat' },
  'openai-responses': { names: ['responses'], generic: 'responses' },
  'openai-embeddings': { names: ['embeddings'], generic: 'embeddings' },
  'openai-images': { names: ['images'], generic: 'images' },
  'openai-speech': { names: ['speech'], generic: 'speech' },
  'openai-realtime': { names: ['realtime'], generic: 'realtime' },
  'openai-transcriptions': { names: ['transcriptions'], generic: 'transcriptions' },
  'anthropic-messages': { names: ['anthropic', 'default'], generic: 'anthropic' },
  gemini: { names: ['default'], generic: 'gemini' },
  'bedrock-converse': { names: ['default'], generic: 'converse' },
};

export const KNOWN_APIS = Object.keys(FLAVOURS);

/** Other names clients use for the same API shapes. */
const API_ALIASES: Record<string, string> = {
  openai: 'openai-chat',
  'chat-completions': 'openai-chat',
  chat_completions: 'openai-chat',
  'openai-chat-completions': 'openai-chat',
  'openai-completions': 'openai-chat',
  chat: 'openai-chat',
  responses: 'openai-responses',
  embeddings: 'openai-embeddings',
  embedding: 'openai-embeddings',
  images: 'openai-images',
  speech: 'openai-speech',
  realtime: 'openai-realtime',
  transcriptions: 'openai-transcriptions',
  anthropic: 'anthropic-messages',
  messages: 'anthropic-messages',
  'anthropic-message': 'anthropic-messages',
  google: 'gemini',
  'google-gemini': 'gemini',
  vertex: 'gemini',
  'vertex-ai': 'gemini',
  generatecontent: 'gemini',
  bedrock: 'bedrock-converse',
  converse: 'bedrock-converse',
  'aws-bedrock': 'bedrock-converse',
};

/** Marks a value that is absent; reading a path never throws on the hot path. */
const ABSENT: unique symbol = Symbol('absent');
type Read = unknown | typeof ABSENT;

function step(data: unknown, s: ExtractorPathStep): Read {
  if (typeof data !== 'object' || data === null) return ABSENT;
  if (typeof s === 'string') {
    if (Array.isArray(data)) return ABSENT;
    const v = (data as Record<string, unknown>)[s];
    return v === undefined || v === null ? ABSENT : v;
  }
  if (!Array.isArray(data)) return ABSENT;
  for (const item of data) {
    if (typeof item !== 'object' || item === null) continue;
    const v = (item as Record<string, unknown>)[s.field];
    if (typeof v === 'string' && matches(s.match, v.toLowerCase())) return item;
  }
  return ABSENT;
}

function readPath(data: unknown, path: Mapping['path']): Read {
  if (typeof path === 'string') return step(data, path);
  let cur: Read = data;
  for (const s of path) {
    cur = step(cur, s);
    if (cur === ABSENT) return ABSENT;
  }
  return cur;
}

function pathText(path: Mapping['path']): string {
  return typeof path === 'string'
    ? path
    : path.map((s) => (typeof s === 'string' ? s : `[${s.field}]`)).join('.');
}

interface Extracted {
  usage: UnitUsage;
  /** How many mappings found a value, to choose between a provider's flavours. */
  hits: number;
  /** The first required field that was absent, if any. */
  missing: string | null;
  /** The object the mappings were read from. */
  root: Record<string, unknown>;
}

function applyExtractor(ex: Extractor, usage: Record<string, unknown>): Extracted {
  // Accept either the usage object itself or a body that holds it at the extractor's root.
  let obj: Record<string, unknown> = usage;
  // A root like usage.billed_units is looked for whole, then without its leading keys, since the
  // caller may pass the usage object rather than the whole body.
  const root = typeof ex.root === 'string' ? [ex.root] : ex.root;
  for (let k = 0; k < root.length; k++) {
    const nested = k === root.length - 1 ? step(usage, root[k]!) : readPath(usage, root.slice(k));
    if (typeof nested === 'object' && nested !== null && !Array.isArray(nested)) {
      obj = nested as Record<string, unknown>;
      break;
    }
  }
  const out: UnitUsage = {};
  let hits = 0;
  for (const mp of ex.mappings) {
    const v = readPath(obj, mp.path);
    if (v === ABSENT) {
      if (mp.required) return { usage: out, hits: 0, missing: pathText(mp.path), root: obj };
      continue;
    }
    if (!isTokenCount(v)) throw badTokenCount(v, `usage.${pathText(mp.path)}`);
    out[mp.dest] = (out[mp.dest] ?? 0) + v;
    hits++;
  }
  return { usage: out, hits, missing: hits === 0 ? 'usage fields' : null, root: obj };
}

interface Plan {
  list: Extractor[];
  /** Index of the generic shape, tried only when none of the provider's own flavours read; -1 if none. */
  generic: number;
  /** OpenAI's shapes (chat, responses), whose total_tokens can say what the other counts leave out. */
  openaiShape: boolean;
}

const plans = new WeakMap<CatalogProvider, Map<string, Plan>>();
const NO_PROVIDER = { extractors: [] } as unknown as CatalogProvider;

/** The extractors to try for a provider and an api, cached: the provider's own flavours, then the
 * generic shape of that api. */
function candidatesFor(provider: CatalogProvider | null, api: string): Plan {
  const key = provider ?? NO_PROVIDER;
  let byApi = plans.get(key);
  if (!byApi) {
    byApi = new Map();
    plans.set(key, byApi);
  }
  const hit = byApi.get(api);
  if (hit) return hit;
  const list: Extractor[] = [];
  let generic = -1;
  const own = provider?.extractors.find((e) => e.api_flavor === api);
  const plan = own ? undefined : (FLAVOURS[api] ?? FLAVOURS[API_ALIASES[api.toLowerCase()] ?? '']);
  if (own) {
    // The provider's own flavour name, e.g. "default" or "tokens".
    list.push(own);
  } else if (plan) {
    for (const name of plan.names) {
      const ex = provider?.extractors.find((e) => e.api_flavor === name);
      if (ex) list.push(ex);
    }
    generic = list.length;
    list.push(GENERIC[plan.generic]!);
  } else {
    const own = provider?.extractors.find((e) => e.api_flavor === api);
    if (!own)
      throw new TallyError('unknown_api', `Unknown api "${api}". Use one of ${KNOWN_APIS.join(', ')}.`);
    list.push(own);
  }
  const openaiShape = plan?.generic === 'chat' || plan?.generic === 'responses';
  const planned = { list, generic, openaiShape };
  byApi.set(api, planned);
  return planned;
}

/**
 * The service tier a raw usage object names: at its top level (a whole body passed as usage, or
 * Anthropic's usage itself), or in the usage of a whole Anthropic body. Null when it names none.
 */
export function serviceTierOf(usage: unknown): string | null {
  if (typeof usage !== 'object' || usage === null) return null;
  const own = (usage as Record<string, unknown>)['service_tier'];
  if (typeof own === 'string') return own;
  const inner = (usage as Record<string, { service_tier?: unknown } | undefined>)['usage']?.service_tier;
  return typeof inner === 'string' ? inner : null;
}

/**
 * The pricing modes a raw usage object names (Anthropic's `speed: "fast"` and `inference_geo`), at
 * its top level or in the usage of a whole body, as serviceTierOf reads the tier. A mode at its
 * standard value (speed "standard", inference_geo "global") is no mode.
 */
export function usageModesOf(usage: unknown): { fast: boolean; geo: string | null } {
  if (typeof usage !== 'object' || usage === null) return NO_MODES;
  const top = usage as Record<string, unknown>;
  const inner = top['usage'];
  const u =
    typeof inner === 'object' && inner !== null && !('speed' in top) && !('inference_geo' in top)
      ? (inner as Record<string, unknown>)
      : top;
  const speed = u['speed'];
  const geo = u['inference_geo'];
  const fast = typeof speed === 'string' && speed.toLowerCase() === 'fast';
  const named =
    typeof geo === 'string' && geo !== '' && geo.toLowerCase() !== 'global' ? geo.toLowerCase() : null;
  return fast || named ? { fast, geo: named } : NO_MODES;
}

const NO_MODES = { fast: false, geo: null } as const;

/**
 * Turns a provider's raw usage object into unit usage. `api` is one of ours (openai-chat, ...) or
 * the name of one of the provider's own extractor flavours.
 */
export function extractUsage(provider: CatalogProvider | null, api: string, usage: unknown): UnitUsage {
  if (typeof usage !== 'object' || usage === null || Array.isArray(usage)) {
    throw new TallyError('invalid_usage', 'usage must be an object.');
  }
  const { list: candidates, generic, openaiShape } = candidatesFor(provider, api);
  // The provider's own flavour that reads the most fields wins: xAI's native usage carries
  // reasoning_tokens at the top level, its OpenAI-compatible usage under completion_tokens_details.
  let best: Extracted | null = null;
  let missing = '';
  for (let i = 0; i < candidates.length; i++) {
    if (i === generic && best) break;
    const r = applyExtractor(candidates[i]!, usage as Record<string, unknown>);
    if (r.missing !== null) missing ||= r.missing;
    else if (!best || r.hits > best.hits) best = r;
  }
  if (best) {
    if (openaiShape) addReasoningFromTotal(best.root, best.usage);
    return checkUnitUsage(best.usage);
  }
  throw new TallyError('invalid_usage', `The usage object has no ${missing} for api ${api}.`);
}

/**
 * Gemini's OpenAI-compatible endpoint counts thinking only in total_tokens: {prompt_tokens: 1000,
 * completion_tokens: 200, total_tokens: 5200} is 4,200 output tokens, 4,000 of them reasoning. In
 * OpenAI's shapes, what the total holds beyond input and output is reasoning output (OpenAI's own
 * total is always their sum, so nothing changes there).
 */
function addReasoningFromTotal(root: Record<string, unknown>, u: UnitUsage): void {
  const total = root['total_tokens'];
  if (total === undefined || total === null) return;
  if (!isTokenCount(total)) throw badTokenCount(total, 'usage.total_tokens');
  const excess = total - (u['input_tokens'] ?? 0) - (u['output_tokens'] ?? 0);
  if (excess <= 0) return;
  const output = (u['output_tokens'] ?? 0) + excess;
  const reported = u['output_reasoning_tokens'] ?? 0;
  u['output_tokens'] = output;
  // Reasoning reported apart and left out of completion_tokens is the excess itself: counted once.
  u['output_reasoning_tokens'] = reported === excess ? reported : Math.min(reported + excess, output);
}
