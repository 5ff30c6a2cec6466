// The embedded store's memory as metered calls accumulate: one process per setting appends a
// million gateway calls in the metering sink's batches (5,000 calls of CSV), and reports its
// anonymous RSS along the way, its CPU a call, and the calls stored. Baseline: DuckDB's own
// default (no memory limit) with the checkpoint threshold the store had before 2026-12-02 (256 MB
// of log), in the same run.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { openBenchStore, runNode } from './lib.mjs';

const SELF = fileURLToPath(import.meta.url);
const BATCH = 5000;

export const SETTINGS = [
  { name: 'no limit, checkpoint at 256 MB of log', memoryLimit: null, checkpointThreshold: '256MB' },
  { name: "no limit, 64 MB (tally's default)", memoryLimit: null },
  { name: '256MB', memoryLimit: '256MB' },
  { name: '64MB (the smallest allowed)', memoryLimit: '64MB' },
];

/** Runs every setting in its own process; `calls` a setting, sampled every `every`. */
export async function storeMemory({ calls = 1_000_000, every = 250_000 } = {}) {
  const rows = [];
  for (const s of SETTINGS) {
    const out = await runNode(['--expose-gc', SELF, 'child'], {
      CALLS: String(calls),
      EVERY: String(every),
      ...(s.memoryLimit ? { LIMIT: s.memoryLimit } : {}),
      ...(s.checkpointThreshold ? { CHECKPOINT: s.checkpointThreshold } : {}),
    });
    rows.push({ ...s, ...JSON.parse(out.trim().split('\n').at(-1)) });
  }
  return { calls, every, rows };
}

function anonMb() {
  const m = /RssAnon:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : 0;
}

async function child() {
  const calls = Number(process.env.CALLS);
  const every = Number(process.env.EVERY);
  const { store, call, close } = await openBenchStore('tally-store-memory-', {
    memoryLimit: process.env.LIMIT,
    checkpointThreshold: process.env.CHECKPOINT,
  });
  const t0 = process.cpuUsage();
  const samples = [];
  let peak = 0;
  let inserted = 0;
  for (let b = 0; b * BATCH < calls; b++) {
    const batch = store.newCallBatch();
    for (let i = 0; i < BATCH; i++) batch.add(call(b * BATCH + i));
    inserted += (await store.appendCallBatch(batch)).inserted;
    globalThis.gc?.();
    const rss = anonMb();
    peak = Math.max(peak, rss);
    if (((b + 1) * BATCH) % every === 0) samples.push({ calls: (b + 1) * BATCH, anonMb: rss });
  }
  const cpu = process.cpuUsage(t0);
  const stored = await close();
  console.log(
    JSON.stringify({
      inserted,
      stored,
      peakAnonMb: peak,
      cpuUsPerCall: (cpu.user + cpu.system) / calls,
      samples,
    }),
  );
}

if (process.argv[1] === SELF && process.argv[2] === 'child') await child();
else if (process.argv[1] === SELF) console.log(JSON.stringify(await storeMemory(), null, 2));
