// Gateway overhead, side by side in one run (shared/bench/overhead): direct calls to a mock
// upstream, a bare Node pass-through proxy, Portkey's open-source gateway, and Tally with a virtual
// key (auth, metering into DuckDB, budget and rate limits on). JSON rounds, then streaming rounds.
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  bareProxy,
  cpuMs,
  freePort,
  harnessLoad,
  median,
  mockUpstream,
  pidOf,
  rssMb,
  rssPartsMb,
  SHARED,
  startGatewayUnderTest,
} from './lib.mjs';

const HARNESS = `${SHARED}/bench/overhead`;
const ADMIN = 'tk-admin-overhead-0123456789';

export function prepareHarness() {
  // The shared copy is read-only: run it from a scratch copy with its own node_modules.
  const dir = join(os.tmpdir(), 'tally-overhead-harness');
  if (!existsSync(join(dir, 'node_modules/@portkey-ai/gateway'))) {
    rmSync(dir, { recursive: true, force: true });
    cpSync(HARNESS, dir, { recursive: true });
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], {
      cwd: dir,
      stdio: 'ignore',
    });
  }
  return dir;
}

/**
 * Tally's rate against the bare proxy's in each of the harness's rounds at `conc`, from its
 * per-round lines (`system conc {json}`): the two ran one after the other in the same round, so a
 * drift of the host's load from one round to the next moves both.
 */
export function pairedRatios(lines, conc = 16) {
  const of = (sys) =>
    lines
      .map((l) => l.split(' '))
      .filter(([s, c]) => s === sys && Number(c) === conc)
      .map((parts) => JSON.parse(parts.slice(2).join(' ')).rps);
  const bare = of('bare');
  const target = of('target');
  return target.slice(0, bare.length).map((t, i) => t / bare[i]);
}

function runHarness(dir, env) {
  const rounds = join(mkdtempSync(join(os.tmpdir(), 'tally-overhead-rounds-')), 'rounds.txt');
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [join(dir, 'run.sh')], {
      env: { ...process.env, ...env, OUT_FILE: rounds },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    child.on('exit', (code) => {
      const last = out.trim().split('\n').at(-1);
      try {
        const lines = readFileSync(rounds, 'utf8').trim().split('\n');
        resolve({
          table: out.trim().split('\n').slice(0, -1).join('\n'),
          figures: JSON.parse(last),
          paired: pairedRatios(lines),
        });
      } catch {
        reject(new Error(`harness failed (${code}): ${out}`));
      } finally {
        rmSync(dirname(rounds), { recursive: true, force: true });
      }
    });
  });
}

/**
 * CPU a call at concurrency 16, Tally's (the replica's and the metering server's, or the one
 * process's) against the bare proxy's: rounds of the harness's load taken in turn by each, on
 * the harness's mock upstream, and the median of the rounds' ratios. It is steadier than
 * throughput on a shared machine, where a neighbour's load moves every figure from one round to
 * the next.
 */
async function cpuPerCall(dir, up, gw, stream, { rounds = 7, count = 2000 } = {}) {
  const upstream = mockUpstream(dir, up);
  const barePort = await freePort();
  const bare = bareProxy(dir, barePort, up);
  await new Promise((r) => setTimeout(r, 700));
  const env = stream ? { STREAM: '1' } : {};
  const load = (port, headers) => harnessLoad(dir, port, count, 16, headers, env);
  const tallyMs = () => cpuMs(gw.pid) + (gw.serverPid !== gw.pid ? cpuMs(gw.serverPid) : 0);
  const per = [];
  try {
    for (let i = 0; i < rounds; i++) {
      const b0 = cpuMs(bare.pid);
      await load(barePort, []);
      const b = cpuMs(bare.pid) - b0;
      const t0 = tallyMs();
      await load(gw.port, [`authorization:Bearer ${gw.key}`]);
      await new Promise((r) => setTimeout(r, 1300)); // the round's last metering batch
      const t = tallyMs() - t0;
      // The first round warms both up.
      if (i > 0) per.push({ bareUs: (b * 1000) / (count + 200), tallyUs: (t * 1000) / (count + 200) });
    }
  } finally {
    bare.kill();
    upstream.kill();
  }
  return {
    tallyUs: median(per.map((p) => p.tallyUs)),
    bareUs: median(per.map((p) => p.bareUs)),
    ratio: median(per.map((p) => p.tallyUs / p.bareUs)),
  };
}

/** `replica`: the traffic goes to a `tally gateway` process that meters into a `tally start`
 * server; peakRssMb is then the replica's and serverPeakRssMb the server's. */
export async function gatewayOverhead({ rounds = 3, count = 3000, replica = false } = {}) {
  if (!existsSync(HARNESS)) throw new Error(`no harness at ${HARNESS}`);
  const dir = prepareHarness();
  const up = await freePort();
  const gw = await startGatewayUnderTest(up, ADMIN, 'bench', { replica });
  const { port, key } = gw;
  // Before the first call: what the process holds once started (modules, the catalog, the
  // tokenizer's ranks, the store's library), the floor under any peak.
  await new Promise((r) => setTimeout(r, 1000));
  const idle = rssPartsMb(gw.pid);
  // The gateway's resident memory at its peak (with its anonymous and file-backed parts), the
  // server's behind a replica, and the bare proxy's in the same run as the baseline.
  let peak = { rss: 0, anon: 0, file: 0 };
  let serverPeakRss = 0;
  let barePeakRss = 0;
  let barePid = null;
  const sampler = setInterval(() => {
    const now = rssPartsMb(gw.pid);
    if (now.rss > peak.rss) peak = now;
    serverPeakRss = Math.max(serverPeakRss, rssMb(gw.serverPid));
    barePid ??= pidOf(`${dir}/bare-proxy.mjs`);
    if (barePid) {
      const b = rssMb(barePid);
      if (b === 0) barePid = null;
      barePeakRss = Math.max(barePeakRss, b);
    }
  }, 100);
  const env = {
    UP_PORT: String(up),
    TARGET_URL: `http://127.0.0.1:${port}/v1/chat/completions`,
    TARGET_HEADERS: `authorization:Bearer ${key}`,
    ROUNDS: String(rounds),
    COUNT: String(count),
  };
  const json = await runHarness(dir, env);
  const streaming = await runHarness(dir, { ...env, STREAM: '1' });
  clearInterval(sampler);
  await new Promise((r) => setTimeout(r, 1600)); // the metering sink flushes every second
  const calls = await (
    await fetch(`http://127.0.0.1:${gw.serverPort}/v1/spend`, {
      headers: { authorization: `Bearer ${ADMIN}` },
    })
  ).json();
  json.cpu = await cpuPerCall(dir, up, gw, false);
  streaming.cpu = await cpuPerCall(dir, up, gw, true);
  await gw.stop();
  return {
    json,
    streaming,
    replica,
    idleRssMb: idle.rss,
    idleFileMb: idle.file,
    peakRssMb: peak.rss,
    peakAnonMb: peak.anon,
    peakFileMb: peak.file,
    barePeakRssMb: barePeakRss,
    serverPeakRssMb: Math.round(serverPeakRss),
    metered: calls.rows?.[0]?.calls ?? 0,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const r = await gatewayOverhead({
    rounds: Number(process.env.ROUNDS ?? 3),
    count: Number(process.env.COUNT ?? 3000),
    replica: process.env.REPLICA === '1',
  });
  console.log(r.json.table);
  console.log(r.streaming.table);
  console.log({ peakRssMb: r.peakRssMb, serverPeakRssMb: r.serverPeakRssMb, metered: r.metered });
}
