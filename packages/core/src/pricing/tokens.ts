import type { Tokens } from '../model.js';
import type { UnitUsage } from './calc.js';

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
  };
}

/** Normalised tokens (as sent to the ingest API) to unit usage for pricing. */
export function tokensToUnitUsage(t: Partial<Tokens>): UnitUsage {
  return {
    input_tokens: t.input ?? 0,
    output_tokens: t.output ?? 0,
    cache_read_tokens: t.cache_read ?? 0,
    cache_write_tokens: t.cache_write ?? 0,
    cache_write_1h_tokens: t.cache_write_1h ?? 0,
    output_reasoning_tokens: t.reasoning ?? 0,
    input_audio_tokens: t.input_audio ?? 0,
    output_audio_tokens: t.output_audio ?? 0,
    cache_audio_read_tokens: t.cache_audio_read ?? 0,
    web_searches: t.web_searches ?? 0,
  };
}
