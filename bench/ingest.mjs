// HTTP ingest load: batches of 500 llm.call events (from the Azure trace), concurrency 4, each
// acknowledged only once committed to the embedded DuckDB store. Baseline in the same run: a bare
// Fastify server that parses the same bodies and stores nothing.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import {
  azureTrace,
  freePort,
  ROOT,
  startProcess,
  stop,
  TALLY_BIN,
  TALLY_NODE_ARGS,
  traceEvent,
} from './lib.mjs';

const BATCH = 500;
const CONCURRENCY = 4;
const KEY = 'tk-admin-bench-0123456789abcdef';

function makeBodies(count, prefix) {
  const rows = azureTrace();
  const bodies = [];
  for (let b = 0; b < count; b++) {
    const events = [];
    for (let i = 0; i < BATCH; i++) events.push(traceEvent(rows, b * BATCH + i, prefix));
    bodies.push(JSON.stringify({ events }));
  }
  return bodies;
}

async function load(url, bodies) {
  const pool = new Pool(url, { connections: CONCURRENCY, pipelining: 1 });
  let next = 0;
  let accepted = 0;
  let errors = 0;
  const lat = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < bodies.length) {
        const body = bodies[next++];
        const s = performance.now();
        const res = await pool.request({
          path: '/v1/events',
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
          body,
        });
        const json = await res.body.json();
        lat.push(performance.now() - s);
        if (res.statusCode !== 200) errors++;
        else accepted += json.accepted;
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  await pool.close();
  lat.sort((a, b) => a - b);
  return {
    events_per_s: Math.round(accepted / secs),
    accepted,
    errors,
    p50_ms: lat[Math.floor(lat.length * 0.5)],
    p99_ms: lat[Math.floor(lat.length * 0.99)],
  };
}

export async function ingestBench({ batches = 400 } = {}) {
  const floorBodies = makeBodies(batches, 'f');
  const port1 = await freePort();
  const floor = await startProcess([fileURLToPath(new URL('./floor-server.mjs', import.meta.url))], {
    env: { PORT: String(port1) },
  });
  const floorResult = await load(`http://127.0.0.1:${port1}`, floorBodies);
  await stop(floor.child);

  const dir = mkdtempSync(join(os.tmpdir(), 'tally-ingest-'));
  const port2 = await freePort();
  const tally = await startProcess([...TALLY_NODE_ARGS, TALLY_BIN, 'start', '--port', String(port2)], {
    env: { TALLY_DATA_DIR: dir, TALLY_ADMIN_KEY: KEY, TALLY_LOG_LEVEL: 'warn' },
  });
  // Warm up (JIT, first DuckDB pages), then measure on fresh ids.
  await load(`http://127.0.0.1:${port2}`, makeBodies(20, 'w'));
  const tallyResult = await load(`http://127.0.0.1:${port2}`, makeBodies(batches, 't'));
  await stop(tally.child);
  rmSync(dir, { recursive: true, force: true });
  return {
    floor: floorResult,
    tally: tallyResult,
    batches,
    batch: BATCH,
    concurrency: CONCURRENCY,
    root: ROOT,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(await ingestBench());
}
