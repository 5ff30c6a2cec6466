/**
 * The schema, in one place, as an ordered list of versioned migrations. The SQL is shared by the
 * DuckDB and PostgreSQL adapters: the few type names that differ come from `SqlDialect`, and a
 * statement that only one engine should run names that engine.
 *
 * Conventions: money is BIGINT nano-USD; every time is TIMESTAMPTZ (epoch milliseconds in the
 * records); documents (tags, spec, thresholds, models, call_ids) are JSON; every table is keyed
 * by (tenant, id).
 */

export type Engine = 'duckdb' | 'postgres';

export interface SqlDialect {
  readonly engine: Engine;
  /** A JSON document: JSON in DuckDB, JSONB in PostgreSQL. */
  readonly json: string;
  /** A key column. PostgreSQL compares bytes ("C") so that keyset pages follow the same order
   * as DuckDB, whatever the database's collation. */
  readonly key: string;
}

export const DUCKDB_DIALECT: SqlDialect = Object.freeze({ engine: 'duckdb', json: 'JSON', key: 'VARCHAR' });
export const POSTGRES_DIALECT: SqlDialect = Object.freeze({
  engine: 'postgres',
  json: 'JSONB',
  key: 'VARCHAR COLLATE "C"',
});

export interface MigrationStatement {
  readonly sql: string;
  /** The engines that run it; all of them when absent. */
  readonly only?: Engine;
}

export interface Migration {
  readonly version: number;
  readonly name: string;
  statements(d: SqlDialect): readonly MigrationStatement[];
}

export const MIGRATIONS_TABLE_SQL = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version INTEGER PRIMARY KEY,
  name VARCHAR NOT NULL,
  applied_at TIMESTAMPTZ NOT NULL
)`;

const initial: Migration = {
  version: 1,
  name: 'initial',
  statements: (d) => [
    {
      sql: `CREATE TABLE calls (
  tenant ${d.key} NOT NULL,
  id ${d.key} NOT NULL,
  time TIMESTAMPTZ NOT NULL,
  project VARCHAR,
  team VARCHAR,
  "user" VARCHAR,
  use_case VARCHAR,
  task_id VARCHAR,
  key_id VARCHAR,
  tags ${d.json} NOT NULL,
  provider VARCHAR NOT NULL,
  api VARCHAR NOT NULL,
  model_requested VARCHAR NOT NULL,
  model_served VARCHAR,
  input_tokens INTEGER NOT NULL,
  output_tokens INTEGER NOT NULL,
  cache_read_tokens INTEGER NOT NULL,
  cache_write_tokens INTEGER NOT NULL,
  cache_write_1h_tokens INTEGER NOT NULL,
  reasoning_tokens INTEGER NOT NULL,
  input_audio_tokens INTEGER NOT NULL,
  output_audio_tokens INTEGER NOT NULL,
  cache_audio_read_tokens INTEGER NOT NULL,
  web_searches INTEGER NOT NULL,
  cost_list_nano BIGINT,
  cost_effective_nano BIGINT,
  pricing_status VARCHAR NOT NULL,
  price_version VARCHAR,
  latency_ms DOUBLE PRECISION,
  ttft_ms DOUBLE PRECISION,
  status VARCHAR NOT NULL,
  error_type VARCHAR,
  cache VARCHAR NOT NULL,
  route_tier VARCHAR,
  fallback_hops INTEGER NOT NULL,
  saved_nano BIGINT NOT NULL,
  PRIMARY KEY (tenant, id)
)`,
    },
    // DuckDB answers time ranges from its per-row-group min/max (rows arrive in time order) and
    // never uses an ART index for a range or a top-N; on 2M calls this index doubled the file
    // size for no query. PostgreSQL needs it.
    { sql: 'CREATE INDEX calls_tenant_time ON calls (tenant, time)', only: 'postgres' },
    {
      sql: `CREATE TABLE task_events (
  tenant ${d.key} NOT NULL,
  id ${d.key} NOT NULL,
  type VARCHAR NOT NULL,
  time TIMESTAMPTZ NOT NULL,
  use_case VARCHAR NOT NULL,
  task_id VARCHAR NOT NULL,
  "user" VARCHAR,
  team VARCHAR,
  arm VARCHAR,
  covariate DOUBLE PRECISION,
  call_ids ${d.json} NOT NULL,
  outcome VARCHAR,
  handling_seconds DOUBLE PRECISION,
  value_nano BIGINT,
  kind VARCHAR,
  seconds DOUBLE PRECISION,
  pass BOOLEAN,
  score DOUBLE PRECISION,
  reviewer VARCHAR,
  reason VARCHAR,
  PRIMARY KEY (tenant, id)
)`,
    },
    { sql: 'CREATE INDEX task_events_tenant_time ON task_events (tenant, time)', only: 'postgres' },
    {
      sql: 'CREATE INDEX task_events_task ON task_events (tenant, use_case, task_id, time)',
      only: 'postgres',
    },
    {
      sql: `CREATE TABLE use_cases (
  tenant ${d.key} NOT NULL,
  id ${d.key} NOT NULL,
  name VARCHAR NOT NULL,
  department VARCHAR,
  stage VARCHAR NOT NULL,
  spec ${d.json} NOT NULL,
  created_at TIMESTAMPTZ NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (tenant, id)
)`,
    },
    {
      sql: `CREATE TABLE cost_ledger (
  tenant ${d.key} NOT NULL,
  id ${d.key} NOT NULL,
  use_case VARCHAR NOT NULL,
  month VARCHAR NOT NULL,
  category VARCHAR NOT NULL,
  amount_nano BIGINT NOT NULL,
  note VARCHAR,
  created_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (tenant, id)
)`,
    },
    {
      sql: `CREATE TABLE budgets (
  tenant ${d.key} NOT NULL,
  id ${d.key} NOT NULL,
  scope VARCHAR NOT NULL,
  subject VARCHAR NOT NULL,
  limit_nano BIGINT NOT NULL,
  period VARCHAR NOT NULL,
  time_zone VARCHAR NOT NULL,
  thresholds ${d.json} NOT NULL,
  action VARCHAR NOT NULL,
  downgrade_model VARCHAR,
  created_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (tenant, id)
)`,
    },
    {
      sql: `CREATE TABLE api_keys (
  tenant ${d.key} NOT NULL,
  id ${d.key} NOT NULL,
  hash VARCHAR NOT NULL UNIQUE,
  prefix VARCHAR NOT NULL,
  role VARCHAR NOT NULL,
  project VARCHAR,
  team VARCHAR,
  "user" VARCHAR,
  models ${d.json} NOT NULL,
  rpm INTEGER,
  tpm INTEGER,
  budget_id VARCHAR,
  created_at TIMESTAMPTZ NOT NULL,
  expires_at TIMESTAMPTZ,
  revoked_at TIMESTAMPTZ,
  PRIMARY KEY (tenant, id)
)`,
    },
  ],
};

/** v2: upstream providers added through the API; their secrets are stored encrypted. */
const providers: Migration = {
  version: 2,
  name: 'providers',
  statements: (d) => [
    {
      sql: `CREATE TABLE providers (
  tenant ${d.key} NOT NULL,
  id ${d.key} NOT NULL,
  kind VARCHAR NOT NULL,
  base_url VARCHAR NOT NULL,
  secret_enc VARCHAR,
  settings ${d.json} NOT NULL,
  created_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (tenant, id)
)`,
    },
  ],
};

/** v3: alerts (budget thresholds crossed, later anomalies), kept for finance to read back. */
const alerts: Migration = {
  version: 3,
  name: 'alerts',
  statements: (d) => [
    {
      sql: `CREATE TABLE alerts (
  tenant ${d.key} NOT NULL,
  id ${d.key} NOT NULL,
  time TIMESTAMPTZ NOT NULL,
  kind VARCHAR NOT NULL,
  subject VARCHAR,
  payload ${d.json} NOT NULL,
  PRIMARY KEY (tenant, id)
)`,
    },
  ],
};

/**
 * v4: one row per task, the sums of its events, which the scorecard reads instead of regrouping
 * millions of events. Ingest marks the tasks it touched as dirty (an append, in the same
 * transaction); the rollup recomputes dirty tasks from their events before it is read. Recomputing
 * is idempotent, so a task marked twice costs only time.
 */
const taskRollup: Migration = {
  version: 4,
  name: 'task rollup',
  statements: (d) => [
    {
      sql: `CREATE TABLE task_rollup (
  tenant ${d.key} NOT NULL,
  use_case ${d.key} NOT NULL,
  task_id ${d.key} NOT NULL,
  t_at TIMESTAMPTZ NOT NULL,
  arm VARCHAR,
  covariate DOUBLE PRECISION,
  ai_used BOOLEAN NOT NULL,
  outcome VARCHAR,
  handling DOUBLE PRECISION,
  value_nano BIGINT,
  h_review DOUBLE PRECISION NOT NULL,
  h_edit DOUBLE PRECISION NOT NULL,
  h_override DOUBLE PRECISION NOT NULL,
  h_escalation DOUBLE PRECISION NOT NULL,
  human_events INTEGER NOT NULL,
  interventions INTEGER NOT NULL,
  qa_n INTEGER NOT NULL,
  qa_pass INTEGER NOT NULL,
  opted_out BOOLEAN NOT NULL,
  opt_reason VARCHAR,
  "user" VARCHAR,
  done SMALLINT NOT NULL,
  success SMALLINT NOT NULL,
  failure SMALLINT NOT NULL,
  abandoned SMALLINT NOT NULL,
  stable SMALLINT NOT NULL,
  done_no_intervention SMALLINT NOT NULL,
  done_no_human SMALLINT NOT NULL,
  value_usd DOUBLE PRECISION
)`,
    },
    // No primary key in DuckDB: a refresh deletes and re-inserts a task's row in one transaction,
    // which its index would refuse before the commit. The single writer keeps rows unique.
    {
      sql: 'CREATE UNIQUE INDEX task_rollup_key ON task_rollup (tenant, use_case, task_id)',
      only: 'postgres',
    },
    { sql: 'CREATE INDEX task_rollup_period ON task_rollup (tenant, use_case, t_at)', only: 'postgres' },
    {
      sql: `CREATE TABLE task_rollup_dirty (
  tenant ${d.key} NOT NULL,
  use_case ${d.key} NOT NULL,
  task_id ${d.key} NOT NULL
)`,
    },
    // Tasks stored before this version are rolled up on first read.
    { sql: 'INSERT INTO task_rollup_dirty SELECT DISTINCT tenant, use_case, task_id FROM task_events' },
  ],
};

/**
 * v5: the request a call was an attempt of. A gateway request's attempts (the first, and each
 * fallback after it) share it: `GET /v1/calls?request_id=` lists them together. Calls stored
 * before it have none.
 */
const requestId: Migration = {
  version: 5,
  name: 'call request id',
  statements: () => [{ sql: 'ALTER TABLE calls ADD COLUMN request_id VARCHAR' }],
};

/** v6: a key's name, to tell keys apart in a list (`prod-support-bot`). Keys made before it have none. */
const keyName: Migration = {
  version: 6,
  name: 'key name',
  statements: () => [{ sql: 'ALTER TABLE api_keys ADD COLUMN name VARCHAR' }],
};

/** v7: the tags a virtual key gives every call it makes (`{"app": "checkout"}`), beside those the
 * call's `x-tally-tags` header gives; the key's win. Keys made before it have none (null). */
const keyTags: Migration = {
  version: 7,
  name: 'key tags',
  statements: (d) => [{ sql: `ALTER TABLE api_keys ADD COLUMN tags ${d.json}` }],
};

/** v8: the models a budget counts and holds (names or patterns, `claude-opus-*`); none for every
 * model. Budgets made before it have none (null). */
const budgetModels: Migration = {
  version: 8,
  name: 'budget models',
  statements: (d) => [{ sql: `ALTER TABLE budgets ADD COLUMN models ${d.json}` }],
};

/** v9: limits on the calls of a scope (a minute's requests and tokens, calls in flight at once),
 * shared by the keys whose calls it holds; and a key's own cap on calls in flight. */
const rateLimits: Migration = {
  version: 9,
  name: 'rate limits',
  statements: (d) => [
    {
      sql: `CREATE TABLE rate_limits (
  tenant ${d.key} NOT NULL,
  id ${d.key} NOT NULL,
  scope VARCHAR NOT NULL,
  subject VARCHAR NOT NULL,
  models ${d.json} NOT NULL,
  rpm INTEGER,
  tpm INTEGER,
  max_parallel INTEGER,
  created_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (tenant, id)
)`,
    },
    { sql: 'ALTER TABLE api_keys ADD COLUMN max_parallel INTEGER' },
  ],
};

/** v10: a call's searches of the provider's file stores (OpenAI's file_search tool), billed per
 * search like web searches. Calls stored before it made none that were counted (0). */
const fileSearches: Migration = {
  version: 10,
  name: 'call file searches',
  statements: () => [{ sql: 'ALTER TABLE calls ADD COLUMN file_searches INTEGER DEFAULT 0' }],
};

/** v11: a call's sessions of the provider's code containers (OpenAI's code interpreter), billed per
 * session. Calls stored before it had none counted (0). */
const codeContainers: Migration = {
  version: 11,
  name: 'call code containers',
  statements: () => [{ sql: 'ALTER TABLE calls ADD COLUMN code_containers INTEGER DEFAULT 0' }],
};

/** v12: the images a call's image generation tool made (OpenAI's, in the Responses API). Calls
 * stored before it had none counted (0). */
const imageGenerations: Migration = {
  version: 12,
  name: 'call image generations',
  statements: () => [{ sql: 'ALTER TABLE calls ADD COLUMN image_generations INTEGER DEFAULT 0' }],
};

/** v13: the characters of a speech's input (tts-1 bills them) and the seconds of audio a call
 * billed by its length gave (whisper-1). Calls stored before it had none counted (0). */
const charactersAndSeconds: Migration = {
  version: 13,
  name: 'call characters and audio seconds',
  statements: () => [
    { sql: 'ALTER TABLE calls ADD COLUMN characters INTEGER DEFAULT 0' },
    { sql: 'ALTER TABLE calls ADD COLUMN audio_seconds INTEGER DEFAULT 0' },
  ],
};

/** Append only: a released migration is never edited, a change is a new version. */
export const MIGRATIONS: readonly Migration[] = [
  initial,
  providers,
  alerts,
  taskRollup,
  requestId,
  keyName,
  keyTags,
  budgetModels,
  rateLimits,
  fileSearches,
  codeContainers,
  imageGenerations,
  charactersAndSeconds,
];

export const SCHEMA_VERSION: number = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;

/** The SQL statements of one migration, for one engine. */
export function migrationSql(m: Migration, d: SqlDialect): string[] {
  return m
    .statements(d)
    .filter((s) => s.only === undefined || s.only === d.engine)
    .map((s) => s.sql);
}
