import { TallyError } from '../errors.js';
import type { Tokens } from '../model.js';
import type { UnitUsage } from './calc.js';
import { CODE_CONTAINER_CALLS, hostedCount } from './types.js';

/** The most tokens one count may hold: the store keeps counts as 32-bit integers. */
export const MAX_TOKEN_COUNT = 2_147_483_647;

/** Whether a token count as a provider or a client gave it is one: a whole number from 0 to
 * MAX_TOKEN_COUNT. Anything else (10.5, 1e300, -3, "12") makes the usage unreadable, so that no
 * such figure is priced or stored. */
export function isTokenCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_TOKEN_COUNT;
}

/** The error for a count that is not one (built only then: the check runs for every field). */
export function badTokenCount(v: unknown, what: string): TallyError {
  const got = typeof v === 'number' ? String(v) : JSON.stringify(v)?.slice(0, 40);
  return new TallyError(
    'invalid_usage',
    `${what} must be a non-negative whole number of tokens, at most ${MAX_TOKEN_COUNT} (got ${got}).`,
  );
}

/** Sums of counts (Anthropic's input is input_tokens plus cache reads and writes) obey the same bound. */
export function checkUnitUsage(u: UnitUsage): UnitUsage {
  for (const k in u) {
    if (u[k]! > MAX_TOKEN_COUNT) {
      throw new TallyError(
        'invalid_usage',
        `The usage adds up to ${u[k]} ${k}, more than ${MAX_TOKEN_COUNT}.`,
      );
    }
  }
  return u;
}

/** Unit usage to the normalised token counts stored on every call (OTel GenAI meaning). */
export function unitUsageToTokens(u: UnitUsage): Tokens {
  const cw5 = u['cache_write_5m_tokens'] ?? 0;
  const cw1h = u['cache_write_1h_tokens'] ?? 0;
  return {
    input: u['input_tokens'] ?? 0,
    output: u['output_tokens'] ?? 0,
    cache_read: u['cache_read_tokens'] ?? 0,
    cache_write: u['cache_write_tokens'] ?? cw5 + cw1h,
    cache_write_1h: cw1h,
    reasoning: u['output_reasoning_tokens'] ?? 0,
    input_audio: u['input_audio_tokens'] ?? 0,
    output_audio: u['output_audio_tokens'] ?? 0,
    cache_audio_read: u['cache_audio_read_tokens'] ?? 0,
    web_searches: u['web_searches'] ?? 0,
    file_searches: u['storage_searches'] ?? 0,
    code_containers: hostedCount(u, CODE_CONTAINER_CALLS),
    image_generations: u['image_generations'] ?? 0,
    characters: u['input_characters'] ?? 0,
    audio_seconds: u['input_audio_seconds'] ?? 0,
  };
}

/** Normalised tokens (as sent to the ingest API) to unit usage for pricing, each count checked. */
export function tokensToUnitUsage(t: Partial<Tokens>): UnitUsage {
  const n = (k: keyof Tokens) => {
    const v = t[k];
    if (v === undefined) return 0;
    if (!isTokenCount(v)) throw badTokenCount(v, `tokens.${k}`);
    return v;
  };
  return {
    input_tokens: n('input'),
    output_tokens: n('output'),
    cache_read_tokens: n('cache_read'),
    cache_write_tokens: n('cache_write'),
    cache_write_1h_tokens: n('cache_write_1h'),
    output_reasoning_tokens: n('reasoning'),
    input_audio_tokens: n('input_audio'),
    output_audio_tokens: n('output_audio'),
    cache_audio_read_tokens: n('cache_audio_read'),
    web_searches: n('web_searches'),
    storage_searches: n('file_searches'),
    // Stored counts do not keep a container's size: they are the default's.
    code_containers: n('code_containers'),
    image_generations: n('image_generations'),
    input_characters: n('characters'),
    input_audio_seconds: n('audio_seconds'),
  };
}
