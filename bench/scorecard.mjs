// The scorecard over 10 million calls and 1 million tasks on the embedded DuckDB store. The data
// are generated in SQL (a holdout use case with covariates, humans, QA samples and calls, beside
// other use cases' calls), then the scorecard is timed warm. Baseline in the same run: one scan of
// the use case's task events (a COUNT and a SUM), the floor for any query that reads them.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { createDuckDbStore } from '@tally/store';
import { scorecardFor } from '../packages/server/dist/scorecards.js';

const DAY = 86_400_000;

function spec() {
  return {
    owners: { product: { name: 'Ana' }, finance: { name: 'Bo' }, data: { name: 'Cy' } },
    smart: { task: 'triage', metric: 'handling time', baseline: '8 min', target: '6 min', time_box: 'Q1' },
    baseline: {
      monthly_volume: 500000,
      cost_per_task_usd: '3.10',
      handling_seconds: 480,
      error_rate: 0.1,
      measured_at: '2026-08-01',
    },
    data_readiness: [{ item: 'exported', done: true }],
    success_criteria: {},
    holdout: { share: 0.2, salt: 'bench' },
    unit_value_usd: '4.20',
    reviewer_hourly_usd: '45',
    history: [],
  };
}

async function generate(path, { tasks, calls, end }) {
  const db = await DuckDBInstance.create(path, { memory_limit: '6GB' });
  const c = await db.connect();
  const span = 56 * DAY;
  const start = end - span;
  // Deterministic pseudo-random numbers from the row number: hash(i, k) in [0, 1).
  const u = (i, k) => `((hash(${i} * 7919 + ${k}) % 1000000)::DOUBLE / 1000000)`;
  const t0 = performance.now();
  await c.run(`CREATE TEMP TABLE tk AS SELECT i,
      'T-' || i AS task_id,
      make_timestamptz((${start} + (i * ${span} // ${tasks})) * 1000) AS t,
      CASE WHEN ${u('i', 1)} < 0.2 THEN 'holdout' ELSE 'ai' END AS arm,
      ${u('i', 2)} AS r_used, ${u('i', 3)} AS r_out, ${u('i', 4)} AS r_h, ${u('i', 5)} AS r_q,
      480 * exp(0.45 * sqrt(-2 * ln(${u('i', 6)} + 1e-9)) * cos(6.283185 * ${u('i', 7)})) AS d
    FROM range(${tasks}) r(i)`);
  await c.run(`INSERT INTO task_events (tenant, id, type, time, use_case, task_id, "user", team, arm, covariate, call_ids, outcome, handling_seconds, value_nano, kind, seconds, pass, score, reviewer, reason)
    SELECT 'default', 'el-' || i, 'task.eligible', t, 'bench', task_id, 'u-' || (i % 500), 'cx', arm, d * (0.8 + 0.4 * r_h), '[]', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM tk
    UNION ALL
    SELECT 'default', 'au-' || i, 'task.ai_used', t + INTERVAL 5 SECOND, 'bench', task_id, 'u-' || (i % 500), 'cx', NULL, NULL, '[]', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM tk WHERE arm = 'ai' AND r_used < 0.92
    UNION ALL
    SELECT 'default', 'co-' || i, 'task.completed', t + INTERVAL 10 MINUTE, 'bench', task_id, 'u-' || (i % 500), 'cx', NULL, NULL, '[]',
      CASE WHEN r_out < 0.91 THEN 'success' WHEN r_out < 0.97 THEN 'failure' ELSE 'abandoned' END,
      round(d * CASE WHEN arm = 'ai' AND r_used < 0.92 THEN 0.75 ELSE 1 END, 1),
      CASE WHEN r_out < 0.91 THEN 4200000000 ELSE NULL END, NULL, NULL, NULL, NULL, NULL, NULL FROM tk
    UNION ALL
    SELECT 'default', 'hu-' || i, 'task.human', t + INTERVAL 8 MINUTE, 'bench', task_id, 'u-' || (i % 500), 'cx', NULL, NULL, '[]', NULL, NULL, NULL,
      CASE WHEN r_h < 0.06 THEN 'edit' ELSE 'review' END, CASE WHEN r_h < 0.06 THEN 45 ELSE 30 END, NULL, NULL, NULL, NULL FROM tk WHERE arm = 'ai' AND r_h < 0.16
    UNION ALL
    SELECT 'default', 'qa-' || i, 'task.quality', t + INTERVAL 1 HOUR, 'bench', task_id, 'u-' || (i % 500), 'cx', NULL, NULL, '[]', NULL, NULL, NULL, NULL, NULL, r_q < 0.0475, NULL, 'qa-1', NULL FROM tk WHERE r_q < 0.05`);
  await c.run(`INSERT INTO calls SELECT 'default', 'c-' || j,
      make_timestamptz((${start} + (j * ${span} // ${calls})) * 1000),
      CASE WHEN j % 8 = 0 THEN 'support' ELSE 'proj-' || (j % 7) END, 'cx', 'u-' || (j % 500),
      CASE WHEN j % 8 = 0 THEN 'bench' ELSE 'other-' || (j % 7) END,
      CASE WHEN j % 8 = 0 THEN 'T-' || ((j // 8) % ${tasks}) ELSE NULL END,
      'key-1', '{}', 'openai', 'openai-chat', 'gpt-4o-mini', 'gpt-4o-mini-2024-07-18',
      1800, 220, 600, 0, 0, 0, 0, 0, 0, 0,
      402000, 402000, 'priced', 'bench', 300 + (j % 1700), NULL, 'ok', NULL, 'miss', NULL, 0, 0
    FROM range(${calls}) r(j)`);
  // A bulk load marks what it wrote for the rollup, as ingest does; the first read rolls it up.
  await c.run('INSERT INTO task_rollup_dirty SELECT DISTINCT tenant, use_case, task_id FROM task_events');
  await c.run('CHECKPOINT');
  const secs = (performance.now() - t0) / 1000;
  c.closeSync();
  db.closeSync();
  return secs;
}

const q = (xs, p) => xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];

export async function scorecardBench({ tasks = 1_000_000, calls = 10_000_000, runs = 20 } = {}) {
  const dir = mkdtempSync(join(os.tmpdir(), 'tally-scorecard-'));
  const path = join(dir, 'bench.duckdb');
  const end = Date.UTC(2026, 10, 30);
  try {
    let store = await createDuckDbStore({ path, memoryLimit: '2GB' });
    await store.migrate();
    await store.putUseCase({
      tenant: 'default',
      id: 'bench',
      name: 'Bench triage',
      department: 'Support',
      stage: 'pilot',
      spec: spec(),
      created_at: end,
      updated_at: end,
    });
    await store.close();
    const genSeconds = await generate(path, { tasks, calls, end });
    store = await createDuckDbStore({ path, memoryLimit: '2GB' });
    const counts = await store.counts('default');
    const rec = await store.getUseCase('default', 'bench');
    const period = { from: end - 56 * DAY, to: end };
    const cold = performance.now();
    const card = await scorecardFor(store, rec, period, end);
    const firstReadMs = performance.now() - cold;
    const times = [];
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      await scorecardFor(store, rec, period, end);
      times.push(performance.now() - t);
    }
    await store.close();
    // The floor: one scan of the same task events, on its own connection.
    const db = await DuckDBInstance.create(path, { memory_limit: '2GB' });
    const c = await db.connect();
    const floor = [];
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      await c.runAndReadAll(
        "SELECT count(*), sum(handling_seconds) FROM task_events WHERE tenant = 'default' AND use_case = 'bench'",
      );
      floor.push(performance.now() - t);
    }
    c.closeSync();
    db.closeSync();
    const handling = card.buckets.speed.find((m) => m.key === 'handling_seconds');
    return {
      tasks,
      calls: counts.calls,
      taskEvents: counts.task_events,
      genSeconds,
      firstReadMs,
      p50: q(times, 0.5),
      p95: q(times, 0.95),
      floorP50: q(floor, 0.5),
      floorP95: q(floor, 0.95),
      grade: card.evidence.grade,
      lift: handling?.comparison?.lift ?? null,
    };
  } finally {
    if (process.env.KEEP_DB) console.log('kept', path);
    else rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const r = await scorecardBench({
    tasks: Number(process.env.TASKS ?? 1_000_000),
    calls: Number(process.env.CALLS ?? 10_000_000),
  });
  console.log(r);
}
