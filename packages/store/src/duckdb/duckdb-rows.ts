import type { DuckDBValue } from '@duckdb/node-api';
import type {
  Arm,
  CacheStatus,
  CallRecord,
  CallStatus,
  HumanKind,
  Outcome,
  PricingStatus,
  TaskEventRecord,
  TaskEventType,
} from '@tally/core';
import {
  big,
  bigOrNull,
  boolOrNull,
  json,
  num,
  numOrNull,
  type Row,
  str,
  strOrNull,
  ts,
} from './duckdb-values.js';

/** A table's columns in schema order, with how each is read off a record for the appender. */
export interface TableColumns<R> {
  readonly table: string;
  readonly names: readonly string[];
  readonly values: readonly ((r: R) => DuckDBValue)[];
  /** The SELECT list that reads the record back (times as epoch milliseconds). */
  readonly select: string;
}

function tableColumns<R>(
  table: string,
  spec: ReadonlyArray<readonly [string, (r: R) => DuckDBValue]>,
  times: readonly string[],
): TableColumns<R> {
  const names = spec.map(([n]) => n);
  const select = names.map((n) => (times.includes(n) ? `epoch_ms(${n}) AS ${n}` : `"${n}"`)).join(', ');
  return { table, names, values: spec.map(([, v]) => v), select };
}

export const CALL_COLUMNS = tableColumns<CallRecord>(
  'calls',
  [
    ['tenant', (c) => c.tenant],
    ['id', (c) => c.id],
    ['time', (c) => ts(c.time)],
    ['project', (c) => c.project],
    ['team', (c) => c.team],
    ['user', (c) => c.user],
    ['use_case', (c) => c.use_case],
    ['task_id', (c) => c.task_id],
    ['key_id', (c) => c.key_id],
    ['tags', (c) => JSON.stringify(c.tags)],
    ['provider', (c) => c.provider],
    ['api', (c) => c.api],
    ['model_requested', (c) => c.model_requested],
    ['model_served', (c) => c.model_served],
    ['input_tokens', (c) => c.tokens.input],
    ['output_tokens', (c) => c.tokens.output],
    ['cache_read_tokens', (c) => c.tokens.cache_read],
    ['cache_write_tokens', (c) => c.tokens.cache_write],
    ['cache_write_1h_tokens', (c) => c.tokens.cache_write_1h],
    ['reasoning_tokens', (c) => c.tokens.reasoning],
    ['input_audio_tokens', (c) => c.tokens.input_audio],
    ['output_audio_tokens', (c) => c.tokens.output_audio],
    ['cache_audio_read_tokens', (c) => c.tokens.cache_audio_read],
    ['web_searches', (c) => c.tokens.web_searches],
    ['cost_list_nano', (c) => c.cost_list_nano],
    ['cost_effective_nano', (c) => c.cost_effective_nano],
    ['pricing_status', (c) => c.pricing_status],
    ['price_version', (c) => c.price_version],
    ['latency_ms', (c) => c.latency_ms],
    ['ttft_ms', (c) => c.ttft_ms],
    ['status', (c) => c.status],
    ['error_type', (c) => c.error_type],
    ['cache', (c) => c.cache],
    ['route_tier', (c) => c.route_tier],
    ['fallback_hops', (c) => c.fallback_hops],
    ['saved_nano', (c) => c.saved_nano],
    ['request_id', (c) => c.request_id],
    ['file_searches', (c) => c.tokens.file_searches],
    ['code_containers', (c) => c.tokens.code_containers],
    ['image_generations', (c) => c.tokens.image_generations],
    ['characters', (c) => c.tokens.characters],
    ['audio_seconds', (c) => c.tokens.audio_seconds],
  ],
  ['time'],
);

export const TASK_COLUMNS = tableColumns<TaskEventRecord>(
  'task_events',
  [
    ['tenant', (t) => t.tenant],
    ['id', (t) => t.id],
    ['type', (t) => t.type],
    ['time', (t) => ts(t.time)],
    ['use_case', (t) => t.use_case],
    ['task_id', (t) => t.task_id],
    ['user', (t) => t.user],
    ['team', (t) => t.team],
    ['arm', (t) => t.arm],
    ['covariate', (t) => t.covariate],
    ['call_ids', (t) => JSON.stringify(t.call_ids)],
    ['outcome', (t) => t.outcome],
    ['handling_seconds', (t) => t.handling_seconds],
    ['value_nano', (t) => t.value_nano],
    ['kind', (t) => t.kind],
    ['seconds', (t) => t.seconds],
    ['pass', (t) => t.pass],
    ['score', (t) => t.score],
    ['reviewer', (t) => t.reviewer],
    ['reason', (t) => t.reason],
  ],
  ['time'],
);

/** The identity of a stored row, to look retried rows up by. */
export const KEY_COLUMNS = tableColumns<{ tenant: string; id: string; time: number }>(
  'stage_keys',
  [
    ['tenant', (r) => r.tenant],
    ['id', (r) => r.id],
    ['time', (r) => ts(r.time)],
  ],
  ['time'],
);

export function callFromRow(r: Row): CallRecord {
  return {
    id: str(r, 'id'),
    time: num(r, 'time'),
    tenant: str(r, 'tenant'),
    project: strOrNull(r, 'project'),
    team: strOrNull(r, 'team'),
    user: strOrNull(r, 'user'),
    use_case: strOrNull(r, 'use_case'),
    task_id: strOrNull(r, 'task_id'),
    key_id: strOrNull(r, 'key_id'),
    tags: json<Record<string, string>>(r, 'tags'),
    provider: str(r, 'provider'),
    api: str(r, 'api'),
    model_requested: str(r, 'model_requested'),
    model_served: strOrNull(r, 'model_served'),
    tokens: {
      input: num(r, 'input_tokens'),
      output: num(r, 'output_tokens'),
      cache_read: num(r, 'cache_read_tokens'),
      cache_write: num(r, 'cache_write_tokens'),
      cache_write_1h: num(r, 'cache_write_1h_tokens'),
      reasoning: num(r, 'reasoning_tokens'),
      input_audio: num(r, 'input_audio_tokens'),
      output_audio: num(r, 'output_audio_tokens'),
      cache_audio_read: num(r, 'cache_audio_read_tokens'),
      web_searches: num(r, 'web_searches'),
      file_searches: numOrNull(r, 'file_searches') ?? 0,
      code_containers: numOrNull(r, 'code_containers') ?? 0,
      image_generations: numOrNull(r, 'image_generations') ?? 0,
      characters: numOrNull(r, 'characters') ?? 0,
      audio_seconds: numOrNull(r, 'audio_seconds') ?? 0,
    },
    cost_list_nano: bigOrNull(r, 'cost_list_nano'),
    cost_effective_nano: bigOrNull(r, 'cost_effective_nano'),
    pricing_status: str(r, 'pricing_status') as PricingStatus,
    price_version: strOrNull(r, 'price_version'),
    latency_ms: numOrNull(r, 'latency_ms'),
    ttft_ms: numOrNull(r, 'ttft_ms'),
    status: str(r, 'status') as CallStatus,
    error_type: strOrNull(r, 'error_type'),
    cache: str(r, 'cache') as CacheStatus,
    route_tier: strOrNull(r, 'route_tier'),
    fallback_hops: num(r, 'fallback_hops'),
    saved_nano: big(r, 'saved_nano'),
    request_id: strOrNull(r, 'request_id'),
  };
}

export function taskFromRow(r: Row): TaskEventRecord {
  return {
    id: str(r, 'id'),
    type: str(r, 'type') as TaskEventType,
    time: num(r, 'time'),
    tenant: str(r, 'tenant'),
    use_case: str(r, 'use_case'),
    task_id: str(r, 'task_id'),
    user: strOrNull(r, 'user'),
    team: strOrNull(r, 'team'),
    arm: strOrNull(r, 'arm') as Arm | null,
    covariate: numOrNull(r, 'covariate'),
    call_ids: json<string[]>(r, 'call_ids'),
    outcome: strOrNull(r, 'outcome') as Outcome | null,
    handling_seconds: numOrNull(r, 'handling_seconds'),
    value_nano: bigOrNull(r, 'value_nano'),
    kind: strOrNull(r, 'kind') as HumanKind | null,
    seconds: numOrNull(r, 'seconds'),
    pass: boolOrNull(r, 'pass'),
    score: numOrNull(r, 'score'),
    reviewer: strOrNull(r, 'reviewer'),
    reason: strOrNull(r, 'reason'),
  };
}

/** A task whose rollup must be recomputed. */
export interface DirtyTask {
  tenant: string;
  use_case: string;
  task_id: string;
}

export const DIRTY_COLUMNS = tableColumns<DirtyTask>(
  'task_rollup_dirty',
  [
    ['tenant', (r) => r.tenant],
    ['use_case', (r) => r.use_case],
    ['task_id', (r) => r.task_id],
  ],
  [],
);

/** The tasks a batch touches: its task events, and its calls that carry a use case and a task. */
export function dirtyTasks(calls: readonly CallRecord[], tasks: readonly TaskEventRecord[]): DirtyTask[] {
  const out: DirtyTask[] = [];
  for (const t of tasks) out.push({ tenant: t.tenant, use_case: t.use_case, task_id: t.task_id });
  for (const c of calls) {
    if (c.use_case !== null && c.task_id !== null)
      out.push({ tenant: c.tenant, use_case: c.use_case, task_id: c.task_id });
  }
  return out;
}
