import { CALL_STATUSES, type CallRecord } from '@tally/core';
import type { BudgetAlert, BudgetRule } from '@tally/gateway';
import { z } from 'zod';

/**
 * What a gateway replica and the server exchange as JSON: budget rules, alerts, and metered calls
 * (which a replica now sends as CSV, replica-csv.ts; the JSON form is still taken, from replicas
 * of earlier versions, and checks every call), with nano-USD amounts as decimal strings (JSON has
 * no 64-bit integers).
 */
/** The most calls one metering batch from a replica may hold. */
export const REPLICA_MAX_BATCH = 5000;

/** A call on the JSON wire. `request_id` came later than the rest (servers before it refuse a
 * call that carries it), so it is optional, and null when absent. */
export type CallWire = Omit<
  CallRecord,
  'cost_list_nano' | 'cost_effective_nano' | 'saved_nano' | 'request_id'
> & {
  cost_list_nano: string | null;
  cost_effective_nano: string | null;
  saved_nano: string;
  request_id?: string | null;
};

export function callToWire(c: CallRecord): CallWire {
  return {
    ...c,
    cost_list_nano: c.cost_list_nano === null ? null : c.cost_list_nano.toString(),
    cost_effective_nano: c.cost_effective_nano === null ? null : c.cost_effective_nano.toString(),
    saved_nano: c.saved_nano.toString(),
  };
}

const nano = z.string().regex(/^-?\d{1,20}$/, 'an integer number of nano-USD, as a string');
const count = z.number().int().min(0);
const text = z.string().max(1024);
const maybe = text.nullable();

const callSchema = z
  .object({
    id: z.string().min(1).max(256),
    time: z.number().int().min(0),
    tenant: z.string().min(1).max(256),
    project: maybe,
    team: maybe,
    user: maybe,
    use_case: maybe,
    task_id: maybe,
    key_id: maybe,
    tags: z.record(z.string(), z.string()),
    provider: text,
    api: text,
    model_requested: text,
    model_served: maybe,
    tokens: z.object({
      input: count,
      output: count,
      cache_read: count,
      cache_write: count,
      cache_write_1h: count,
      reasoning: count,
      input_audio: count,
      output_audio: count,
      cache_audio_read: count,
      web_searches: count,
      // A replica of an earlier version does not send it: it counted none.
      file_searches: count.default(0),
      code_containers: count.default(0),
      image_generations: count.default(0),
      characters: count.default(0),
      audio_seconds: count.default(0),
    }),
    cost_list_nano: nano.nullable(),
    cost_effective_nano: nano.nullable(),
    pricing_status: z.enum(['priced', 'estimated', 'unpriced']),
    price_version: maybe,
    latency_ms: z.number().min(0).nullable(),
    ttft_ms: z.number().min(0).nullable(),
    status: z.enum(CALL_STATUSES),
    error_type: maybe,
    cache: z.enum(['miss', 'exact', 'semantic']),
    route_tier: maybe,
    fallback_hops: count,
    saved_nano: nano,
    request_id: z.string().min(1).max(256).nullable().optional(),
  })
  .strict();

type Obj = Record<string, unknown>;

/** The fields of a call, request_id among them. */
const CALL_KEYS = Object.keys(callSchema.shape).length;
const TOKEN_KEYS = Object.keys(callSchema.shape.tokens.shape);
// The fields the schema gives the shared text and nullable-text types, read off the schema.
const fieldsOf = (type: unknown) =>
  Object.entries(callSchema.shape)
    .filter(([, v]) => v === type)
    .map(([k]) => k);
const TEXT_KEYS = fieldsOf(text);
const MAYBE_KEYS = fieldsOf(maybe);
const PRICING = new Set(['priced', 'estimated', 'unpriced']);
const STATUS = new Set<string>(CALL_STATUSES);
const CACHE = new Set(['miss', 'exact', 'semantic']);
const NANO = /^-?\d{1,20}$/;

const isText = (v: unknown, min: number, max: number): v is string =>
  typeof v === 'string' && v.length >= min && v.length <= max;
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isNano = (v: unknown): v is string => typeof v === 'string' && NANO.test(v);
const isMs = (v: unknown) => v === null || (typeof v === 'number' && Number.isFinite(v) && v >= 0);

/**
 * The common case, checked by hand: a call exactly as a replica sends it, every field present
 * and of its type. It runs on every metered call of every replica, where the schema costs about
 * 6 µs a call. Anything else (a missing or extra field, a wrong type) returns null and goes to
 * the schema, which gives the verdict and the message.
 */
function plainCall(raw: unknown): CallRecord | null {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return null;
  const r = raw as Obj;
  let keys = 0;
  for (const _ in r) keys++;
  const requestId = r['request_id'];
  if (keys !== (requestId === undefined ? CALL_KEYS - 1 : CALL_KEYS)) return null;
  if (requestId !== undefined && requestId !== null && !isText(requestId, 1, 256)) return null;
  if (!isText(r['id'], 1, 256) || !isText(r['tenant'], 1, 256) || !isCount(r['time'])) return null;
  for (const k of TEXT_KEYS) if (!isText(r[k], 0, 1024)) return null;
  for (const k of MAYBE_KEYS) if (r[k] !== null && !isText(r[k], 0, 1024)) return null;
  const tags = r['tags'];
  if (typeof tags !== 'object' || tags === null || Array.isArray(tags)) return null;
  for (const k in tags) if (typeof (tags as Obj)[k] !== 'string') return null;
  const t = r['tokens'];
  if (typeof t !== 'object' || t === null || Array.isArray(t)) return null;
  let tokenKeys = 0;
  for (const _ in t) tokenKeys++;
  if (tokenKeys !== TOKEN_KEYS.length) return null;
  for (const k of TOKEN_KEYS) if (!isCount((t as Obj)[k])) return null;
  const list = r['cost_list_nano'];
  const effective = r['cost_effective_nano'];
  if ((list !== null && !isNano(list)) || (effective !== null && !isNano(effective))) return null;
  if (!isNano(r['saved_nano']) || !isCount(r['fallback_hops'])) return null;
  if (!isMs(r['latency_ms']) || !isMs(r['ttft_ms'])) return null;
  if (!PRICING.has(r['pricing_status'] as string) || !STATUS.has(r['status'] as string)) return null;
  if (!CACHE.has(r['cache'] as string)) return null;
  return {
    ...(r as unknown as CallRecord),
    tags: { ...(tags as Record<string, string>) },
    tokens: { ...(t as CallRecord['tokens']) },
    cost_list_nano: list === null ? null : BigInt(list as string),
    cost_effective_nano: effective === null ? null : BigInt(effective as string),
    saved_nano: BigInt(r['saved_nano'] as string),
    request_id: (requestId as string | null | undefined) ?? null,
  };
}

/** A call from the wire, or the reason it is not one. `schemaOnly` skips the hand check (tests
 * hold the two to the same verdicts). */
export function callFromWire(raw: unknown, schemaOnly = false): CallRecord | string {
  const plain = schemaOnly ? null : plainCall(raw);
  if (plain) return plain;
  const r = callSchema.safeParse(raw);
  if (!r.success)
    return r.error.issues.map((i) => `${i.path.join('.') || '(call)'}: ${i.message}`).join('; ');
  const c = r.data;
  return {
    ...c,
    cost_list_nano: c.cost_list_nano === null ? null : BigInt(c.cost_list_nano),
    cost_effective_nano: c.cost_effective_nano === null ? null : BigInt(c.cost_effective_nano),
    saved_nano: BigInt(c.saved_nano),
    request_id: c.request_id ?? null,
  };
}

export type RuleWire = Omit<BudgetRule, 'limitNano'> & { limit_nano: string };

export function ruleToWire(r: BudgetRule): RuleWire {
  const { limitNano, ...rest } = r;
  return { ...rest, limit_nano: limitNano.toString() };
}

export function ruleFromWire(w: RuleWire): BudgetRule {
  const { limit_nano, ...rest } = w;
  return { ...rest, limitNano: BigInt(limit_nano) };
}

export const alertSchema = z
  .object({
    // Replicas of earlier versions sent threshold alerts only, without a kind.
    kind: z.enum(['budget.threshold', 'budget.exhausted']).default('budget.threshold'),
    tenant: z.string(),
    budgetId: z.string(),
    scope: z.enum(['tenant', 'project', 'team', 'user', 'key', 'tag']),
    subject: z.string(),
    threshold: z.number(),
    spentUsd: z.string(),
    limitUsd: z.string(),
    period: z.string(),
    resetsAt: z.string(),
    time: z.string(),
    reason: z.enum(['spent', 'call_exceeds_remaining']).optional(),
    remainingUsd: z.string().optional(),
    callUsd: z.string().optional(),
  })
  .strict() satisfies z.ZodType<BudgetAlert>;
