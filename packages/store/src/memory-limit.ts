/** Sizes and thresholds for the embedded store's memory; no DuckDB here, so that the server's
 * config can check them without loading the native library. */

/** Without a memory limit: 64 MB of log, about 250,000 calls, which hold ~110 MB uncompressed
 * until the checkpoint writes them out. A checkpoint rewrites the whole primary-key index of
 * `calls` (duckdb/duckdb#24848), so its cost grows with the table (~0.5 s at 2M calls): at DuckDB's
 * default (16 MB, ~70k calls) that halved ingest throughput. At 64 MB, ingest of 2.5M calls held
 * 57–66k events/s against 51–77k/s at 256 MB, and the metering append cost 1.18× the CPU, for
 * half the memory. The price is a log replay after a crash (about 1 s per 100k calls); a clean
 * close checkpoints. */
export const DEFAULT_CHECKPOINT_THRESHOLD = '64MB';

const UNITS: Record<string, number> = {
  '': 1,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  KI: 2 ** 10,
  MI: 2 ** 20,
  GI: 2 ** 30,
  TI: 2 ** 40,
};

/** Bytes in a DuckDB size such as '512MB', '1GiB' or '64 mb'; null for any other text. */
export function parseSize(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]I?)?B?\s*$/i.exec(text);
  if (!m) return null;
  const unit = UNITS[(m[2] ?? '').toUpperCase()];
  return unit === undefined ? null : Number(m[1]) * unit;
}

/** The smallest memory limit the store accepts. Below about 40 MB, DuckDB 1.5 fails writes for
 * want of memory, and a commit that fails that way leaves the primary key's index holding the ids
 * it rolled back: those calls could never be stored. 48 MB held for a million calls; this keeps a
 * margin above it. */
const MIN_MEMORY_LIMIT_BYTES = 64e6;

/** Why a memory limit cannot be used, or null if it can. */
export function memoryLimitProblem(limit: string): string | null {
  const bytes = parseSize(limit);
  return bytes === null || bytes < MIN_MEMORY_LIMIT_BYTES ? 'must be a size of at least 64MB' : null;
}

/**
 * The checkpoint threshold under a memory limit. Rows appended since the last checkpoint are held
 * uncompressed, about 2.3 bytes for each byte of log: at the default threshold that is ~450 MB
 * just before a checkpoint. Past the limit DuckDB spills them to temporary files, and writes them
 * twice. A checkpoint at a quarter of the limit keeps them near half of it, with room left for
 * queries. Without a limit, or with one it cannot read, the default stays.
 */
export function checkpointThresholdFor(memoryLimit: string | undefined): string {
  const bytes = memoryLimit === undefined ? null : parseSize(memoryLimit);
  if (bytes === null) return DEFAULT_CHECKPOINT_THRESHOLD;
  const mb = Math.floor(bytes / 4 / 2 ** 20);
  return `${Math.min(256, Math.max(4, mb))}MB`;
}
