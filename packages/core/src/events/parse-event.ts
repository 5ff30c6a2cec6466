import {
  type CallRecord,
  type HumanKind,
  type Outcome,
  TASK_EVENT_TYPES,
  type TaskEventRecord,
  type Tokens,
  ZERO_TOKENS,
} from '../model.js';
import { usdToNano } from '../money.js';
import { HOSTED_TOOL_CALLS, type HostedToolCalls, isHostedToolCall, type Pricer } from '../pricing/types.js';
import {
  FieldError,
  isObject,
  type Json,
  optBoolean,
  optEnum,
  optNumber,
  optString,
  optStringArray,
  optTags,
  reqEnum,
  reqString,
  reqTime,
} from './wire.js';

export const EVENT_TYPES = ['llm.call', ...TASK_EVENT_TYPES] as const;

export type ParsedEvent = { kind: 'call'; record: CallRecord } | { kind: 'task'; record: TaskEventRecord };

export interface ParseContext {
  tenant: string;
  price: Pricer;
}

const OUTCOMES: readonly Outcome[] = ['success', 'failure', 'abandoned'];
const HUMAN_KINDS: readonly HumanKind[] = ['review', 'edit', 'override', 'escalation'];
const TOKEN_FIELDS = Object.keys(ZERO_TOKENS) as (keyof Tokens)[];

/** Turns one wire event into a record. Throws FieldError naming the field at fault. */
export function parseEvent(raw: unknown, ctx: ParseContext): ParsedEvent {
  if (!isObject(raw)) throw new FieldError('event', 'must be an object');
  const type = reqEnum(raw, 'type', EVENT_TYPES);
  const id = reqString(raw, 'id', 128);
  const time = reqTime(raw, 'time');
  if (type === 'llm.call') return { kind: 'call', record: parseCall(raw, id, time, ctx) };
  return { kind: 'task', record: parseTask(raw, type, id, time, ctx.tenant) };
}

function parseTokens(raw: unknown): Partial<Tokens> {
  if (!isObject(raw)) throw new FieldError('tokens', 'must be an object');
  const out: Partial<Tokens> = {};
  for (const k in raw) {
    if (!(TOKEN_FIELDS as string[]).includes(k)) throw new FieldError(`tokens.${k}`, 'is not a token field');
    const v = raw[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      throw new FieldError(`tokens.${k}`, 'must be a non-negative integer');
    }
    out[k as keyof Tokens] = v;
  }
  return out;
}

/** The hosted tool calls billed per call that a call's usage does not count (PriceInput.tool_calls). */
function parseToolCalls(raw: unknown): HostedToolCalls | null {
  if (raw === undefined || raw === null) return null;
  if (!isObject(raw)) throw new FieldError('tool_calls', 'must be an object of counts');
  const out: HostedToolCalls = {};
  for (const k in raw) {
    if (!isHostedToolCall(k))
      throw new FieldError(`tool_calls.${k}`, `is not a hosted tool call: ${HOSTED_TOOL_CALLS.join(', ')}`);
    const v = raw[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
      throw new FieldError(`tool_calls.${k}`, 'must be a non-negative integer');
    out[k] = v;
  }
  return out;
}

function parseCall(raw: Json, id: string, time: number, ctx: ParseContext): CallRecord {
  const provider = reqString(raw, 'provider', 64);
  const model = reqString(raw, 'model', 256);
  const api = optString(raw, 'api', 64);
  const usage = raw['usage'];
  const tokensRaw = raw['tokens'];
  if (usage !== undefined && usage !== null && !isObject(usage)) {
    throw new FieldError('usage', 'must be the provider usage object');
  }
  const tokens = tokensRaw === undefined || tokensRaw === null ? null : parseTokens(tokensRaw);
  if (!isObject(usage) && tokens === null)
    throw new FieldError('usage', 'either usage or tokens is required');
  const toolCalls = parseToolCalls(raw['tool_calls']);
  const costRaw = raw['cost_usd'];
  let billedNano: bigint | null = null;
  if (costRaw !== undefined && costRaw !== null) {
    if (typeof costRaw !== 'string') throw new FieldError('cost_usd', 'must be a USD decimal string');
    try {
      billedNano = usdToNano(costRaw);
    } catch {
      throw new FieldError('cost_usd', 'must be a USD decimal string such as "0.0123"');
    }
    if (billedNano < 0n) throw new FieldError('cost_usd', 'must not be negative');
  }
  const savedRaw = optString(raw, 'saved_usd', 64);
  let savedNano = 0n;
  if (savedRaw !== null) {
    try {
      savedNano = usdToNano(savedRaw);
    } catch {
      throw new FieldError('saved_usd', 'must be a USD decimal string');
    }
  }

  let outcome: ReturnType<Pricer>;
  try {
    outcome = ctx.price({
      provider,
      api,
      model,
      usage: isObject(usage) ? usage : undefined,
      tokens,
      time,
      tenant: ctx.tenant,
      tool_calls: toolCalls,
    });
  } catch (err) {
    // Malformed usage is the sender's fault: name the field instead of failing the batch.
    throw new FieldError('usage', err instanceof Error ? err.message : String(err));
  }
  const priced = outcome.status === 'priced' ? outcome : null;
  const status = optEnum(raw, 'status', ['ok', 'error'] as const) ?? 'ok';
  return {
    id,
    time,
    tenant: ctx.tenant,
    project: optString(raw, 'project'),
    team: optString(raw, 'team'),
    user: optString(raw, 'user'),
    use_case: optString(raw, 'use_case'),
    task_id: optString(raw, 'task_id'),
    key_id: optString(raw, 'key_id'),
    tags: optTags(raw, 'tags'),
    provider,
    api: api ?? 'unknown',
    model_requested: model,
    model_served: optString(raw, 'model_served') ?? priced?.model ?? null,
    tokens: outcome.tokens ?? { ...ZERO_TOKENS, ...tokens },
    cost_list_nano: priced?.listNano ?? null,
    cost_effective_nano: billedNano ?? priced?.effectiveNano ?? null,
    pricing_status: optBoolean(raw, 'estimated')
      ? 'estimated'
      : priced !== null || billedNano !== null
        ? 'priced'
        : 'unpriced',
    price_version: outcome.version,
    latency_ms: optNumber(raw, 'latency_ms'),
    ttft_ms: optNumber(raw, 'ttft_ms'),
    status,
    error_type: optString(raw, 'error_type', 128),
    cache: optEnum(raw, 'cache', ['miss', 'exact', 'semantic'] as const) ?? 'miss',
    route_tier: optString(raw, 'route_tier', 64),
    fallback_hops: optNumber(raw, 'fallback_hops') ?? 0,
    saved_nano: savedNano,
    request_id: optString(raw, 'request_id'),
  };
}

function parseTask(
  raw: Json,
  type: TaskEventRecord['type'],
  id: string,
  time: number,
  tenant: string,
): TaskEventRecord {
  const rec: TaskEventRecord = {
    id,
    type,
    time,
    tenant,
    use_case: reqString(raw, 'use_case', 128),
    task_id: reqString(raw, 'task_id', 256),
    user: optString(raw, 'user'),
    team: optString(raw, 'team'),
    arm: null,
    covariate: null,
    call_ids: [],
    outcome: null,
    handling_seconds: null,
    value_nano: null,
    kind: null,
    seconds: null,
    pass: null,
    score: null,
    reviewer: null,
    reason: null,
  };
  switch (type) {
    case 'task.eligible':
      rec.arm = reqEnum(raw, 'arm', ['ai', 'holdout'] as const);
      rec.covariate = optNumber(raw, 'covariate', Number.NEGATIVE_INFINITY);
      break;
    case 'task.ai_used':
      rec.call_ids = optStringArray(raw, 'call_ids');
      break;
    case 'task.completed': {
      rec.outcome = reqEnum(raw, 'outcome', OUTCOMES);
      rec.handling_seconds = optNumber(raw, 'handling_seconds');
      const value = optString(raw, 'value_usd', 64);
      if (value !== null) {
        try {
          rec.value_nano = usdToNano(value);
        } catch {
          throw new FieldError('value_usd', 'must be a USD decimal string such as "12.50"');
        }
      }
      break;
    }
    case 'task.human': {
      rec.kind = reqEnum(raw, 'kind', HUMAN_KINDS);
      const seconds = optNumber(raw, 'seconds');
      if (seconds === null) throw new FieldError('seconds', 'is required');
      rec.seconds = seconds;
      break;
    }
    case 'task.quality': {
      rec.pass = optBoolean(raw, 'pass');
      rec.score = optNumber(raw, 'score', Number.NEGATIVE_INFINITY);
      if (rec.pass === null && rec.score === null) throw new FieldError('pass', 'pass or score is required');
      rec.reviewer = optString(raw, 'reviewer');
      break;
    }
    case 'task.opt_out':
      rec.reason = optString(raw, 'reason', 1024);
      break;
  }
  return rec;
}
