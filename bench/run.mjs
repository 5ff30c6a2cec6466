// npm run bench: every benchmark, a table each, appended to BENCHMARKS.md with the date and machine.
// Each figure is given as a ratio against a baseline measured in the same run.
import { appendFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { allocBench } from './alloc.mjs';
import { bodyCheckBench } from './body-check.mjs';
import { criticalPath } from './critical-path.mjs';
import { gatewayOverhead } from './gateway-overhead.mjs';
import { idleBench } from './idle.mjs';
import { ingestBench } from './ingest.mjs';
import { largeAnswerBench } from './large-answer.mjs';
import { largePromptBench } from './large-prompt.mjs';
import { machine, median, table } from './lib.mjs';
import { meteringFloor } from './metering-floor.mjs';
import { micro } from './micro.mjs';
import { scorecardBench } from './scorecard.mjs';
import { soak } from './soak.mjs';
import { storeBatch } from './store-batch.mjs';
import { storeMemory } from './store-memory.mjs';
import { storeRetention } from './store-retention.mjs';
import { streamMeterBench } from './stream-meter.mjs';

/** The names of the three systems metering-floor and critical-path set side by side. */
const THREE = {
  bare: 'bare proxy (baseline)',
  floor: 'metering floor (metering-floor-proxy.mjs)',
  tally: '`tally start`, a key with a budget and limits',
};

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

if (want('stream-meter')) {
  const r = await streamMeterBench();
  const us = (ns) => `${(ns / 1000).toFixed(3)} µs`;
  const t = table(
    ['per chunk', 'time', 'vs the split'],
    [
      ['split into events (floor)', us(r.floor), '1.00'],
      ['split, and meter', us(r.meter), (r.meter / r.floor).toFixed(2)],
      ['split, and parse every chunk (for comparison)', us(r.parse), (r.parse / r.floor).toFixed(2)],
    ],
  );
  sections.push(
    `### Stream metering (mitata), ${date}\n\n${r.streams} recorded OpenAI streams, ${r.chunks} chunks, recorded with include_usage ` +
      `(every chunk but the last carries "usage":null).\n\n${t}`,
  );
}

if (want('body-check')) {
  const rows = await bodyCheckBench();
  const us = (ns) => `${(ns / 1000).toFixed(2)} µs`;
  const t = table(
    ['body', 'bytes', 'JSON.parse (baseline)', 'check', 'check per KB', 'check / baseline'],
    rows.map((r) => [
      r.shape,
      r.bytes,
      us(r.parse),
      us(r.check),
      us(r.check / (r.bytes / 1024)),
      `${(r.check / r.parse).toFixed(2)}×`,
    ]),
  );
  sections.push(
    `### The gateway's check of a request body (mitata), ${date}\n\nOne walk of the top level of each call's body ` +
      `(json-edit.ts checkTopLevel: a name given twice, nesting past 512), against the JSON.parse the gateway ` +
      `already pays on it. Medians.\n\n${t}`,
  );
}

if (want('large-prompt')) {
  const r = await largePromptBench();
  const t = table(
    ['newest turn', 'characters', 'direct p50 ms', 'through tally p50 ms', 'added ms', 'tally / direct'],
    r.rows.map((x) => [
      x.lang,
      x.chars,
      x.direct.toFixed(3),
      x.tally.toFixed(3),
      (x.tally - x.direct).toFixed(3),
      (x.tally / x.direct).toFixed(2),
    ]),
  );
  sections.push(
    `### Long prompts through the gateway, ${date}\n\n${r.calls} calls a row at concurrency 1, each with a newest turn not seen before, ` +
      'against the mock upstream directly and through `tally start` with a virtual key (budget and limits on). ' +
      `The gateway counts a turn of up to 4K characters exactly and estimates a longer one from samples.\n\n${t}`,
  );
}

if (want('large-answer')) {
  const r = await largeAnswerBench();
  const t = table(
    [
      'inputs',
      'answer bytes',
      'direct p50 ms',
      'bare p50 ms',
      'tally p50 ms',
      'tally added ms',
      'tally / bare p50',
      'bare CPU ms a call',
      'tally CPU ms a call',
      'tally / bare CPU',
    ],
    r.rows.map((x) => [
      x.inputs,
      x.bytes,
      x.direct.toFixed(3),
      x.bare.toFixed(3),
      x.tally.toFixed(3),
      (x.tally - x.direct).toFixed(3),
      (x.tally / x.bare).toFixed(2),
      x.bareCpu.toFixed(2),
      x.tallyCpu.toFixed(2),
      (x.tallyCpu / x.bareCpu).toFixed(2),
    ]),
  );
  sections.push(
    `### Large embeddings answers through the gateway, ${date}\n\n${r.calls} calls a row at concurrency 1: ` +
      'embeddings batches answered with a recorded 1,536-dimension OpenAI embedding once per input, ' +
      'directly, through the bare Node proxy, and through `tally start` with a virtual key (budget and ' +
      'limits on), in the same run. CPU is user + system time of the proxy process.\n\n' +
      t,
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

if (want('scorecard')) {
  const r = await scorecardBench();
  const t = table(
    ['query', 'p50 ms', 'p95 ms', 'p95 / floor p95'],
    [
      ['one scan of the task events (floor)', r.floorP50.toFixed(1), r.floorP95.toFixed(1), '1.00'],
      ['the whole scorecard', r.p50.toFixed(1), r.p95.toFixed(1), (r.p95 / r.floorP95).toFixed(1)],
    ],
  );
  sections.push(
    `### Scorecard on DuckDB, ${date}\n\n${r.calls.toLocaleString('en-US')} calls and ${r.tasks.toLocaleString('en-US')} tasks ` +
      `(${r.taskEvents.toLocaleString('en-US')} task events) generated in SQL in ${r.genSeconds.toFixed(0)} s; the scorecard of the use case ` +
      `holding the tasks, warm, 20 runs. Target: p95 < 300 ms. It found grade ${r.grade}, handling-time lift ` +
      `${r.lift ? `${(r.lift.estimate * 100).toFixed(1)}% (the data's true effect is −23%)` : 'none'}.\n\n${t}`,
  );
}

if (want('store-batch')) {
  const rows = await storeBatch();
  const base = rows.at(-1);
  const t = table(
    [
      'calls a batch',
      'batches',
      'CPU ms a batch',
      'CPU µs a call',
      'a call / 5,000 a batch',
      'wall ms a batch (median)',
      'stored',
    ],
    rows.map((r) => [
      r.batch.toLocaleString('en-US'),
      Math.ceil(r.calls / r.batch).toLocaleString('en-US'),
      ((r.cpuUsPerCall * r.batch) / 1000).toFixed(2),
      r.cpuUsPerCall.toFixed(1),
      (r.cpuUsPerCall / base.cpuUsPerCall).toFixed(2),
      r.wallMsPerBatch.toFixed(2),
      `${r.stored} of ${r.expected}`,
    ]),
  );
  sections.push(
    `### What a batch of metered calls costs the embedded store, ${date}\n\n` +
      "Gateway calls appended to a fresh DuckDB file through the metering sink's CSV batches (appendCallBatch), one process per batch size, after five batches of warm-up; " +
      "the process's CPU (DuckDB's threads included) a batch and a call, and the median wall time of an append. Baseline: the sink's largest batch (5,000 calls), in the same run.\n\n" +
      t,
  );
}

if (want('store-memory')) {
  const r = await storeMemory();
  const base = r.rows[0];
  const t = table(
    [
      'store.memory_limit',
      ...r.rows[0].samples.map((x) => `anon MB at ${x.calls / 1000}k`),
      'peak anon MB',
      'peak / no limit',
      'CPU µs a call',
      'CPU / no limit',
      'stored',
    ],
    r.rows.map((x) => [
      x.name,
      ...x.samples.map((s) => s.anonMb),
      x.peakAnonMb,
      (x.peakAnonMb / base.peakAnonMb).toFixed(2),
      x.cpuUsPerCall.toFixed(1),
      (x.cpuUsPerCall / base.cpuUsPerCall).toFixed(2),
      `${x.stored} of ${r.calls}`,
    ]),
  );
  sections.push(
    `### The embedded store's memory as metered calls accumulate, ${date}\n\n` +
      `${r.calls.toLocaleString('en-US')} gateway calls appended in the metering sink's batches of 5,000, one process per setting; ` +
      `anonymous RSS after a full GC, and the process's CPU a call. Baseline: no memory limit and a checkpoint per 256 MB of log (the store before 2026-12-02), in the same run.\n\n${t}`,
  );
}

if (want('store-retention')) {
  const rows = await storeRetention();
  const mb = (v) => (v === null ? '—' : String(v));
  const t = table(
    [
      'writer',
      'rows written',
      'anon MB before (baseline)',
      'after the writes',
      'after CHECKPOINT',
      'DuckDB reports',
      'after the allocator released',
      'after close',
      'after reopening',
      'held for the writes / before',
      'held after the release / before',
      'stored',
    ],
    rows.map((x) => [
      x.writer,
      x.rows.toLocaleString('en-US'),
      x.beforeMb,
      x.writtenMb,
      mb(x.checkpointedMb),
      mb(x.duckdbReportsMb),
      x.releasedMb,
      x.closedMb,
      x.reopenedMb,
      `${((x.checkpointedMb ?? x.writtenMb) / x.beforeMb).toFixed(2)}×`,
      `${(x.releasedMb / x.beforeMb).toFixed(2)}×`,
      `${x.stored.toLocaleString('en-US')} of ${x.rows.toLocaleString('en-US')}`,
    ]),
  );
  sections.push(
    `### What DuckDB holds for rows it has written, ${date}\n\n` +
      'One process per line writes the rows in 4,000-row statements, then reads its anonymous RSS after a full GC ' +
      'at each step; "DuckDB reports" is the sum of `duckdb_memory()` after the checkpoint (for the store, after the ' +
      'release: the rows it has not checkpointed yet, up to its 64 MB of log). The allocator releases ' +
      'freed memory when `allocator_bulk_deallocation_flush_threshold` is lowered for one statement (plain DuckDB, ' +
      "after the checkpoint), or on the store's own timer (read 5.5 s after the last write). Tally's store has no " +
      'CHECKPOINT of its own (closing checkpoints). Baseline: the same process before the writes.\n\n' +
      t,
  );
}

if (want('alloc')) {
  const rows = [];
  for (const stream of [false, true]) {
    const [[, bare], [, tally]] = await allocBench({ stream });
    const top = (r) =>
      r.areas
        .slice(0, 4)
        .map(([a, b]) => `${a} ${(b / 1024).toFixed(1)}`)
        .join(', ');
    rows.push([stream ? 'SSE' : 'JSON', 'bare proxy', (bare.perCall / 1024).toFixed(1), '1.00', top(bare)]);
    rows.push([
      stream ? 'SSE' : 'JSON',
      'tally start',
      (tally.perCall / 1024).toFixed(1),
      (tally.perCall / bare.perCall).toFixed(2),
      top(tally),
    ]);
  }
  const t = table(['mode', 'system', 'KB allocated a call', 'vs bare', 'most, by area (KB a call)'], rows);
  sections.push(
    `### JS heap allocated a call, gateway at concurrency 16, ${date}

` +
      "Bytes V8's sampling heap profiler counts (every 1 KB on average, garbage included: what the collector clears) over 10,200 chat calls at concurrency 16 through the harness's mock upstream, for its bare proxy and for `tally start` with a key with a budget and limits, one after the other in the same run.\n\n" +
      t,
  );
}

if (want('metering-floor')) {
  const rows = await meteringFloor();
  const t = table(
    ['system', 'calls/s', 'rate / bare', 'CPU a call', 'CPU / bare'],
    rows.map((r) => [
      THREE[r.system],
      Math.round(r.rps),
      r.rateVsBare.toFixed(2),
      `${r.cpuUs.toFixed(0)} µs`,
      `${r.cpuVsBare.toFixed(2)}×`,
    ]),
  );
  sections.push(
    `### The gateway against the floor of a metering proxy, ${date}

` +
      `JSON chat calls at concurrency 16 on the harness's mock upstream, ${rows[0].rounds} rounds of 8,000 (after one to warm up), each system taking the same load in turn in every round, the order rotating. The floor does what any gateway that meters each call into an embedded store must: the key's SHA-256 looked up, the request's and the answer's JSON parsed, the call priced, and a row appended to DuckDB. Medians of the rounds' ratios to the bare proxy; CPU is the whole process's, threads included.

${t}`,
  );
}

if (want('critical-path')) {
  const rows = await criticalPath();
  const us = (ms) => `${Math.round(ms * 1000)} µs`;
  const one = table(
    ['system', 'added p50 over direct', 'pre', 'upstream', 'body', 'post', 'pre + post', '/ bare'],
    rows.map((r) => [
      THREE[r.system],
      `+${r.added.toFixed(3)} ms`,
      us(r.pre),
      us(r.upstream),
      us(r.body),
      us(r.post),
      us(r.inProxy),
      `${r.inProxyVsBare.toFixed(2)}×`,
    ]),
  );
  const pct = (x) => `${Math.round(x)} %`;
  const many = table(
    ['system', 'calls/s', 'rate / bare', 'main thread busy', 'whole proxy', 'mock upstream', 'cores idle'],
    rows.map((r) => [
      THREE[r.system],
      Math.round(r.rps),
      r.rateVsBare.toFixed(2),
      pct(r.main),
      pct(r.proc),
      pct(r.mock),
      pct(r.idle),
    ]),
  );
  sections.push(
    `### Where a call's time goes, ${date}

` +
      `The harness's bare proxy, the metering floor and \`tally start\`, on the harness's mock upstream, each taking the same load in turn in every round, the order rotating: ${rows[0].rounds} rounds after one to warm up; medians of the rounds.

` +
      `At concurrency 1 (3,000 JSON chat calls each, and as many direct to the mock in the same round): the added p50 over direct calls, and the proxy's own phases, timed inside it from node's and undici's diagnostics channels (bench/critical-path-hook.mjs). *pre*: the request's headers parsed until the upstream request is written; *upstream*: until the answer's headers are read; *body*: until its last byte; *post*: until the client's answer is written (\`res.end()\` returned).

${one}

` +
      `At concurrency 16 (8,000 calls each): the rate, and how busy the machine was meanwhile, as a share of one core (the cores idle: of both).

${many}`,
  );
}

if (want('idle')) {
  const rows = await idleBench();
  const bare = rows.find((r) => r.name === 'bare');
  const t = table(
    ['system', 'threads', 'CPU ms a minute', '− bare', 'main thread wake-ups a second', '/ bare'],
    rows.map((r) => [
      THREE[r.name],
      r.threads,
      r.cpuMsPerMin.toFixed(0),
      (r.cpuMsPerMin - bare.cpuMsPerMin).toFixed(0),
      r.wakeUpsPerS.toFixed(1),
      bare.wakeUpsPerS > 0 ? (r.wakeUpsPerS / bare.wakeUpsPerS).toFixed(1) : 'n/a',
    ]),
  );
  sections.push(
    `### What an idle server costs, ${date}\n\n` +
      "The harness's bare proxy, the metering floor and `tally start`, on the harness's mock upstream, each after a burst of 3,000 calls and 5 s to finish its writes, then left alone for a minute: " +
      "the CPU each process used (all its threads; the clock ticks at 10 ms), and how often its main thread woke (voluntary context switches). Baseline: the bare proxy, in the same run; CPU is given as a difference, since the bare proxy's is near zero.\n\n" +
      t,
  );
}

if (want('gateway')) {
  for (const replica of [false, true]) {
    // Five rounds: medians of three moved by ±15 % from run to run on the 2-core machine.
    const r = await gatewayOverhead({
      rounds: Number(process.env.ROUNDS ?? 5),
      count: Number(process.env.COUNT ?? 3000),
      replica,
    });
    sections.push(gatewayTable(r));
  }
}

function gatewayTable(r) {
  const rows = [];
  for (const [mode, res] of [
    ['JSON', r.json.figures],
    ['SSE', r.streaming.figures],
  ]) {
    for (const c of [1, 16]) {
      for (const sys of ['direct', 'bare', 'portkey', 'target']) {
        const f = res[`${sys}@${c}`];
        if (!f) continue;
        rows.push([
          mode,
          c,
          sys === 'target' ? (r.replica ? 'tally gateway' : 'tally start') : sys,
          Math.round(f.rps),
          f.p50.toFixed(3),
          f.p99.toFixed(3),
          f.add_p50.toFixed(2),
          f.rps_ratio.toFixed(2),
          sys === 'target' ? (f.rps / res[`bare@${c}`].rps).toFixed(2) : '',
          sys !== 'target'
            ? ''
            : res[`portkey@${c}`].errors > 0
              ? 'n/a'
              : (f.rps / res[`portkey@${c}`].rps).toFixed(2),
          f.errors,
        ]);
      }
    }
  }
  const t = table(
    [
      'mode',
      'conc',
      'system',
      'rps',
      'p50 ms',
      'p99 ms',
      '+p50 ms',
      'rps/direct',
      'rps/bare',
      'rps/portkey',
      'errors',
    ],
    rows,
  );
  const rss = (x) =>
    `${x.peakRssMb} MB (${x.peakAnonMb} MB anonymous, ${x.peakFileMb} MB file-backed: the node binary and libraries; the bare proxy's peak in the same run: ${x.barePeakRssMb} MB, ratio ${(x.peakRssMb / Math.max(1, x.barePeakRssMb)).toFixed(2)}); started and idle, before the first call: ${x.idleRssMb} MB (${x.idleFileMb} MB file-backed)`;
  const setup = r.replica
    ? `A \`tally gateway\` replica with a virtual key (key auth, budget and RPM/TPM limits on), metering into a \`tally start\` server over HTTP. Peak RSS of the replica: ${rss(r)}; of the server behind it: ${r.serverPeakRssMb} MB`
    : `\`tally start\` (gateway and embedded DuckDB store in one process) with a virtual key: key auth, metering into DuckDB, a budget and RPM/TPM limits on. Peak RSS of the process: ${rss(r)}`;
  const portkeyFailed = [r.json.figures, r.streaming.figures].some((res) =>
    [1, 16].some((c) => (res[`portkey@${c}`]?.errors ?? 0) > 0),
  );
  const who = r.replica ? 'the replica and the server that meters its calls' : 'the process';
  const cpu = [
    ['JSON', r.json.cpu],
    ['SSE', r.streaming.cpu],
  ]
    .map(
      ([mode, c]) =>
        `${mode} ${c.tallyUs.toFixed(0)} µs against the bare proxy's ${c.bareUs.toFixed(0)} µs (${c.ratio.toFixed(2)}×)`,
    )
    .join('; ');
  const rounds = [
    ['JSON', r.json.paired],
    ['SSE', r.streaming.paired],
  ]
    .map(
      ([mode, xs]) => `${mode} ${xs.map((x) => x.toFixed(2)).join(', ')} (median ${median(xs).toFixed(2)})`,
    )
    .join('; ');
  return (
    `### Gateway overhead (shared/bench/overhead), ${r.replica ? 'replica' : 'all-in-one'}, ${date}\n\n${setup}; calls metered: ${r.metered}. ` +
    `Targets: +p50 ≤ 0.4 ms at concurrency 1; at 16, ≥ 0.75 of bare and ≥ 3× Portkey; RSS < 150 MB.\n\n${t}\n\n` +
    (portkeyFailed
      ? 'rps/portkey is n/a where Portkey answered calls with errors (its errors column): a rate of failed calls is no baseline.\n\n'
      : '') +
    `rps/bare at 16 round by round (Tally's rate over the bare proxy's in the same round, in the order run; the table's figure is the ratio of the two medians): ${rounds}.\n\n` +
    `CPU a call at concurrency 16 (user + system time of ${who}; medians of six rounds (the mean of the middle two) taken in turn with the bare proxy, after this table): ${cpu}.`
  );
}

// Ten minutes: only when asked for by name (npm run bench -- soak).
if (only.includes('soak')) {
  for (const replica of process.env.REPLICA === '1'
    ? [true]
    : process.env.REPLICA === '0'
      ? [false]
      : [false, true]) {
    const r = await soak(undefined, replica);
    const first = r.samples[0]?.rss ?? 0;
    const last = r.samples.at(-1)?.rss ?? 0;
    const peak = Math.max(...r.samples.map((x) => x.rss));
    const t = table(
      [
        'second',
        'requests so far',
        r.replica ? 'replica RSS MB' : 'RSS MB',
        ...(r.replica ? ['server RSS MB'] : []),
      ],
      r.samples
        .filter((_, i) => i % 6 === 0 || i === r.samples.length - 1)
        .map((x) => [x.t, x.done, x.rss, ...(r.replica ? [x.serverRss] : [])]),
    );
    sections.push(
      `### Gateway soak (${r.replica ? 'a tally gateway replica' : 'tally start'}), ${date}\n\n${r.seconds} s of chat calls at concurrency 16 through a key with a budget and limits: ` +
        `${r.requests} requests, ${r.errors} errors. RSS ${first} MB at 10 s, ${last} MB at the end (${(last / first).toFixed(2)}× the first sample), peak ${peak} MB.\n\n${t}`,
    );
  }
}

const text = `\n## ${date} — ${machine()}\n\n${sections.join('\n\n')}\n`;
console.log(text);
if (!process.env.BENCH_NO_RECORD) {
  appendFileSync(fileURLToPath(new URL('../BENCHMARKS.md', import.meta.url)), text);
}
