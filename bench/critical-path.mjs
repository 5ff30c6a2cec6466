// Where a call's time goes, in the bare proxy, the metering floor (metering-floor-proxy.mjs) and
// `tally start`, on the harness's mock upstream, each taking the same load in turn in every round
// (the order rotating; the first round warms up):
// - at concurrency 1: the added p50 over direct calls to the mock, and each proxy's own phases
//   (critical-path-hook.mjs): before the upstream request is written, the upstream's answer, and
//   after its last byte until the client's answer is written;
// - at concurrency 16: the rate, and how busy the machine is meanwhile: the proxy's main thread,
//   the whole proxy (its threads included), the mock upstream, and the cores left idle.
// Usage: node bench/run.mjs critical-path
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { prepareHarness } from './gateway-overhead.mjs';
import { cpuMs, harnessLoad, median, rotated, startThree } from './lib.mjs';

const HOOK = new URL('./critical-path-hook.mjs', import.meta.url).pathname;
const mainCpu = (pid) => cpuMs(pid, pid);
/** The machine's idle and total jiffies so far. */
function machineTicks() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return { idle: (f[3] ?? 0) + (f[4] ?? 0), total: f.reduce((a, b) => a + b, 0) };
}

export async function criticalPath({ rounds = 5, serial = 3000, count = 8000 } = {}) {
  const dir = prepareHarness();
  const out = (tmp, name) => join(tmp, `${name}.json`);
  const three = await startThree(dir, 'path', {
    nodeArgs: ['--import', HOOK],
    envOf: (name, tmp) => ({ CRITICAL_PATH_OUT: out(tmp, name) }),
  });
  try {
    const { systems, up, mock } = three;
    const load = async (port, n, conc, headers) => {
      const r = await harnessLoad(dir, port, n, conc, headers);
      if (r.errors > 0) throw new Error(`${r.errors} errors on port ${port}`);
      return r;
    };
    const names = Object.keys(systems);
    const per = Object.fromEntries(names.map((n) => [n, []]));
    for (let r = 0; r < rounds; r++) {
      const direct = await load(up, serial, 1, []);
      for (const n of rotated(names, r)) {
        const s = systems[n];
        // Concurrency 1: the added p50, and the proxy's phases.
        const one = await load(s.port, serial, 1, s.headers);
        process.kill(s.pid, 'SIGUSR2');
        await new Promise((res) => setTimeout(res, 300));
        const phases = JSON.parse(readFileSync(out(three.tmp, n), 'utf8'));
        // Concurrency 16: the rate, and how busy each part of the machine is meanwhile.
        const m0 = mainCpu(s.pid);
        const p0 = cpuMs(s.pid);
        const u0 = cpuMs(mock.pid);
        const t0 = machineTicks();
        const w0 = performance.now();
        const many = await load(s.port, count, 16, s.headers);
        const wall = performance.now() - w0;
        const t1 = machineTicks();
        const pct = (ms) => (100 * ms) / wall;
        if (r > 0)
          per[n].push({
            added: one.p50 - direct.p50,
            ...phases,
            rps: many.rps,
            main: pct(mainCpu(s.pid) - m0),
            proc: pct(cpuMs(s.pid) - p0),
            mock: pct(cpuMs(mock.pid) - u0),
            idle: (100 * (t1.idle - t0.idle)) / (t1.total - t0.total),
          });
        // Each one's last rows go to its store before the next one's load.
        await new Promise((res) => setTimeout(res, 1300));
      }
    }
    const med = (n, f) => median(per[n].map((x) => x[f]));
    return names.map((n) => ({
      system: n,
      rounds: per[n].length,
      added: med(n, 'added'),
      pre: med(n, 'pre'),
      upstream: med(n, 'upstream'),
      body: med(n, 'body'),
      post: med(n, 'post'),
      inProxy: med(n, 'pre') + med(n, 'post'),
      inProxyVsBare: (med(n, 'pre') + med(n, 'post')) / (med('bare', 'pre') + med('bare', 'post')),
      rps: med(n, 'rps'),
      rateVsBare: median(per[n].map((x, i) => x.rps / per.bare[i].rps)),
      main: med(n, 'main'),
      proc: med(n, 'proc'),
      mock: med(n, 'mock'),
      idle: med(n, 'idle'),
    }));
  } finally {
    await three.stop();
  }
}
