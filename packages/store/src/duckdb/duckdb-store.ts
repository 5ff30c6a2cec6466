import type { DuckDBConnection } from '@duckdb/node-api';
import {
  type AuditSums,
  type CallRecord,
  type OutcomeSums,
  TallyError,
  type TaskEventRecord,
} from '@tally/core';
import { CALL_CSV_FORMAT, CsvCallBatch, callCsvOf } from '../call-csv.js';
import { parseSize } from '../memory-limit.js';
import { applyMigrations, type MigrationDriver } from '../migrate.js';
import { DUCKDB_DIALECT } from '../schema.js';
import type {
  AlertRecord,
  BudgetRecord,
  CallBatch,
  CallQuery,
  IngestBatch,
  KeyPatch,
  KeyRecord,
  LedgerEntry,
  Page,
  ProviderRecord,
  RateLimitRecord,
  SpendQuery,
  SpendRow,
  Store,
  StoreInfo,
  StoreMemory,
  UseCaseRecord,
  WriteResult,
} from '../store.js';
import { appendCallBatch } from './duckdb-append-csv.js';
import { auditSums } from './duckdb-audit.js';
import { COUNTS_SQL, GET_CALL_SQL, listCallsSql, listTaskEventsSql, toPage } from './duckdb-calls.js';
import { DuckDbDatabase } from './duckdb-database.js';
import { DuckDbIngestWriter } from './duckdb-ingest.js';
import { outcomeSums, refreshTaskRollup } from './duckdb-outcomes.js';
import * as registry from './duckdb-registry.js';
import { callFromRow, taskFromRow } from './duckdb-rows.js';
import { spendFromRow, spendSql } from './duckdb-spend.js';
import { inTransaction, queryRows } from './duckdb-sql.js';
import { num } from './duckdb-values.js';

export interface DuckDbStoreOptions {
  /** ':memory:' (for tests), or a file path; its folder is created when missing. */
  path: string;
  /** DuckDB's memory_limit, e.g. '256MB' (its default is 80% of RAM); at least 64MB. With a limit
   * the store checkpoints at a quarter of it (checkpointThresholdFor). */
  memoryLimit?: string | undefined;
  /** How much write-ahead log starts a checkpoint, e.g. '64MB' (see checkpointThresholdFor). */
  checkpointThreshold?: string | undefined;
  /** DuckDB worker threads (its default is one per core). */
  threads?: number | undefined;
}

/** The embedded store. Call migrate() before anything else. */
export async function createDuckDbStore(opts: DuckDbStoreOptions): Promise<Store> {
  const db = await DuckDbDatabase.open(opts.path, 2, {
    ...(opts.memoryLimit ? { memory_limit: opts.memoryLimit } : {}),
    ...(opts.checkpointThreshold ? { checkpoint_threshold: opts.checkpointThreshold } : {}),
    ...(opts.threads ? { threads: String(opts.threads) } : {}),
  });
  try {
    return new DuckDbStore(db, await db.read(readSchemaVersion));
  } catch (err) {
    await db.close(() => undefined);
    throw err;
  }
}

async function readSchemaVersion(conn: DuckDBConnection): Promise<number> {
  const rows = await queryRows(
    conn,
    `SELECT count(*) AS n FROM duckdb_tables()
     WHERE database_name = current_database() AND schema_name = 'main' AND table_name = 'schema_migrations'`,
  );
  if (num(rows[0] ?? {}, 'n') === 0) return 0;
  const v = await queryRows(conn, 'SELECT COALESCE(max(version), 0) AS v FROM schema_migrations');
  return num(v[0] ?? {}, 'v');
}

class DuckDbStore implements Store {
  private schemaVersion: number;
  private readonly writer: DuckDbIngestWriter;

  constructor(
    private readonly db: DuckDbDatabase,
    schemaVersion: number,
  ) {
    this.schemaVersion = schemaVersion;
    this.writer = new DuckDbIngestWriter(db);
    // The ingest writer's appenders belong to the connections a reopen closed.
    db.onReopen = () => this.writer.reset();
  }

  get info(): StoreInfo {
    return { kind: 'duckdb', schemaVersion: this.schemaVersion, location: this.db.location };
  }

  async memory(): Promise<StoreMemory> {
    const rows = await this.db.read((conn) =>
      queryRows(
        conn,
        `SELECT COALESCE(sum(memory_usage_bytes), 0)::BIGINT AS used,
                COALESCE(sum(temporary_storage_bytes), 0)::BIGINT AS spilled,
                current_setting('memory_limit') AS lim
         FROM duckdb_memory()`,
      ),
    );
    const r = rows[0] ?? {};
    // DuckDB shows its limit rounded, e.g. '18.7 GiB'.
    const limit = parseSize(String(r['lim'] ?? ''));
    return {
      usedBytes: num(r, 'used'),
      limitBytes: limit === null ? null : Math.round(limit),
      spilledBytes: num(r, 'spilled'),
    };
  }

  async migrate(): Promise<void> {
    this.schemaVersion = await this.db.write(async (conn) => {
      const version = await applyMigrations(migrationDriver(conn));
      this.writer.reset();
      return version;
    });
  }

  close(): Promise<void> {
    return this.db.close(() => this.writer.reset());
  }

  ingest(batch: IngestBatch): Promise<WriteResult> {
    return this.writer.ingest(batch);
  }

  async appendCalls(calls: CallRecord[]): Promise<WriteResult> {
    const batch = new CsvCallBatch();
    for (const c of calls) batch.add(c);
    return appendCallBatch(this.db, batch);
  }

  newCallBatch(): CsvCallBatch {
    return new CsvCallBatch();
  }

  restoreCallBatch(format: string, bytes: Buffer): CsvCallBatch {
    const csv = callCsvOf(format, bytes);
    if (csv === null) {
      throw new TallyError(
        'invalid_request',
        `A call batch in format ${format} cannot be read by this store, which writes ${CALL_CSV_FORMAT}.`,
      );
    }
    return new CsvCallBatch(csv);
  }

  async appendCallBatch(batch: CallBatch, opts?: { tenant?: string }): Promise<WriteResult> {
    if (!(batch instanceof CsvCallBatch)) {
      throw new TallyError('invalid_request', 'appendCallBatch takes a batch made by this store.');
    }
    return appendCallBatch(this.db, batch, opts?.tenant);
  }

  async listCalls(query: CallQuery): Promise<Page<CallRecord>> {
    const { sql, values, limit } = listCallsSql(query);
    const rows = await this.db.read((c) => queryRows(c, sql, values));
    return toPage(rows.map(callFromRow), limit);
  }

  async getCall(tenant: string, id: string): Promise<CallRecord | null> {
    const rows = await this.db.read((c) => queryRows(c, GET_CALL_SQL, [tenant, id]));
    return rows[0] ? callFromRow(rows[0]) : null;
  }

  async listTaskEvents(tenant: string, useCase: string, taskId?: string): Promise<TaskEventRecord[]> {
    const { sql, values } = listTaskEventsSql(tenant, useCase, taskId);
    const rows = await this.db.read((c) => queryRows(c, sql, values));
    return rows.map(taskFromRow);
  }

  async spend(query: SpendQuery): Promise<SpendRow[]> {
    const { sql, values } = spendSql(query);
    const rows = await this.db.read((c) => queryRows(c, sql, values));
    return rows.map((r) => spendFromRow(r, query));
  }

  async counts(tenant: string): Promise<{ calls: number; task_events: number }> {
    const rows = await this.db.read((c) => queryRows(c, COUNTS_SQL, [tenant]));
    const r = rows[0] ?? {};
    return { calls: num(r, 'calls'), task_events: num(r, 'task_events') };
  }

  putUseCase(useCase: UseCaseRecord): Promise<void> {
    return this.db.write((c) => registry.putUseCase(c, useCase));
  }

  getUseCase(tenant: string, id: string): Promise<UseCaseRecord | null> {
    return this.db.read((c) => registry.getUseCase(c, tenant, id));
  }

  listUseCases(tenant: string): Promise<UseCaseRecord[]> {
    return this.db.read((c) => registry.listUseCases(c, tenant));
  }

  addLedgerEntry(entry: LedgerEntry): Promise<WriteResult> {
    return this.db.write((c) => registry.addLedgerEntry(c, entry));
  }

  listLedger(tenant: string, useCase?: string): Promise<LedgerEntry[]> {
    return this.db.read((c) => registry.listLedger(c, tenant, useCase));
  }

  refreshRollups(): Promise<number> {
    return this.db.write((c) => refreshTaskRollup(c));
  }

  async outcomeSums(tenant: string, useCase: string, from: number, to: number): Promise<OutcomeSums> {
    // Tasks touched since the last read are rolled up first, so a read sees every committed event.
    await this.refreshRollups();
    return outcomeSums((task) => this.db.read(task), tenant, useCase, from, to);
  }

  auditSums(tenant: string, from: number, to: number): Promise<AuditSums> {
    return this.db.read((c) => auditSums(c, tenant, from, to));
  }

  humanSecondsByMonth(tenant: string, useCase: string): Promise<{ month: string; seconds: number }[]> {
    return this.db.read((c) => registry.humanSecondsByMonth(c, tenant, useCase));
  }

  putBudget(budget: BudgetRecord): Promise<void> {
    return this.db.write((c) => registry.putBudget(c, budget));
  }

  listBudgets(tenant: string): Promise<BudgetRecord[]> {
    return this.db.read((c) => registry.listBudgets(c, tenant));
  }

  deleteBudget(tenant: string, id: string): Promise<boolean> {
    return this.db.write((c) => registry.deleteBudget(c, tenant, id));
  }

  putRateLimit(limit: RateLimitRecord): Promise<void> {
    return this.db.write((c) => registry.putRateLimit(c, limit));
  }

  listRateLimits(tenant: string): Promise<RateLimitRecord[]> {
    return this.db.read((c) => registry.listRateLimits(c, tenant));
  }

  deleteRateLimit(tenant: string, id: string): Promise<boolean> {
    return this.db.write((c) => registry.deleteRateLimit(c, tenant, id));
  }

  putProvider(provider: ProviderRecord): Promise<void> {
    return this.db.write((c) => registry.putProvider(c, provider));
  }

  listProviders(): Promise<ProviderRecord[]> {
    return this.db.read((c) => registry.listProviders(c));
  }

  deleteProvider(tenant: string, id: string): Promise<boolean> {
    return this.db.write((c) => registry.deleteProvider(c, tenant, id));
  }

  addAlert(alert: AlertRecord): Promise<WriteResult> {
    return this.db.write((c) => registry.addAlert(c, alert));
  }

  listAlerts(tenant: string, limit: number): Promise<AlertRecord[]> {
    return this.db.read((c) => registry.listAlerts(c, tenant, limit));
  }

  createKey(key: KeyRecord): Promise<void> {
    return this.db.write((c) => registry.createKey(c, key));
  }

  findKeyByHash(hash: string): Promise<KeyRecord | null> {
    return this.db.read((c) => registry.findKeyByHash(c, hash));
  }

  listKeys(tenant: string): Promise<KeyRecord[]> {
    return this.db.read((c) => registry.listKeys(c, tenant));
  }

  revokeKey(tenant: string, id: string, at: number): Promise<boolean> {
    return this.db.write((c) => registry.revokeKey(c, tenant, id, at));
  }

  updateKey(tenant: string, id: string, patch: KeyPatch): Promise<KeyRecord | null> {
    return this.db.write((c) => registry.updateKey(c, tenant, id, patch));
  }

  rotateKey(tenant: string, id: string, secret: { hash: string; prefix: string }): Promise<KeyRecord | null> {
    return this.db.write((c) => registry.rotateKey(c, tenant, id, secret));
  }
}

function migrationDriver(conn: DuckDBConnection): MigrationDriver {
  return {
    dialect: DUCKDB_DIALECT,
    exec: async (sql) => {
      await conn.run(sql);
    },
    execInTransaction: (statements) =>
      inTransaction(conn, async () => {
        for (const sql of statements) await conn.run(sql);
      }),
    appliedVersions: async () => {
      const rows = await queryRows(conn, 'SELECT version FROM schema_migrations');
      return rows.map((r) => num(r, 'version'));
    },
  };
}
