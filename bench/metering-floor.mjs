// How far Tally's gateway is from the floor of a metering proxy (metering-floor-proxy.mjs): the
// harness's bare proxy, that floor and `tally start`, on the harness's mock upstream, each taking
// the same load in turn in every round (the order rotating), JSON chat calls at concurrency 16.
// Per round: each one's rate against the bare proxy's, and its CPU a call (the whole process,
// threads included) against the bare proxy's. Medians over the rounds; the first round warms up.
// Usage: node bench/run.mjs metering-floor
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { prepareHarness } from './gateway-overhead.mjs';
import {
  bareProxy,
  cpuMs,
  freePort,
  median,
  mockUpstream,
  runNode,
  startGatewayUnderTest,
  startProcess,
} from './lib.mjs';

const ADMIN = 'tk-admin-floor-0123456789';
const FLOOR = new URL('./metering-floor-proxy.mjs', import.meta.url).pathname;

export async function meteringFloor({ rounds = 9, count = 8000 } = {}) {
  const dir = prepareHarness();
  const tmp = mkdtempSync(join(os.tmpdir(), 'tally-floor-'));
  const three = await startThree(dir, tmp, 'floor');
  try {
    const { systems } = three;
    const names = Object.keys(systems);
    const per = Object.fromEntries(names.map((n) => [n, []]));
    for (let r = 0; r < rounds; r++) {
      const order = [...names.slice(r % names.length), ...names.slice(0, r % names.length)];
      const round = {};
      for (const n of order) {
        const s = systems[n];
        const c0 = cpuMs(s.pid);
        const out = await runNode([
          join(dir, 'load.mjs'),
          `http://127.0.0.1:${s.port}/v1/chat/completions`,
          String(count),
          '16',
          ...s.headers,
        ]);
        // Each one's last batch of rows goes to its store within the wait.
        await new Promise((res) => setTimeout(res, 1300));
        const { rps, errors } = JSON.parse(out);
        if (errors > 0) throw new Error(`${n}: ${errors} errors`);
        round[n] = { rps, cpuUs: ((cpuMs(s.pid) - c0) * 1000) / (count + 200) };
      }
      if (r > 0) for (const n of names) per[n].push({ ...round[n], bare: round.bare });
    }
    return names.map((n) => ({
      system: n,
      rps: median(per[n].map((x) => x.rps)),
      rateVsBare: median(per[n].map((x) => x.rps / x.bare.rps)),
      cpuUs: median(per[n].map((x) => x.cpuUs)),
      cpuVsBare: median(per[n].map((x) => x.cpuUs / x.bare.cpuUs)),
      rounds: per[n].length,
    }));
  } finally {
    await three.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * The harness's mock upstream, and in front of it the three systems these benches compare: its
 * bare proxy, the metering floor and `tally start` (a key with a budget and limits), each with
 * node's `nodeArgs` added and `envOf(system)` in its environment. The floor's DuckDB file is in
 * `tmp`. `systems` gives each one's pid, port, and the headers its calls need.
 */
export async function startThree(dir, tmp, project, { nodeArgs = [], envOf = () => ({}) } = {}) {
  const up = await freePort();
  const mock = mockUpstream(dir, up);
  const children = [mock];
  let gw = null;
  const stop = async () => {
    if (gw) await gw.stop();
    for (const c of children) c.kill();
  };
  try {
    await new Promise((r) => setTimeout(r, 500));
    const barePort = await freePort();
    const bare = bareProxy(dir, barePort, up, nodeArgs, envOf('bare'));
    children.push(bare);
    const floorPort = await freePort();
    const floor = await startProcess([...nodeArgs, FLOOR], {
      env: {
        ...envOf('floor'),
        PORT: String(floorPort),
        UPSTREAM: `http://127.0.0.1:${up}`,
        DB: join(tmp, 'floor.duckdb'),
      },
    });
    children.push(floor.child);
    gw = await startGatewayUnderTest(up, ADMIN, project, { nodeArgs, env: envOf('tally') });
    return {
      up,
      mock,
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
