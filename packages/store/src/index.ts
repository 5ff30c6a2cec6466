export * from './cursor.js';
export { createDuckDbStore, type DuckDbStoreOptions } from './duckdb/duckdb-store.js';
export * from './migrate.js';
export * from './query-checks.js';
export * from './schema.js';
export * from './store.js';
