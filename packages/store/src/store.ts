import type {
  AuditSums,
  BudgetAction,
  BudgetPeriod,
  BudgetScope,
  CallRecord,
  CallStatus,
  LedgerCategory,
  OutcomeSums,
  Stage,
  TaskEventRecord,
} from '@tally/core';

/** What one durable write did. Rows whose id (within the tenant) is already stored are skipped,
 * so a retried batch is never counted twice. inserted + duplicates = the rows of the batch: a row
 * repeated within a batch is stored once, and its repeats count as duplicates. */
export interface WriteResult {
  inserted: number;
  duplicates: number;
}

export interface IngestBatch {
  calls: CallRecord[];
  tasks: TaskEventRecord[];
}

export type SortOrder = 'asc' | 'desc';

export interface CallQuery {
  tenant: string;
  from?: number;
  to?: number;
  project?: string;
  team?: string;
  user?: string;
  /** The model the call asked for (model_requested). */
  model?: string;
  provider?: string;
  use_case?: string;
  task_id?: string;
  key_id?: string;
  status?: CallStatus;
  /** The attempts of one gateway request (its first attempt's id). */
  request_id?: string;
  /** Calls whose error type starts so: `upstream_429` takes `upstream_429:insufficient_quota`. */
  error_type?: string;
  /** Calls whose tags give this key this value (TagFilter). */
  tag?: TagFilter;
  /** Opaque, from a previous page's nextCursor. */
  cursor?: string;
  limit: number;
}

export interface Page<T> {
  rows: T[];
  nextCursor: string | null;
}

/** `model` groups by the model asked for (model_requested), as the CallQuery filter does; `key` by
 * the virtual key's id. */
export const SPEND_GROUPS = ['project', 'team', 'user', 'key', 'model', 'provider', 'use_case'] as const;
export type SpendGroup = (typeof SPEND_GROUPS)[number];
export type SpendInterval = 'hour' | 'day' | 'week' | 'month';

/** A tag of the calls (their `tags`), by its key and value. */
export interface TagFilter {
  key: string;
  value: string;
}

export interface SpendQuery {
  tenant: string;
  groupBy?: SpendGroup;
  /** Groups by the value of this tag key instead (calls without it in one group, null): cost
   * allocation by the tags applications send (`x-tally-tags`). Not with groupBy. */
  groupByTag?: string;
  /** Only the calls with this tag. */
  tag?: TagFilter;
  /** Only the calls that ask for one of these models (names, or patterns where `*` is any run of
   * characters): a model budget's spend. */
  models?: string[];
  from?: number;
  to?: number;
  interval?: SpendInterval;
  /** IANA time zone for interval buckets; UTC by default. */
  timeZone?: string;
}

export interface SpendRow {
  /** The group's value (null for calls without it); absent when not grouped. */
  group?: string | null;
  /** Bucket start (epoch ms), when an interval is asked for. */
  bucket?: number;
  calls: number;
  cost_list_nano: bigint;
  cost_effective_nano: bigint;
  unpriced_calls: number;
  /** Calls the gateway refused (status `refused`), which `calls` does not count. */
  refused_calls: number;
  estimated_calls: number;
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  saved_nano: bigint;
}

export interface UseCaseRecord {
  tenant: string;
  id: string;
  name: string;
  department: string | null;
  stage: Stage;
  /** Everything else in the register (owners, SMART card, baseline, checklist...), as JSON. */
  spec: Record<string, unknown>;
  created_at: number;
  updated_at: number;
}

export interface LedgerEntry {
  tenant: string;
  id: string;
  use_case: string;
  /** First day of the month, as YYYY-MM. */
  month: string;
  category: LedgerCategory;
  amount_nano: bigint;
  note: string | null;
  created_at: number;
}

export interface BudgetRecord {
  tenant: string;
  id: string;
  scope: BudgetScope;
  /** The project, team, user or key id the budget applies to; the tenant itself for scope tenant. */
  subject: string;
  limit_nano: bigint;
  period: BudgetPeriod;
  time_zone: string;
  thresholds: number[];
  action: BudgetAction;
  downgrade_model: string | null;
  /** The models whose calls it counts and holds, by name or pattern (`claude-opus-*`); empty for
   * every model. A call counts by the model it asks for. */
  models: string[];
  created_at: number;
}

/** Per-minute limits on the calls of a scope (a team's, a project's, a tag's...), shared by every
 * key whose calls it holds, on top of each key's own rpm and tpm. */
export interface RateLimitRecord {
  tenant: string;
  id: string;
  scope: BudgetScope;
  /** As a budget's: the project, team, user, key id or tag (name=value); the tenant for scope tenant. */
  subject: string;
  /** The models whose calls it holds, by name or pattern; empty for every model. */
  models: string[];
  /** Requests a minute, tokens a minute, calls in flight at once; at least one is set. */
  rpm: number | null;
  tpm: number | null;
  max_parallel: number | null;
  created_at: number;
}

export interface KeyRecord {
  tenant: string;
  id: string;
  /** SHA-256 of the key, hex. The key itself is never stored. */
  hash: string;
  /** The first characters of the key, to recognise it in a list. */
  prefix: string;
  /** What the key may do: `virtual` calls models through the gateway; `admin` does anything in its
   * tenant; `finance` reads spend and sets budgets; `member` reads its project and reports its
   * events; `gateway` is a replica's key to the server's control routes, the only one that can read
   * the providers' secrets. */
  role: 'admin' | 'finance' | 'member' | 'virtual' | 'gateway';
  /** A name to tell the key apart in a list; null for none. */
  name: string | null;
  project: string | null;
  team: string | null;
  user: string | null;
  models: string[];
  /** Tags every call the key makes carries, over the call's own of the same name ({} for none). */
  tags: Record<string, string>;
  rpm: number | null;
  tpm: number | null;
  /** The most calls the key may have in flight at once; null (or absent) for no cap. */
  max_parallel?: number | null;
  budget_id: string | null;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
}

/** What may change in a key once it is made: its owner and its policy. */
export type KeyPatch = Partial<
  Pick<
    KeyRecord,
    | 'name'
    | 'project'
    | 'team'
    | 'user'
    | 'models'
    | 'tags'
    | 'rpm'
    | 'tpm'
    | 'max_parallel'
    | 'budget_id'
    | 'expires_at'
  >
>;

/** An upstream provider added through the API. The secret is stored only encrypted. */
export interface ProviderRecord {
  tenant: string;
  id: string;
  kind: string;
  base_url: string;
  /** The API key, encrypted (AES-256-GCM, as iv.tag.ciphertext in base64url); null for none. */
  secret_enc: string | null;
  /** api_version, deployments, price_provider, timeout_ms. */
  settings: Record<string, unknown>;
  created_at: number;
}

export interface AlertRecord {
  tenant: string;
  id: string;
  time: number;
  /** e.g. budget.threshold */
  kind: string;
  /** What it is about, e.g. the budget id. */
  subject: string | null;
  payload: Record<string, unknown>;
}

export interface StoreInfo {
  kind: 'duckdb' | 'postgres';
  schemaVersion: number;
  location: string;
}

/** What the store holds in this process's memory, for /metrics. */
export interface StoreMemory {
  /** Bytes the backend has allocated for data, indexes and queries. */
  usedBytes: number;
  /** Its limit, or null for none. */
  limitBytes: number | null;
  /** Bytes spilled to temporary files past the limit. */
  spilledBytes: number;
}

/** Calls encoded for one backend's bulk append, one at a time as they are metered. */
export interface CallBatch {
  /** Names the encoding, for restoreCallBatch. */
  readonly format: string;
  readonly rows: number;
  /** The calls as encoded so far. */
  readonly bytes: Buffer;
  add(call: CallRecord): void;
}

/** One interface for every backend. The same contract suite runs against each adapter. */
export interface Store {
  readonly info: StoreInfo;
  memory(): Promise<StoreMemory>;
  /** Applies pending migrations; safe to call on every start. */
  migrate(): Promise<void>;
  close(): Promise<void>;

  /** Writes calls and task events in one transaction, idempotent by (tenant, id). Resolves only
   * once the rows are committed. */
  ingest(batch: IngestBatch): Promise<WriteResult>;
  /** Appends freshly made calls (the gateway's metering) as cheaply for the caller as the backend
   * allows; idempotent like ingest (a retried batch counts its rows as duplicates). */
  appendCalls(calls: CallRecord[]): Promise<WriteResult>;
  /** An empty batch for appendCallBatch: it encodes each call as it is added, in the backend's
   * bulk format, so a metering buffer holds text rather than records. */
  newCallBatch(): CallBatch;
  /** Appends a batch from newCallBatch (or restoreCallBatch), as appendCalls would its calls.
   * With `tenant`, the batch came from outside the process (a gateway replica): every call must
   * be a valid call of that tenant, or nothing is written and `invalid_event` is thrown. */
  appendCallBatch(batch: CallBatch, opts?: { tenant?: string }): Promise<WriteResult>;
  /** A batch again from its format and bytes (as kept on disk by the metering's spool): its whole
   * calls, one cut off at the end left out. A format an earlier version wrote is read too (its
   * calls as this version's); `invalid_request` for one this backend never wrote. */
  restoreCallBatch(format: string, bytes: Buffer): CallBatch;
  /** Newest first (time desc, then id desc), keyset-paged; at most 1000 rows a page. */
  listCalls(query: CallQuery): Promise<Page<CallRecord>>;
  getCall(tenant: string, id: string): Promise<CallRecord | null>;
  /** In time order (then id). */
  listTaskEvents(tenant: string, useCase: string, taskId?: string): Promise<TaskEventRecord[]>;
  /** Ordered by bucket, then effective cost descending, then group (nulls last). No calls, no
   * rows. Time filters: from inclusive, to exclusive. */
  spend(query: SpendQuery): Promise<SpendRow[]>;
  counts(tenant: string): Promise<{ calls: number; task_events: number }>;

  /** Inserts or replaces; an update keeps the stored created_at. */
  putUseCase(useCase: UseCaseRecord): Promise<void>;
  getUseCase(tenant: string, id: string): Promise<UseCaseRecord | null>;
  /** Ordered by name, then id. */
  listUseCases(tenant: string): Promise<UseCaseRecord[]>;

  /** Idempotent by (tenant, id): a stored entry is kept as it was. */
  addLedgerEntry(entry: LedgerEntry): Promise<WriteResult>;
  /** Ordered by month, use case, category, then id. */
  listLedger(tenant: string, useCase?: string): Promise<LedgerEntry[]>;
  /** Recomputes the rollups of what ingest touched since the last time; returns how many marks it
   * cleared. outcomeSums does it before reading; a server also runs it in the background so that
   * the marks never pile up between reads. */
  refreshRollups(): Promise<number>;
  /** The sufficient statistics of one use case's tasks and calls over [from, to), for the scorecard. */
  outcomeSums(tenant: string, useCase: string, from: number, to: number): Promise<OutcomeSums>;
  /** Sums across use cases and projects for the red-flag audit, with the SQL behind them. */
  auditSums(tenant: string, from: number, to: number): Promise<AuditSums>;
  /** Seconds of task.human events per calendar month (UTC, as YYYY-MM), in month order. */
  humanSecondsByMonth(tenant: string, useCase: string): Promise<{ month: string; seconds: number }[]>;

  /** Inserts or replaces; an update keeps the stored created_at. */
  putBudget(budget: BudgetRecord): Promise<void>;
  /** Ordered by created_at, then id. */
  listBudgets(tenant: string): Promise<BudgetRecord[]>;
  /** True when a budget was deleted. */
  deleteBudget(tenant: string, id: string): Promise<boolean>;

  /** Inserts or replaces; an update keeps the stored created_at. */
  putRateLimit(limit: RateLimitRecord): Promise<void>;
  /** Ordered by created_at, then id. */
  listRateLimits(tenant: string): Promise<RateLimitRecord[]>;
  /** True when a rate limit was deleted. */
  deleteRateLimit(tenant: string, id: string): Promise<boolean>;

  createKey(key: KeyRecord): Promise<void>;
  /** Across tenants, revoked and expired keys included (the caller decides). */
  findKeyByHash(hash: string): Promise<KeyRecord | null>;
  /** Ordered by created_at, then id. */
  listKeys(tenant: string): Promise<KeyRecord[]>;
  /** True when this call revoked an active key; false for an unknown or already revoked one. */
  revokeKey(tenant: string, id: string, at: number): Promise<boolean>;
  /** Changes the fields `patch` gives of an active key (null clears one); its secret, role and
   * times of making stay. The key as it now is, or null for an unknown or revoked one. */
  updateKey(tenant: string, id: string, patch: KeyPatch): Promise<KeyRecord | null>;
  /** Gives an active key a new secret (its hash and prefix): the old one stops working, the rest
   * stays. The key as it now is, or null for an unknown or revoked one. */
  rotateKey(tenant: string, id: string, secret: { hash: string; prefix: string }): Promise<KeyRecord | null>;

  putProvider(provider: ProviderRecord): Promise<void>;
  /** Every tenant's providers (the gateway serves them all). */
  listProviders(): Promise<ProviderRecord[]>;
  deleteProvider(tenant: string, id: string): Promise<boolean>;

  /** Idempotent by (tenant, id). */
  addAlert(alert: AlertRecord): Promise<WriteResult>;
  /** Newest first. */
  listAlerts(tenant: string, limit: number): Promise<AlertRecord[]>;
}
