import type { RateBucket, RateResult } from './shared-state.js';

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
    requests: b.rpm
      ? {
          limit: b.rpm,
          remaining: Math.max(0, Math.floor(rLevel)),
          resetMs: Math.ceil(((b.rpm - rLevel) * 60_000) / b.rpm),
        }
      : null,
    tokens: b.tpm
      ? {
          limit: b.tpm,
          remaining: Math.max(0, Math.floor(tLevel)),
          resetMs: Math.ceil(((b.tpm - tLevel) * 60_000) / b.tpm),
        }
      : null,
  };
}
