import type { DuckDBConnection, DuckDBValue } from '@duckdb/node-api';
import type { Row } from './duckdb-values.js';

/** Collects bound values and names them $1, $2, ... in the order they are added. */
export class Params {
  readonly values: DuckDBValue[] = [];

  add(value: DuckDBValue): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

export async function queryRows(
  conn: DuckDBConnection,
  sql: string,
  values: DuckDBValue[] = [],
): Promise<Row[]> {
  const reader = await conn.runAndReadAll(sql, values);
  return reader.getRowObjects();
}

/** Runs a statement and returns how many rows it changed. */
export async function execute(
  conn: DuckDBConnection,
  sql: string,
  values: DuckDBValue[] = [],
): Promise<number> {
  const result = await conn.run(sql, values);
  return result.rowsChanged;
}

/** Runs `fn` in one transaction on `conn`: committed if it resolves, rolled back if it throws. */
export async function inTransaction<T>(conn: DuckDBConnection, fn: () => Promise<T>): Promise<T> {
  await conn.run('BEGIN TRANSACTION');
  try {
    const out = await fn();
    await conn.run('COMMIT');
    return out;
  } catch (err) {
    await conn.run('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
