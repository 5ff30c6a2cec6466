import { type CallRecord, nanoToUsd, TallyError, usdToNano } from '@tally/core';
import type { SpendRow } from '@tally/store';

const usd = (n: bigint | null): string | null => (n === null ? null : nanoToUsd(n));

/** A call as the API shows it: ISO time, USD decimal strings. */
export function callToJson(c: CallRecord): Record<string, unknown> {
  return {
    id: c.id,
    request_id: c.request_id,
    time: new Date(c.time).toISOString(),
    project: c.project,
    team: c.team,
    user: c.user,
    use_case: c.use_case,
    task_id: c.task_id,
    key_id: c.key_id,
    tags: c.tags,
    provider: c.provider,
    api: c.api,
    model_requested: c.model_requested,
    model_served: c.model_served,
    tokens: c.tokens,
    cost_usd: usd(c.cost_effective_nano),
    list_cost_usd: usd(c.cost_list_nano),
    pricing_status: c.pricing_status,
    price_version: c.price_version,
    latency_ms: c.latency_ms,
    ttft_ms: c.ttft_ms,
    status: c.status,
    error_type: c.error_type,
    cache: c.cache,
    route: { tier: c.route_tier, fallback_hops: c.fallback_hops },
    saved_usd: nanoToUsd(c.saved_nano),
  };
}

export function spendRowToJson(r: SpendRow, groupBy: string | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (groupBy) out[groupBy] = r.group ?? null;
  if (r.bucket !== undefined) out['bucket'] = new Date(r.bucket).toISOString();
  out['cost_usd'] = nanoToUsd(r.cost_effective_nano);
  out['list_cost_usd'] = nanoToUsd(r.cost_list_nano);
  out['calls'] = r.calls;
  out['unpriced_calls'] = r.unpriced_calls;
  out['refused_calls'] = r.refused_calls;
  out['estimated_calls'] = r.estimated_calls;
  out['input_tokens'] = r.input_tokens;
  out['output_tokens'] = r.output_tokens;
  out['cache_read_tokens'] = r.cache_read_tokens;
  out['saved_usd'] = nanoToUsd(r.saved_nano);
  return out;
}

/** The times a query may name: from the year 1 to the end of 9999, as RFC 3339 writes them. The
 * store keeps microseconds in 64 bits, so an epoch-ms value far past these cannot be compared. */
const FIRST_TIME = -62_135_596_800_000;
const LAST_TIME = 253_402_300_799_999;

/** A query-string time: RFC 3339 or epoch milliseconds. */
export function parseTimeParam(name: string, v: unknown): number | undefined {
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string') throw new TallyError('invalid_query', `${name} must be given once.`);
  const t = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(t)) {
    throw new TallyError('invalid_query', `${name} must be an RFC 3339 time or epoch milliseconds.`);
  }
  if (t < FIRST_TIME || t > LAST_TIME) {
    throw new TallyError(
      'invalid_query',
      `${name} must be a time from 0001-01-01 to 9999-12-31 (epoch milliseconds up to ${LAST_TIME}).`,
    );
  }
  return t;
}

export function stringParam(name: string, v: unknown): string | undefined {
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string') throw new TallyError('invalid_query', `${name} must be given once.`);
  return v;
}

export function enumParam<T extends string>(name: string, v: unknown, values: readonly T[]): T | undefined {
  const s = stringParam(name, v);
  if (s === undefined) return undefined;
  if (!(values as readonly string[]).includes(s)) {
    throw new TallyError('invalid_query', `${name} must be one of ${values.join(', ')}.`);
  }
  return s as T;
}

/** Refuses a body field the route does not take: a misspelt one would otherwise go unnoticed, and a
 * key, say, be made without the limit it was meant to have. */
export function refuseUnknownFields(
  body: Record<string, unknown>,
  fields: readonly string[],
  what: string,
): void {
  const unknown = Object.keys(body).filter((f) => !fields.includes(f));
  if (unknown.length > 0) {
    throw new TallyError(
      'invalid_request',
      `Unknown field${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}: ${what} takes ${fields.join(', ')}.`,
    );
  }
}

/** The largest budget a key or a budget may have: a billion dollars (1e18 nano-dollars), inside
 * the store's 64-bit amounts. */
const MAX_BUDGET_NANO = 10n ** 18n;

/** A list of models, as a key or a budget names them: names, or patterns where `*` is any run of
 * characters (model-allow.ts). */
export function modelList(value: unknown): string[] {
  if (!Array.isArray(value) || value.some((m) => typeof m !== 'string' || m === '')) {
    throw new TallyError(
      'invalid_request',
      'models must be an array of model names (or patterns, such as gpt-4o*).',
    );
  }
  return value as string[];
}

/** A budget's limit, in nano-dollars, from a USD amount (a string or a number). */
export function budgetLimit(field: string, value: unknown, example: string): bigint {
  let nano: bigint;
  try {
    nano = usdToNano(String(value));
  } catch {
    throw new TallyError('invalid_request', `${field} must be a USD amount such as ${example}.`);
  }
  if (nano <= 0n)
    throw new TallyError('invalid_request', `${field} must be positive, and at least 0.000000001.`);
  if (nano > MAX_BUDGET_NANO) throw new TallyError('invalid_request', `${field} must be at most 1000000000.`);
  return nano;
}

/** A positive 32-bit integer field (rpm, tpm), or null when absent or null. */
export function optPositiveInt(body: Record<string, unknown>, field: string): number | null {
  const v = body[field];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0 || v > 2_147_483_647) {
    throw new TallyError('invalid_request', `${field} must be a positive integer below 2^31.`);
  }
  return v;
}
