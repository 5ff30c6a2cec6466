export * from './call-csv.js';
export * from './cursor.js';
export * from './memory-limit.js';
export * from './migrate.js';
export * from './query-checks.js';
export * from './schema.js';
export * from './store.js';

import type { DuckDbStoreOptions } from './duckdb/duckdb-store.js';
import type { Store } from './store.js';

export type { DuckDbStoreOptions };

/** The embedded store. DuckDB (its native library, ~10 MB resident) is loaded only by the
 * processes that open one: a gateway replica, which meters to its server, never does. */
export async function createDuckDbStore(opts: DuckDbStoreOptions): Promise<Store> {
  const { createDuckDbStore: create } = await import('./duckdb/duckdb-store.js');
  return create(opts);
}
export { TextBuffer } from './text-buffer.js';
