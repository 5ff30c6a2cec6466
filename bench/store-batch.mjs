// What a batch of metered calls costs the embedded store, by the batch's size: each size appends
// its calls (the metering sink's CSV batches, through appendCallBatch) to a fresh DuckDB file in
// a process of its own, and reports the process's CPU a call (DuckDB's threads included) and the
// median wall time of an append. Baseline: the sink's largest batch (5,000 calls), in the same run.
import { fileURLToPath } from 'node:url';
import { median, openBenchStore, runNode } from './lib.mjs';

const SELF = fileURLToPath(import.meta.url);

/** Batch sizes, and how many calls each appends (fewer for the small ones: each append's fixed
 * cost makes them slow). */
export const SIZES = [
  { batch: 1, calls: 600 },
  { batch: 20, calls: 10_000 },
  { batch: 200, calls: 40_000 },
  { batch: 1000, calls: 60_000 },
  { batch: 5000, calls: 60_000 },
];

export async function storeBatch() {
  const rows = [];
  for (const s of SIZES) {
    const out = await runNode([SELF, 'child'], { BATCH: String(s.batch), CALLS: String(s.calls) });
    rows.push({ ...s, ...JSON.parse(out.trim().split('\n').at(-1)) });
  }
  return rows;
}

async function child() {
  const size = Number(process.env.BATCH);
  const calls = Number(process.env.CALLS);
  const { store, call, close } = await openBenchStore('tally-store-batch-');
  let n = 0;
  const batchOf = () => {
    const batch = store.newCallBatch();
    for (let i = 0; i < size; i++, n++) {
      batch.add(call(n));
    }
    return batch;
  };
  // Warm-up: the first appends compile and allocate what the rest reuse.
  for (let i = 0; i < 5; i++) await store.appendCallBatch(batchOf());
  // The batches are made before the clock starts: what is timed is the store's part alone.
  const batches = Array.from({ length: Math.ceil(calls / size) }, batchOf);
  const wall = [];
  let inserted = 0;
  const t0 = process.cpuUsage();
  for (const b of batches) {
    const w = performance.now();
    inserted += (await store.appendCallBatch(b)).inserted;
    wall.push(performance.now() - w);
  }
  const cpu = process.cpuUsage(t0);
  const stored = await close();
  console.log(
    JSON.stringify({
      inserted,
      stored,
      expected: n,
      cpuUsPerCall: (cpu.user + cpu.system) / inserted,
      wallMsPerBatch: median(wall),
    }),
  );
}

if (process.argv[1] === SELF && process.argv[2] === 'child') await child();
else if (process.argv[1] === SELF) console.log(JSON.stringify(await storeBatch(), null, 2));
