import { TallyError } from '@tally/core';
import { MIGRATIONS, MIGRATIONS_TABLE_SQL, migrationSql, SCHEMA_VERSION, type SqlDialect } from './schema.js';

/** What an adapter gives the migration runner. */
export interface MigrationDriver {
  readonly dialect: SqlDialect;
  exec(sql: string): Promise<void>;
  /** Runs the statements in one transaction: all of them or none. */
  execInTransaction(statements: readonly string[]): Promise<void>;
  appliedVersions(): Promise<number[]>;
}

/** Applies the pending migrations in order, each in its own transaction with its row in
 * schema_migrations, and returns the schema version. Safe to call on every start. */
export async function applyMigrations(driver: MigrationDriver): Promise<number> {
  await driver.exec(MIGRATIONS_TABLE_SQL);
  const applied = new Set(await driver.appliedVersions());
  const newest = Math.max(0, ...applied);
  if (newest > SCHEMA_VERSION) {
    throw new TallyError(
      'store_unavailable',
      `The database schema is version ${newest}, newer than this version of Tally knows (${SCHEMA_VERSION}). Upgrade Tally.`,
    );
  }
  for (const m of MIGRATIONS) {
    if (applied.has(m.version)) continue;
    const name = m.name.replaceAll("'", "''");
    await driver.execInTransaction([
      ...migrationSql(m, driver.dialect),
      `INSERT INTO schema_migrations (version, name, applied_at) VALUES (${m.version}, '${name}', CURRENT_TIMESTAMP)`,
    ]);
  }
  return SCHEMA_VERSION;
}
