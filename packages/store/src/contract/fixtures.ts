import { randomUUID } from 'node:crypto';
import { type CallRecord, type TaskEventRecord, ZERO_TOKENS } from '@tally/core';
import type { BudgetRecord, KeyRecord, LedgerEntry, UseCaseRecord } from '../store.js';

/** 2026-11-01T12:00:00Z, a Sunday: the day US daylight saving time ends. */
export const T0 = Date.UTC(2026, 10, 1, 12);
export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

/** Each test works in tenants of its own, so the suite also runs against a shared database. */
export function newTenant(label = 't'): string {
  return `${label}-${randomUUID()}`;
}

export function makeCall(tenant: string, id: string, over: Partial<CallRecord> = {}): CallRecord {
  return {
    id,
    time: T0,
    tenant,
    project: 'support',
    team: 'cx',
    user: 'u-17',
    use_case: 'triage',
    task_id: 'T-9',
    key_id: 'key-1',
    tags: { env: 'prod' },
    provider: 'openai',
    api: 'openai-chat',
    model_requested: 'gpt-4o',
    model_served: 'gpt-4o-2024-08-06',
    tokens: { ...ZERO_TOKENS, input: 1000, output: 100, cache_read: 200 },
    cost_list_nano: 3_500_000n,
    cost_effective_nano: 3_000_000n,
    pricing_status: 'priced',
    price_version: '2026-11-01',
    latency_ms: 850,
    ttft_ms: 120,
    status: 'ok',
    error_type: null,
    cache: 'miss',
    route_tier: null,
    fallback_hops: 0,
    saved_nano: 0n,
    request_id: null,
    ...over,
  };
}

/** A call with every nullable field null. */
export function makeBareCall(tenant: string, id: string): CallRecord {
  return makeCall(tenant, id, {
    project: null,
    team: null,
    user: null,
    use_case: null,
    task_id: null,
    key_id: null,
    tags: {},
    model_served: null,
    cost_list_nano: null,
    cost_effective_nano: null,
    pricing_status: 'unpriced',
    price_version: null,
    latency_ms: null,
    ttft_ms: null,
    error_type: null,
    route_tier: null,
  });
}

export function makeTask(tenant: string, id: string, over: Partial<TaskEventRecord> = {}): TaskEventRecord {
  return {
    id,
    type: 'task.completed',
    time: T0,
    tenant,
    use_case: 'triage',
    task_id: 'T-9',
    user: null,
    team: null,
    arm: null,
    covariate: null,
    call_ids: [],
    outcome: 'success',
    handling_seconds: 240,
    value_nano: 12_500_000_000n,
    kind: null,
    seconds: null,
    pass: null,
    score: null,
    reviewer: null,
    reason: null,
    ...over,
  };
}

export function makeUseCase(tenant: string, id: string, over: Partial<UseCaseRecord> = {}): UseCaseRecord {
  return {
    tenant,
    id,
    name: `Use case ${id}`,
    department: 'Support',
    stage: 'pilot',
    spec: { owners: { product: 'Ana' }, baseline: { cost_per_task_usd: '4.10', monthly_volume: 12000 } },
    created_at: T0,
    updated_at: T0,
    ...over,
  };
}

export function makeLedgerEntry(tenant: string, id: string, over: Partial<LedgerEntry> = {}): LedgerEntry {
  return {
    tenant,
    id,
    use_case: 'triage',
    month: '2026-11',
    category: 'infrastructure',
    amount_nano: 1_200_000_000_000n,
    note: null,
    created_at: T0,
    ...over,
  };
}

export function makeBudget(tenant: string, id: string, over: Partial<BudgetRecord> = {}): BudgetRecord {
  return {
    tenant,
    id,
    scope: 'project',
    subject: 'support',
    limit_nano: 500_000_000_000n,
    period: 'month',
    time_zone: 'Europe/Paris',
    thresholds: [0.5, 0.8, 1],
    action: 'alert',
    downgrade_model: null,
    models: [],
    created_at: T0,
    ...over,
  };
}

export function makeKey(tenant: string, id: string, over: Partial<KeyRecord> = {}): KeyRecord {
  return {
    tenant,
    id,
    hash: randomUUID().replaceAll('-', '').repeat(2),
    prefix: 'tk-abc',
    role: 'virtual',
    name: null,
    tags: {},
    project: 'support',
    team: null,
    user: null,
    models: ['gpt-4o', 'gpt-4o-mini'],
    rpm: 600,
    tpm: null,
    max_parallel: null,
    budget_id: null,
    created_at: T0,
    expires_at: null,
    revoked_at: null,
    ...over,
  };
}

/** The order listCalls promises: time descending, then id descending. */
export function byTimeDescIdDesc(a: CallRecord, b: CallRecord): number {
  if (a.time !== b.time) return b.time - a.time;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}
