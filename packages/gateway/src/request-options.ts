import type { IncomingHttpHeaders } from 'node:http';
import { badRequest, type GatewayError } from './replies.js';
import { type Attempt, isStandIn } from './router.js';

/** The most a request may ask to be tried again, as a route's `retries`. */
export const MAX_RETRIES = 10;
/** The longest per-attempt timeout a request may ask for: an hour. */
export const MAX_TIMEOUT_MS = 3_600_000;
/** The most fallback models a request may name. */
export const MAX_FALLBACKS = 5;

/**
 * What a model call's own headers ask of its routing, over its route's and the gateway's settings:
 * - `x-tally-retries`: how many times each upstream of the plan is tried again (0 to 10);
 * - `x-tally-timeout-ms`: each attempt's timeout (the wait for the answer, and between two chunks
 *   of it), in ms;
 * - `x-tally-fallbacks`: models to try, in order, after the route's own (`a,b`).
 */
export interface RequestOptions {
  retries?: number;
  timeoutMs?: number;
  fallbacks?: string[];
}

function one(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v.join(',') : v;
}

function wholeNumber(raw: string, name: string, min: number, max: number): number | GatewayError {
  const s = raw.trim();
  const n = /^\d{1,10}$/.test(s) ? Number(s) : Number.NaN;
  if (Number.isInteger(n) && n >= min && n <= max) return n;
  return badRequest(
    `The ${name} header must be a whole number from ${min} to ${max}; it is ${JSON.stringify(raw.slice(0, 40))}.`,
    'invalid_header',
  );
}

/**
 * The routing a request's headers ask for: null when it asks none (most calls: three header
 * lookups), or the refusal of a header that is not well formed (400 `invalid_header`).
 * `validModel` says whether a fallback is a model name.
 */
export function requestOptions(
  h: IncomingHttpHeaders,
  validModel: (model: string) => boolean,
): RequestOptions | GatewayError | null {
  const retries = one(h, 'x-tally-retries');
  const timeout = one(h, 'x-tally-timeout-ms');
  const fallbacks = one(h, 'x-tally-fallbacks');
  if (retries === undefined && timeout === undefined && fallbacks === undefined) return null;
  const out: RequestOptions = {};
  if (retries !== undefined) {
    const n = wholeNumber(retries, 'x-tally-retries', 0, MAX_RETRIES);
    if (typeof n !== 'number') return n;
    out.retries = n;
  }
  if (timeout !== undefined) {
    const n = wholeNumber(timeout, 'x-tally-timeout-ms', 1, MAX_TIMEOUT_MS);
    if (typeof n !== 'number') return n;
    out.timeoutMs = n;
  }
  if (fallbacks !== undefined) {
    const models = fallbacks
      .split(',')
      .map((m) => m.trim())
      .filter((m) => m !== '');
    if (models.length === 0 || models.length > MAX_FALLBACKS || !models.every(validModel))
      return badRequest(
        `The x-tally-fallbacks header must name 1 to ${MAX_FALLBACKS} models, separated by commas.`,
        'invalid_header',
      );
    out.fallbacks = models;
  }
  return out;
}

/**
 * A plan with a request's own fallbacks: their attempts (each model's plan, its stand-ins left
 * out) after the plan's own and before its stand-ins, which stay last. An upstream and model the
 * plan already tries is not tried twice.
 */
export function withFallbacks(planned: Attempt[], fallbacks: Attempt[][]): Attempt[] {
  const own = planned.filter((a) => !isStandIn(a));
  const seen = new Set(own.map((a) => `${a.provider.id}\n${a.model}`));
  for (const plan of fallbacks) {
    for (const a of plan) {
      const id = `${a.provider.id}\n${a.model}`;
      if (isStandIn(a) || seen.has(id)) continue;
      seen.add(id);
      own.push({ ...a, tier: 'fallback' });
    }
  }
  for (const a of planned) if (isStandIn(a)) own.push(a);
  return own;
}

/** A plan's attempts with a request's retries and timeout over their own. */
export function withTries(planned: Attempt[], options: RequestOptions): Attempt[] {
  if (options.retries === undefined && options.timeoutMs === undefined) return planned;
  return planned.map((a) => {
    const b: Attempt = { ...a };
    if (options.retries !== undefined) b.retries = options.retries;
    if (options.timeoutMs !== undefined) b.timeoutMs = options.timeoutMs;
    return b;
  });
}
