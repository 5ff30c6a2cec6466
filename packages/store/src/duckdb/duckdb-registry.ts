import type { DuckDBConnection } from '@duckdb/node-api';
import type { BudgetAction, BudgetPeriod, BudgetScope, LedgerCategory, Stage } from '@tally/core';
import type {
  AlertRecord,
  BudgetRecord,
  KeyPatch,
  KeyRecord,
  LedgerEntry,
  ProviderRecord,
  RateLimitRecord,
  UseCaseRecord,
  WriteResult,
} from '../store.js';
import { execute, queryRows } from './duckdb-sql.js';
import { big, json, num, numOrNull, type Row, str, strOrNull, ts, tsOrNull } from './duckdb-values.js';

// The register, the hidden-cost ledger, budgets and keys: small tables, read and written one
// row at a time.

export async function putUseCase(conn: DuckDBConnection, u: UseCaseRecord): Promise<void> {
  // created_at is kept from the first put: an update never rewrites when a use case began.
  await execute(
    conn,
    `INSERT INTO use_cases (tenant, id, name, department, stage, spec, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (tenant, id) DO UPDATE SET name = excluded.name, department = excluded.department,
       stage = excluded.stage, spec = excluded.spec, updated_at = excluded.updated_at`,
    [
      u.tenant,
      u.id,
      u.name,
      u.department,
      u.stage,
      JSON.stringify(u.spec),
      ts(u.created_at),
      ts(u.updated_at),
    ],
  );
}

const USE_CASE_SELECT = `SELECT tenant, id, name, department, stage, spec, epoch_ms(created_at) AS created_at,
  epoch_ms(updated_at) AS updated_at FROM use_cases`;

function useCaseFromRow(r: Row): UseCaseRecord {
  return {
    tenant: str(r, 'tenant'),
    id: str(r, 'id'),
    name: str(r, 'name'),
    department: strOrNull(r, 'department'),
    stage: str(r, 'stage') as Stage,
    spec: json<Record<string, unknown>>(r, 'spec'),
    created_at: num(r, 'created_at'),
    updated_at: num(r, 'updated_at'),
  };
}

export async function getUseCase(
  conn: DuckDBConnection,
  tenant: string,
  id: string,
): Promise<UseCaseRecord | null> {
  const rows = await queryRows(conn, `${USE_CASE_SELECT} WHERE tenant = $1 AND id = $2`, [tenant, id]);
  return rows[0] ? useCaseFromRow(rows[0]) : null;
}

export async function listUseCases(conn: DuckDBConnection, tenant: string): Promise<UseCaseRecord[]> {
  const rows = await queryRows(conn, `${USE_CASE_SELECT} WHERE tenant = $1 ORDER BY name, id`, [tenant]);
  return rows.map(useCaseFromRow);
}

export async function addLedgerEntry(conn: DuckDBConnection, e: LedgerEntry): Promise<WriteResult> {
  const inserted = await execute(
    conn,
    `INSERT INTO cost_ledger (tenant, id, use_case, month, category, amount_nano, note, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
    [e.tenant, e.id, e.use_case, e.month, e.category, e.amount_nano, e.note, ts(e.created_at)],
  );
  return { inserted, duplicates: 1 - inserted };
}

export async function humanSecondsByMonth(
  conn: DuckDBConnection,
  tenant: string,
  useCase: string,
): Promise<{ month: string; seconds: number }[]> {
  const rows = await queryRows(
    conn,
    `SELECT strftime(timezone('UTC', time), '%Y-%m') AS month, sum(seconds) AS seconds
     FROM task_events WHERE tenant = $1 AND use_case = $2 AND type = 'task.human'
     GROUP BY 1 ORDER BY 1`,
    [tenant, useCase],
  );
  return rows.map((r) => ({ month: str(r, 'month'), seconds: Number(r['seconds']) }));
}

export async function listLedger(
  conn: DuckDBConnection,
  tenant: string,
  useCase?: string,
): Promise<LedgerEntry[]> {
  const values = useCase === undefined ? [tenant] : [tenant, useCase];
  const rows = await queryRows(
    conn,
    `SELECT tenant, id, use_case, month, category, amount_nano, note, epoch_ms(created_at) AS created_at
     FROM cost_ledger WHERE tenant = $1 ${useCase === undefined ? '' : 'AND use_case = $2'}
     ORDER BY month, use_case, category, id`,
    values,
  );
  return rows.map((r) => ({
    tenant: str(r, 'tenant'),
    id: str(r, 'id'),
    use_case: str(r, 'use_case'),
    month: str(r, 'month'),
    category: str(r, 'category') as LedgerCategory,
    amount_nano: big(r, 'amount_nano'),
    note: strOrNull(r, 'note'),
    created_at: num(r, 'created_at'),
  }));
}

export async function putBudget(conn: DuckDBConnection, b: BudgetRecord): Promise<void> {
  await execute(
    conn,
    `INSERT INTO budgets (tenant, id, scope, subject, limit_nano, period, time_zone, thresholds, action,
       downgrade_model, created_at, models)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
     ON CONFLICT (tenant, id) DO UPDATE SET scope = excluded.scope, subject = excluded.subject,
       limit_nano = excluded.limit_nano, period = excluded.period, time_zone = excluded.time_zone,
       thresholds = excluded.thresholds, action = excluded.action, downgrade_model = excluded.downgrade_model,
       models = excluded.models`,
    [
      b.tenant,
      b.id,
      b.scope,
      b.subject,
      b.limit_nano,
      b.period,
      b.time_zone,
      JSON.stringify(b.thresholds),
      b.action,
      b.downgrade_model,
      ts(b.created_at),
      JSON.stringify(b.models),
    ],
  );
}

export async function listBudgets(conn: DuckDBConnection, tenant: string): Promise<BudgetRecord[]> {
  const rows = await queryRows(
    conn,
    `SELECT tenant, id, scope, subject, limit_nano, period, time_zone, thresholds, action, downgrade_model,
       models, epoch_ms(created_at) AS created_at
     FROM budgets WHERE tenant = $1 ORDER BY created_at, id`,
    [tenant],
  );
  return rows.map((r) => ({
    tenant: str(r, 'tenant'),
    id: str(r, 'id'),
    scope: str(r, 'scope') as BudgetScope,
    subject: str(r, 'subject'),
    limit_nano: big(r, 'limit_nano'),
    period: str(r, 'period') as BudgetPeriod,
    time_zone: str(r, 'time_zone'),
    thresholds: json<number[]>(r, 'thresholds'),
    action: str(r, 'action') as BudgetAction,
    downgrade_model: strOrNull(r, 'downgrade_model'),
    // Budgets made before schema 8 hold every model.
    models: r['models'] === null ? [] : json<string[]>(r, 'models'),
    created_at: num(r, 'created_at'),
  }));
}

export async function putRateLimit(conn: DuckDBConnection, l: RateLimitRecord): Promise<void> {
  await execute(
    conn,
    `INSERT INTO rate_limits (tenant, id, scope, subject, models, rpm, tpm, max_parallel, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     ON CONFLICT (tenant, id) DO UPDATE SET scope = excluded.scope, subject = excluded.subject,
       models = excluded.models, rpm = excluded.rpm, tpm = excluded.tpm, max_parallel = excluded.max_parallel`,
    [
      l.tenant,
      l.id,
      l.scope,
      l.subject,
      JSON.stringify(l.models),
      l.rpm,
      l.tpm,
      l.max_parallel,
      ts(l.created_at),
    ],
  );
}

export async function listRateLimits(conn: DuckDBConnection, tenant: string): Promise<RateLimitRecord[]> {
  const rows = await queryRows(
    conn,
    `SELECT tenant, id, scope, subject, models, rpm, tpm, max_parallel, epoch_ms(created_at) AS created_at
     FROM rate_limits WHERE tenant = $1 ORDER BY created_at, id`,
    [tenant],
  );
  return rows.map((r) => ({
    tenant: str(r, 'tenant'),
    id: str(r, 'id'),
    scope: str(r, 'scope') as BudgetScope,
    subject: str(r, 'subject'),
    models: json<string[]>(r, 'models'),
    rpm: numOrNull(r, 'rpm'),
    tpm: numOrNull(r, 'tpm'),
    max_parallel: numOrNull(r, 'max_parallel'),
    created_at: num(r, 'created_at'),
  }));
}

export async function deleteRateLimit(conn: DuckDBConnection, tenant: string, id: string): Promise<boolean> {
  return (await execute(conn, 'DELETE FROM rate_limits WHERE tenant = $1 AND id = $2', [tenant, id])) > 0;
}

export async function deleteBudget(conn: DuckDBConnection, tenant: string, id: string): Promise<boolean> {
  return (await execute(conn, 'DELETE FROM budgets WHERE tenant = $1 AND id = $2', [tenant, id])) > 0;
}

export async function createKey(conn: DuckDBConnection, k: KeyRecord): Promise<void> {
  await execute(
    conn,
    `INSERT INTO api_keys (tenant, id, hash, prefix, role, project, team, "user", models, rpm, tpm, budget_id,
       created_at, expires_at, revoked_at, name, tags, max_parallel)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`,
    [
      k.tenant,
      k.id,
      k.hash,
      k.prefix,
      k.role,
      k.project,
      k.team,
      k.user,
      JSON.stringify(k.models),
      k.rpm,
      k.tpm,
      k.budget_id,
      ts(k.created_at),
      tsOrNull(k.expires_at),
      tsOrNull(k.revoked_at),
      k.name,
      JSON.stringify(k.tags),
      k.max_parallel ?? null,
    ],
  );
}

const KEY_SELECT = `SELECT tenant, id, hash, prefix, role, name, project, team, "user", models, tags, rpm, tpm, max_parallel,
  budget_id, epoch_ms(created_at) AS created_at, epoch_ms(expires_at) AS expires_at, epoch_ms(revoked_at) AS revoked_at
  FROM api_keys`;

function keyFromRow(r: Row): KeyRecord {
  return {
    tenant: str(r, 'tenant'),
    id: str(r, 'id'),
    hash: str(r, 'hash'),
    prefix: str(r, 'prefix'),
    role: str(r, 'role') as KeyRecord['role'],
    name: strOrNull(r, 'name'),
    project: strOrNull(r, 'project'),
    team: strOrNull(r, 'team'),
    user: strOrNull(r, 'user'),
    models: json<string[]>(r, 'models'),
    // Keys made before schema 7 have none.
    tags: r['tags'] === null ? {} : json<Record<string, string>>(r, 'tags'),
    rpm: numOrNull(r, 'rpm'),
    tpm: numOrNull(r, 'tpm'),
    max_parallel: numOrNull(r, 'max_parallel'),
    budget_id: strOrNull(r, 'budget_id'),
    created_at: num(r, 'created_at'),
    expires_at: numOrNull(r, 'expires_at'),
    revoked_at: numOrNull(r, 'revoked_at'),
  };
}

/** Across tenants: a key's hash identifies it, and its tenant. */
export async function findKeyByHash(conn: DuckDBConnection, hash: string): Promise<KeyRecord | null> {
  const rows = await queryRows(conn, `${KEY_SELECT} WHERE hash = $1`, [hash]);
  return rows[0] ? keyFromRow(rows[0]) : null;
}

export async function listKeys(conn: DuckDBConnection, tenant: string): Promise<KeyRecord[]> {
  const rows = await queryRows(conn, `${KEY_SELECT} WHERE tenant = $1 ORDER BY created_at, id`, [tenant]);
  return rows.map(keyFromRow);
}

/** True when this call revoked an active key; false for an unknown or already revoked key. */
export async function revokeKey(
  conn: DuckDBConnection,
  tenant: string,
  id: string,
  at: number,
): Promise<boolean> {
  const changed = await execute(
    conn,
    'UPDATE api_keys SET revoked_at = $3 WHERE tenant = $1 AND id = $2 AND revoked_at IS NULL',
    [tenant, id, ts(at)],
  );
  return changed > 0;
}

/** The columns a key patch may set, and how each value is stored. */
const KEY_PATCH: Record<keyof KeyPatch, (v: unknown) => unknown> = {
  name: (v) => v,
  project: (v) => v,
  team: (v) => v,
  user: (v) => v,
  models: (v) => JSON.stringify(v),
  tags: (v) => JSON.stringify(v),
  rpm: (v) => v,
  tpm: (v) => v,
  max_parallel: (v) => v,
  budget_id: (v) => v,
  expires_at: (v) => (v === null ? null : ts(v as number)),
};

/** The fields a patch gives of an active key (setKeyColumns). */
export async function updateKey(
  conn: DuckDBConnection,
  tenant: string,
  id: string,
  patch: KeyPatch,
): Promise<KeyRecord | null> {
  const fields = (Object.keys(patch) as (keyof KeyPatch)[]).filter(
    (f) => f in KEY_PATCH && patch[f] !== undefined,
  );
  return setKeyColumns(
    conn,
    tenant,
    id,
    fields.map((f) => [f === 'user' ? '"user"' : f, KEY_PATCH[f](patch[f])]),
  );
}

/** A new secret for an active key: its hash and prefix. */
export async function rotateKey(
  conn: DuckDBConnection,
  tenant: string,
  id: string,
  secret: { hash: string; prefix: string },
): Promise<KeyRecord | null> {
  return setKeyColumns(conn, tenant, id, [
    ['hash', secret.hash],
    ['prefix', secret.prefix],
  ]);
}

/** Sets columns of an active key; the key as it now is, or null for an unknown or revoked one
 * (nothing then changes). */
async function setKeyColumns(
  conn: DuckDBConnection,
  tenant: string,
  id: string,
  columns: [string, unknown][],
): Promise<KeyRecord | null> {
  if (columns.length > 0) {
    const set = columns.map(([c], i) => `${c} = $${i + 3}`).join(', ');
    const changed = await execute(
      conn,
      `UPDATE api_keys SET ${set} WHERE tenant = $1 AND id = $2 AND revoked_at IS NULL`,
      [tenant, id, ...columns.map(([, v]) => v)] as never,
    );
    if (changed === 0) return null;
  }
  const rows = await queryRows(conn, `${KEY_SELECT} WHERE tenant = $1 AND id = $2 AND revoked_at IS NULL`, [
    tenant,
    id,
  ]);
  return rows[0] ? keyFromRow(rows[0]) : null;
}

export async function putProvider(conn: DuckDBConnection, p: ProviderRecord): Promise<void> {
  await execute(
    conn,
    `INSERT INTO providers (tenant, id, kind, base_url, secret_enc, settings, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (tenant, id) DO UPDATE SET kind = excluded.kind, base_url = excluded.base_url,
       secret_enc = excluded.secret_enc, settings = excluded.settings`,
    [p.tenant, p.id, p.kind, p.base_url, p.secret_enc, JSON.stringify(p.settings), ts(p.created_at)],
  );
}

export async function listProviders(conn: DuckDBConnection): Promise<ProviderRecord[]> {
  const rows = await queryRows(
    conn,
    `SELECT tenant, id, kind, base_url, secret_enc, settings, epoch_ms(created_at) AS created_at
     FROM providers ORDER BY tenant, created_at, id`,
    [],
  );
  return rows.map((r) => ({
    tenant: str(r, 'tenant'),
    id: str(r, 'id'),
    kind: str(r, 'kind'),
    base_url: str(r, 'base_url'),
    secret_enc: strOrNull(r, 'secret_enc'),
    settings: json<Record<string, unknown>>(r, 'settings'),
    created_at: num(r, 'created_at'),
  }));
}

export async function deleteProvider(conn: DuckDBConnection, tenant: string, id: string): Promise<boolean> {
  return (await execute(conn, 'DELETE FROM providers WHERE tenant = $1 AND id = $2', [tenant, id])) > 0;
}

export async function addAlert(conn: DuckDBConnection, a: AlertRecord): Promise<WriteResult> {
  const n = await execute(
    conn,
    `INSERT INTO alerts (tenant, id, time, kind, subject, payload) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (tenant, id) DO NOTHING`,
    [a.tenant, a.id, ts(a.time), a.kind, a.subject, JSON.stringify(a.payload)],
  );
  return { inserted: n, duplicates: 1 - n };
}

export async function listAlerts(
  conn: DuckDBConnection,
  tenant: string,
  limit: number,
): Promise<AlertRecord[]> {
  const rows = await queryRows(
    conn,
    `SELECT tenant, id, epoch_ms(time) AS time, kind, subject, payload FROM alerts
     WHERE tenant = $1 ORDER BY time DESC, id DESC LIMIT ${Math.max(1, Math.min(1000, Math.floor(limit)))}`,
    [tenant],
  );
  return rows.map((r) => ({
    tenant: str(r, 'tenant'),
    id: str(r, 'id'),
    time: num(r, 'time'),
    kind: str(r, 'kind'),
    subject: strOrNull(r, 'subject'),
    payload: json<Record<string, unknown>>(r, 'payload'),
  }));
}
