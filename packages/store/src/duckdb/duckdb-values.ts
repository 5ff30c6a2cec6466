import { type DuckDBTimestampTZValue, type DuckDBValue, timestampTZValue } from '@duckdb/node-api';

/** One result row, keyed by column name. */
export type Row = Record<string, DuckDBValue>;

/** Epoch milliseconds as a TIMESTAMPTZ value. Stored at whole milliseconds, so that a time reads
 * back exactly as the cursor of a page holds it. */
export function ts(ms: number): DuckDBTimestampTZValue {
  return timestampTZValue(BigInt(Math.round(ms)) * 1000n);
}

export function tsOrNull(ms: number | null): DuckDBTimestampTZValue | null {
  return ms === null ? null : ts(ms);
}

function wrongType(key: string, v: DuckDBValue, want: string): Error {
  return new Error(`column ${key}: expected ${want}, got ${typeof v}`);
}

export function str(row: Row, key: string): string {
  const v = row[key];
  if (typeof v !== 'string') throw wrongType(key, v ?? null, 'string');
  return v;
}

export function strOrNull(row: Row, key: string): string | null {
  const v = row[key];
  return v === null || v === undefined ? null : str(row, key);
}

/** INTEGER and DOUBLE come back as number, BIGINT and HUGEINT (sums, counts) as bigint. */
export function num(row: Row, key: string): number {
  const v = row[key];
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  throw wrongType(key, v ?? null, 'number');
}

export function numOrNull(row: Row, key: string): number | null {
  const v = row[key];
  return v === null || v === undefined ? null : num(row, key);
}

/** Money: never through a float. HUGEINT sums arrive as bigint too. */
export function big(row: Row, key: string): bigint {
  const v = row[key];
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
  throw wrongType(key, v ?? null, 'bigint');
}

export function bigOrNull(row: Row, key: string): bigint | null {
  const v = row[key];
  return v === null || v === undefined ? null : big(row, key);
}

export function boolOrNull(row: Row, key: string): boolean | null {
  const v = row[key];
  if (v === null || v === undefined) return null;
  if (typeof v !== 'boolean') throw wrongType(key, v, 'boolean');
  return v;
}

export function json<T>(row: Row, key: string): T {
  return JSON.parse(str(row, key)) as T;
}
