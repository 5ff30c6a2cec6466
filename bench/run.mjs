// npm run bench: every benchmark, a table each, appended to BENCHMARKS.md with the date and machine.
// Each figure is given as a ratio against a baseline measured in the same run.
import { appendFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ingestBench } from './ingest.mjs';
import { machine, table } from './lib.mjs';
import { micro } from './micro.mjs';

const only = process.argv.slice(2);
const want = (name) => only.length === 0 || only.includes(name);
const date = new Date().toISOString().slice(0, 10);
const sections = [];

if (want('pricing')) {
  const rows = await micro();
  const t = table(
    ['usage flavour', 'JSON.parse line (baseline)', 'normalise usage', 'price one call', 'price / baseline'],
    rows.map((r) => [
      r.name,
      `${(r.base / 1000).toFixed(2)} µs`,
      `${(r.norm / 1000).toFixed(2)} µs`,
      `${(r.price / 1000).toFixed(2)} µs`,
      `${(r.price / r.base).toFixed(2)}×`,
    ]),
  );
  sections.push(
    `### Pricing and normalisation (mitata), ${date}\n\nTarget: pricing one call < 2 µs.\n\n${t}`,
  );
}

if (want('ingest')) {
  const r = await ingestBench();
  const t = table(
    ['server', 'events/s', 'p50 ms/batch', 'p99 ms/batch', 'errors', 'vs floor'],
    [
      [
        'bare Fastify, parse only (floor)',
        r.floor.events_per_s,
        r.floor.p50_ms.toFixed(1),
        r.floor.p99_ms.toFixed(1),
        r.floor.errors,
        '1.00',
      ],
      [
        'tally, durable into DuckDB',
        r.tally.events_per_s,
        r.tally.p50_ms.toFixed(1),
        r.tally.p99_ms.toFixed(1),
        r.tally.errors,
        (r.tally.events_per_s / r.floor.events_per_s).toFixed(2),
      ],
    ],
  );
  sections.push(
    `### HTTP ingest, ${date}\n\n${r.batches} batches of ${r.batch} llm.call events (Azure trace), concurrency ${r.concurrency}; ` +
      `each acknowledged once committed. Target: ≥ 50,000 events/s.\n\n${t}`,
  );
}

const text = `\n## ${date} — ${machine()}\n\n${sections.join('\n\n')}\n`;
console.log(text);
if (!process.env.BENCH_NO_RECORD) {
  appendFileSync(fileURLToPath(new URL('../BENCHMARKS.md', import.meta.url)), text);
}
