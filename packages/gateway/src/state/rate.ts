import type { RateBucket, RateResult } from './shared-state.js';

/** A token bucket's level as last written, and when. */
export interface Bucket {
  level: number;
  at: number;
}

/** Tokens refill continuously at limit per minute, up to the limit. */
export function refill(b: Bucket, limit: number, now: number): number {
  const elapsed = Math.max(0, now - b.at);
  return Math.min(limit, b.level + (elapsed * limit) / 60_000);
}

/** Whether a bucket pair at these levels takes a request of `tokens`, and if not, which limit
 * refuses it and when it could go. The same rule as the Redis script's. */
export interface RateVerdict {
  ok: boolean;
  limited: 'requests' | 'tokens' | null;
  retryAfterMs: number;
}

export const OK: RateVerdict = Object.freeze({ ok: true, limited: null, retryAfterMs: 0 });

export function rateVerdict(b: RateBucket, rLevel: number, tLevel: number, tokens: number): RateVerdict {
  if (b.rpm && rLevel < 1)
    return { ok: false, limited: 'requests', retryAfterMs: Math.ceil(((1 - rLevel) * 60_000) / b.rpm) };
  // A request larger than the whole limit waits for a full bucket, not for ever.
  const want = b.tpm ? Math.min(tokens, b.tpm) : 0;
  if (b.tpm && tLevel < want)
    return { ok: false, limited: 'tokens', retryAfterMs: Math.ceil(((want - tLevel) * 60_000) / b.tpm) };
  return OK;
}

/** A bucket pair's result once the levels are written: where each limit stands. */
export function rateResult(b: RateBucket, v: RateVerdict, rLevel: number, tLevel: number): RateResult {
  return {
    ok: v.ok,
    limited: v.limited,
    retryAfterMs: v.retryAfterMs,
    requests: b.rpm ? standing(b.rpm, rLevel) : null,
    tokens: b.tpm ? standing(b.tpm, tLevel) : null,
  };
}

/** One limit's standing at a level: what is left, and how long until the bucket is full. */
function standing(limit: number, level: number): NonNullable<RateResult['requests']> {
  return {
    limit,
    remaining: Math.max(0, Math.floor(level)),
    resetMs: Math.ceil(((limit - level) * 60_000) / limit),
  };
}
