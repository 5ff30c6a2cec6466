// What an idle server costs: the harness's bare proxy, the metering floor and `tally start` (a
// key with a budget and limits), on the harness's mock upstream, each first serving a burst of
// calls and then left alone. Over the idle minute: the CPU each process used (all its threads),
// and how often its main thread woke (its voluntary context switches: each return from waiting on
// its event loop is one). Baseline: the bare proxy, in the same run.
// Usage: node bench/run.mjs idle
import { readdirSync, readFileSync } from 'node:fs';
import { prepareHarness } from './gateway-overhead.mjs';
import { cpuMs, harnessLoad, startThree } from './lib.mjs';

/** How many times a thread has waited and been woken (its voluntary context switches). */
function wakeUps(pid, tid = pid) {
  const m = /voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

export async function idleBench({ seconds = 60, burst = 3000 } = {}) {
  const dir = prepareHarness();
  const three = await startThree(dir, 'idle');
  try {
    const { systems } = three;
    for (const s of Object.values(systems)) await harnessLoad(dir, s.port, burst, 16, s.headers);
    // What the burst left to do (the metering writes, a checkpoint) is done before the clock starts.
    await new Promise((r) => setTimeout(r, 5000));
    const before = Object.fromEntries(
      Object.entries(systems).map(([n, s]) => [n, { cpu: cpuMs(s.pid), woke: wakeUps(s.pid) }]),
    );
    await new Promise((r) => setTimeout(r, seconds * 1000));
    return Object.entries(systems).map(([name, s]) => ({
      name,
      threads: readdirSync(`/proc/${s.pid}/task`).length,
      cpuMsPerMin: ((cpuMs(s.pid) - before[name].cpu) * 60) / seconds,
      wakeUpsPerS: (wakeUps(s.pid) - before[name].woke) / seconds,
    }));
  } finally {
    await three.stop();
  }
}
