// What DuckDB keeps in memory for rows written, after they are checkpointed: one process per case
// writes N rows in 4,000-row statements, then reads its anonymous RSS after a full GC at each step
// (before, after the writes, after a CHECKPOINT, after its allocator is made to hand freed memory
// back, after closing the database, after reopening it), with what DuckDB itself reports
// (`duckdb_memory()`) after the checkpoint. Two writers: plain DuckDB SQL on a narrow table (no
// Tally code), which releases by lowering `allocator_bulk_deallocation_flush_threshold` for one
// statement; and Tally's store appending gateway calls as the metering sink does, which releases
// on its own timer (read RELEASE_EVERY_MS after the last write). Baseline: the same process before
// the writes.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runNode } from './lib.mjs';

const SELF = fileURLToPath(import.meta.url);
const BATCH = 4000;

export const CASES = [
  { writer: 'plain DuckDB, 8 columns and a primary key', kind: 'plain', rows: 64_000 },
  { writer: 'plain DuckDB, 8 columns and a primary key', kind: 'plain', rows: 256_000 },
  { writer: "Tally's store, gateway calls", kind: 'store', rows: 64_000 },
  { writer: "Tally's store, gateway calls", kind: 'store', rows: 256_000 },
];

export async function storeRetention() {
  const rows = [];
  for (const c of CASES) {
    const out = await runNode(['--expose-gc', SELF, 'child'], { KIND: c.kind, ROWS: String(c.rows) });
    rows.push({ ...c, ...JSON.parse(out.trim().split('\n').at(-1)) });
  }
  return rows;
}

function anonMb() {
  globalThis.gc?.();
  const m = /RssAnon:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : 0;
}

const reported = async (conn) => {
  const r = await conn.runAndReadAll('SELECT sum(memory_usage_bytes) AS b FROM duckdb_memory()');
  return Math.round(Number(r.getRowObjects()[0].b) / 2 ** 20);
};

async function plain(dir, n) {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const path = join(dir, 'plain.duckdb');
  let db = await DuckDBInstance.create(path);
  let conn = await db.connect();
  await conn.run(
    `CREATE TABLE t (tenant VARCHAR, id VARCHAR, project VARCHAR, team VARCHAR, model VARCHAR,
       tokens INTEGER, cost BIGINT, time TIMESTAMPTZ, PRIMARY KEY (tenant, id))`,
  );
  const out = { beforeMb: anonMb() };
  for (let b = 0; b * BATCH < n; b++) {
    await conn.run(
      `INSERT INTO t SELECT 'default', 'call-' || (${b * BATCH} + r)::VARCHAR || '-7abc-8def', 'support',
         'team-' || (r % 7)::VARCHAR, 'gpt-4o-mini-2024-07-18', r, r * 1000, now() FROM range(${BATCH}) t(r)`,
    );
  }
  out.writtenMb = anonMb();
  await conn.run('CHECKPOINT');
  out.checkpointedMb = anonMb();
  out.duckdbReportsMb = await reported(conn);
  await conn.run("SET allocator_bulk_deallocation_flush_threshold = '0MB'");
  await conn.run('SELECT 1');
  await conn.run("SET allocator_bulk_deallocation_flush_threshold = '512MiB'");
  out.releasedMb = anonMb();
  conn.closeSync();
  db.closeSync();
  out.closedMb = anonMb();
  db = await DuckDBInstance.create(path);
  conn = await db.connect();
  const count = await conn.runAndReadAll('SELECT count(*) AS n FROM t');
  out.reopenedMb = anonMb();
  out.stored = Number(count.getRowObjects()[0].n);
  conn.closeSync();
  db.closeSync();
  return out;
}

async function store(dir, n) {
  const { createDuckDbStore } = await import('../packages/store/dist/index.js');
  const { makeCall } = await import('../packages/store/dist/contract/fixtures.js');
  const { RELEASE_EVERY_MS } = await import('../packages/store/dist/duckdb/duckdb-database.js');
  const path = join(dir, 'tally.duckdb');
  let s = await createDuckDbStore({ path });
  await s.migrate();
  const out = { beforeMb: anonMb() };
  const start = Date.UTC(2026, 11, 1);
  for (let b = 0; b * BATCH < n; b++) {
    const batch = s.newCallBatch();
    for (let i = 0; i < BATCH; i++) {
      const k = b * BATCH + i;
      batch.add(
        makeCall('default', `call-${k}-7abc-8def`, { time: start + k, use_case: null, task_id: null }),
      );
    }
    await s.appendCallBatch(batch);
  }
  out.writtenMb = anonMb();
  await new Promise((r) => setTimeout(r, RELEASE_EVERY_MS + 500));
  out.releasedMb = anonMb();
  // The rows not yet checkpointed (up to the store's checkpoint threshold) are most of it.
  out.duckdbReportsMb = Math.round(Number((await s.memory()).usedBytes) / 2 ** 20);
  // The store has no CHECKPOINT of its own: closing it checkpoints, so the two steps are one here.
  await s.close();
  out.checkpointedMb = null;
  out.closedMb = anonMb();
  s = await createDuckDbStore({ path });
  out.stored = (await s.counts('default')).calls;
  out.reopenedMb = anonMb();
  await s.close();
  return out;
}

async function child() {
  const dir = mkdtempSync(join(os.tmpdir(), 'tally-store-retention-'));
  const n = Number(process.env.ROWS);
  try {
    const out = process.env.KIND === 'plain' ? await plain(dir, n) : await store(dir, n);
    console.log(JSON.stringify(out));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === SELF && process.argv[2] === 'child') await child();
else if (process.argv[1] === SELF) console.log(JSON.stringify(await storeRetention(), null, 2));
