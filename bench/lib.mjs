// Shared helpers for the benchmarks: free ports, child servers, trace-based events, tables.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const TALLY_BIN = `${ROOT}packages/cli/bin/tally.js`;
export const SHARED = `${ROOT}../shared`;

/** The Node options that the `tally` binary's first line starts Node with, so that a benchmark
 * that runs the binary through process.execPath measures what a user runs. */
export const TALLY_NODE_ARGS = (() => {
  const first = readFileSync(TALLY_BIN, 'utf8').split('\n', 1)[0];
  const m = /^#!.*\bnode\b(.*)$/.exec(first);
  return m ? m[1].trim().split(/\s+/).filter(Boolean) : [];
})();

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** Starts a node process and resolves once its stdout has printed `ready` (a regexp). */
export function startProcess(args, { env = {}, ready = /listening/, timeoutMs = 20_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const timer = setTimeout(() => reject(new Error(`not ready in ${timeoutMs} ms: ${out}`)), timeoutMs);
    const onData = (d) => {
      out += d;
      if (ready.test(out)) {
        clearTimeout(timer);
        resolve({ child, output: () => out });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (d) => {
      out += d;
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code}: ${out}`));
    });
  });
}

/** Runs a node script to its end and resolves with what it printed (its stderr shows through). */
export function runNode(args, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}: ${out}`))));
  });
}

/** The overhead harness's mock upstream (`mock-upstream.mjs` in `dir`) on `port`. It prints
 * nothing: give it a moment to listen. */
export function mockUpstream(dir, port) {
  return spawn(process.execPath, [`${dir}/mock-upstream.mjs`], {
    env: { ...process.env, PORT: String(port) },
    stdio: 'ignore',
  });
}

/** The overhead harness's bare proxy (`bare-proxy.mjs` in `dir`) on `port`, in front of the
 * upstream on `upPort`, with node's `nodeArgs` (a preloaded hook, say) and `env` added. It prints
 * nothing: give it a moment to listen. */
export function bareProxy(dir, port, upPort, nodeArgs = [], env = {}) {
  return spawn(process.execPath, [...nodeArgs, `${dir}/bare-proxy.mjs`], {
    env: { ...process.env, ...env, PORT: String(port), UPSTREAM: `http://127.0.0.1:${upPort}` },
    stdio: 'ignore',
  });
}

export function stop(child, signal = 'SIGTERM') {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

/** Rows of the Azure LLM inference trace (CC-BY-4.0, Patel et al., Splitwise, ISCA 2024). */
export function azureTrace() {
  const file = `${SHARED}/data/traces/azure-llm-2023/AzureLLMInferenceTrace_conv.csv`;
  if (!existsSync(file)) return [{ t: Date.UTC(2023, 10, 16, 18), input: 1000, output: 100 }];
  const lines = readFileSync(file, 'utf8').trim().split('\n').slice(1);
  return lines.map((l) => {
    const [ts, ctx, gen] = l.split(',');
    return {
      t: Date.parse(`${ts.slice(0, 23).replace(' ', 'T')}Z`),
      input: Number(ctx),
      output: Number(gen),
    };
  });
}

const PROJECTS = ['support', 'sales', 'search', 'code-review', 'marketing'];
const MODELS = [
  ['openai', 'openai-chat', 'gpt-4o'],
  ['openai', 'openai-chat', 'gpt-4o-mini'],
  ['anthropic', 'anthropic-messages', 'claude-sonnet-4-5'],
  ['google', 'gemini', 'gemini-2.5-flash'],
];

/** An llm.call event built from trace row i, with a unique id. */
export function traceEvent(rows, i, prefix = 'e') {
  const r = rows[i % rows.length];
  const [provider, api, model] = MODELS[i % MODELS.length];
  const usage =
    api === 'anthropic-messages'
      ? { input_tokens: r.input, output_tokens: r.output }
      : api === 'gemini'
        ? { promptTokenCount: r.input, candidatesTokenCount: r.output }
        : { prompt_tokens: r.input, completion_tokens: r.output };
  return {
    id: `${prefix}-${i}`,
    type: 'llm.call',
    time: new Date(r.t).toISOString(),
    project: PROJECTS[i % PROJECTS.length],
    team: `team-${i % 7}`,
    user: `u-${i % 101}`,
    provider,
    api,
    model,
    usage,
    latency_ms: 200 + (i % 900),
    status: 'ok',
  };
}

/** The median: the mean of the middle two when there is an even number of values. */
export function median(xs) {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  return sorted.length % 2 ? sorted[Math.floor(mid)] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function machine() {
  return `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
}

export function table(headers, rows) {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => `| ${cells.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`;
  return [line(headers), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

/** Resident memory of a process, MB (Linux). */
export function rssMb(pid) {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : 0;
  } catch {
    return 0;
  }
}

/** Resident memory split into anonymous (heap, buffers) and file-backed (the node binary and
 * shared libraries, which other processes share and the kernel can drop), MB (Linux). */
export function rssPartsMb(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? 0);
    return {
      rss: Math.round(kb('VmRSS') / 1024),
      anon: Math.round(kb('RssAnon') / 1024),
      file: Math.round(kb('RssFile') / 1024),
    };
  } catch {
    return { rss: 0, anon: 0, file: 0 };
  }
}

const CLOCK_TICKS = 100;

/** CPU time a process has used so far (user + system), ms (Linux; 0 once it is gone); with
 * `thread`, that thread's alone (the process's main thread: its pid). */
export function cpuMs(pid, thread = null) {
  try {
    const stat = thread === null ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`;
    const f = readFileSync(stat, 'utf8').split(') ')[1].split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/** The pid of a running process whose command line contains `needle`, or null. */
export function pidOf(needle) {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(needle)) return Number(d);
    } catch {}
  }
  return null;
}

/** A virtual key with a budget and limits high enough never to bind: the checks run, nothing blocks. */
export async function benchKey(baseUrl, adminKey, project) {
  const res = await fetch(`${baseUrl}/v1/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      project,
      team: 'perf',
      budget_usd: 1_000_000,
      period: 'month',
      rpm: 1_000_000_000,
      tpm: 2_000_000_000,
    }),
  });
  const { key } = await res.json();
  if (!key) throw new Error(`could not make a virtual key: ${res.status}`);
  return key;
}

/** Tally on a fresh data dir, proxying to an OpenAI-compatible upstream on `upPort`, with a
 * virtual key made for the benchmark. With `replica`, a `tally gateway` process in front of that
 * server takes the traffic: `port` and `pid` are then the replica's, `serverPort` and `serverPid`
 * the server's. `nodeArgs` go to node before the script (--cpu-prof). */
export async function startGatewayUnderTest(
  upPort,
  adminKey,
  project,
  { replica = false, nodeArgs = [], env: extraEnv = {}, bin = TALLY_BIN } = {},
) {
  const port = await freePort();
  const data = mkdtempSync(join(os.tmpdir(), 'tally-gw-'));
  const env = {
    TALLY_DATA_DIR: data,
    TALLY_ADMIN_KEY: adminKey,
    // The key a replica presents to the server (the server's gateway_key).
    TALLY_GATEWAY_KEY: `${adminKey}-gateway`,
    TALLY_LOG_LEVEL: 'warn',
    OPENAI_BASE_URL: `http://127.0.0.1:${upPort}/v1`,
    OPENAI_API_KEY: 'sk-bench',
    ...extraEnv,
  };
  // The binary's own Node options first, so that a caller's (a profiler's, say) come after them.
  const node = [...TALLY_NODE_ARGS, ...nodeArgs];
  const tally = await startProcess([...node, bin, 'start', '--port', String(port)], { env });
  const key = await benchKey(`http://127.0.0.1:${port}`, adminKey, project);
  let gw = null;
  let gwPort = port;
  if (replica) {
    gwPort = await freePort();
    gw = await startProcess(
      [...node, bin, 'gateway', '--server', `http://127.0.0.1:${port}`, '--port', String(gwPort)],
      { env },
    );
  }
  return {
    port: gwPort,
    serverPort: port,
    key,
    pid: (gw ?? tally).child.pid,
    serverPid: tally.child.pid,
    async stop() {
      if (gw) await stop(gw.child);
      await stop(tally.child);
      rmSync(data, { recursive: true, force: true });
    },
  };
}

/** The p50 of `n` POSTs to `path` made one after another on one connection, with the last
 * answer's size; `bodyOf(i)` gives the i-th request's JSON text. Any status but 200 fails. */
export async function serialP50(origin, path, headers, n, bodyOf) {
  const pool = new Pool(origin, { connections: 1 });
  const lat = [];
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const body = bodyOf(i);
    const t0 = performance.now();
    const r = await pool.request({
      path,
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
    });
    const b = await r.body.arrayBuffer();
    if (r.statusCode !== 200) throw new Error(`status ${r.statusCode}`);
    bytes = b.byteLength;
    lat.push(performance.now() - t0);
  }
  await pool.close();
  lat.sort((a, b) => a - b);
  return { p50: lat[lat.length >> 1], bytes };
}

const THREE_ADMIN = 'tk-admin-floor-0123456789';
const FLOOR = new URL('./metering-floor-proxy.mjs', import.meta.url).pathname;

/**
 * The harness's mock upstream, and in front of it the three systems these benches compare: its
 * bare proxy, the metering floor and `tally start` (a key with a budget and limits), each with
 * node's `nodeArgs` added and `envOf(system, tmp)` in its environment. `tmp` is a scratch directory
 * of the run's (the floor's DuckDB file is in it), removed by `stop()`. `systems` gives each one's
 * pid, port, and the headers its calls need.
 */
export async function startThree(dir, project, { nodeArgs = [], envOf = () => ({}) } = {}) {
  const tmp = mkdtempSync(join(os.tmpdir(), `tally-${project}-`));
  const up = await freePort();
  const mock = mockUpstream(dir, up);
  const children = [mock];
  let gw = null;
  const stop = async () => {
    if (gw) await gw.stop();
    for (const c of children) c.kill();
    rmSync(tmp, { recursive: true, force: true });
  };
  try {
    await new Promise((r) => setTimeout(r, 500));
    const barePort = await freePort();
    const bare = bareProxy(dir, barePort, up, nodeArgs, envOf('bare', tmp));
    children.push(bare);
    const floorPort = await freePort();
    const floor = await startProcess([...nodeArgs, FLOOR], {
      env: {
        ...envOf('floor', tmp),
        PORT: String(floorPort),
        UPSTREAM: `http://127.0.0.1:${up}`,
        DB: join(tmp, 'floor.duckdb'),
      },
    });
    children.push(floor.child);
    gw = await startGatewayUnderTest(up, THREE_ADMIN, project, { nodeArgs, env: envOf('tally', tmp) });
    return {
      up,
      mock,
      tmp,
      stop,
      systems: {
        bare: { pid: bare.pid, port: barePort, headers: [] },
        floor: { pid: floor.child.pid, port: floorPort, headers: ['authorization:Bearer tk-floor'] },
        tally: { pid: gw.pid, port: gw.port, headers: [`authorization:Bearer ${gw.key}`] },
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The order the systems `names` take their load in round `r`: rotated by one each round. */
export const rotated = (names, r) => [...names.slice(r % names.length), ...names.slice(0, r % names.length)];

/** Runs the harness's load generator (`load.mjs` in `dir`): `count` chat calls to the proxy on
 * `port` at `concurrency`, with `headers` (`name:value`) and `env` (`STREAM: '1'` for SSE); resolves
 * with what it reports (rps, p50, p90, p99, errors). */
export async function harnessLoad(dir, port, count, concurrency, headers = [], env = {}) {
  const out = await runNode(
    [
      `${dir}/load.mjs`,
      `http://127.0.0.1:${port}/v1/chat/completions`,
      String(count),
      String(concurrency),
      ...headers,
    ],
    env,
  );
  return JSON.parse(out.trim().split('\n').at(-1));
}

/**
 * A fresh embedded store for a store benchmark, migrated, in a directory of its own (named from
 * `prefix`); `opts` go to createDuckDbStore. `call(n)` is the n-th gateway call to append: a
 * UUIDv7-shaped id, no task, the store's contract fixture's attribution and usage, n ms into
 * December 2026. `close()` resolves with how many calls the store holds, once it is closed and its
 * directory removed.
 */
export async function openBenchStore(prefix, opts = {}) {
  const { createDuckDbStore } = await import('../packages/store/dist/index.js');
  const { makeCall } = await import('../packages/store/dist/contract/fixtures.js');
  const dir = mkdtempSync(join(os.tmpdir(), prefix));
  const store = await createDuckDbStore({ path: join(dir, 'tally.duckdb'), ...opts });
  await store.migrate();
  const start = Date.UTC(2026, 11, 1);
  return {
    store,
    call(n) {
      const id = `0193${n.toString(16).padStart(4, '0').slice(-4)}-${(n >>> 16).toString(16).padStart(4, '0')}-7abc-8def-${n.toString(16).padStart(12, '0')}`;
      return makeCall('default', id, { time: start + n, use_case: null, task_id: null });
    },
    async close() {
      const stored = (await store.counts('default')).calls;
      await store.close();
      rmSync(dir, { recursive: true, force: true });
      return stored;
    },
  };
}
