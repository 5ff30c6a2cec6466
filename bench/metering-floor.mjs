import { prepareHarness } from './gateway-overhead.mjs';
import { cpuMs, harnessLoad, median, rotated, startThree } from './lib.mjs';

export async function meteringFloor({ rounds = 9, count = 8000 } = {}) {
  const dir = prepareHarness();
  const three = await startThree(dir, 'floor');
  try {
    const { systems } = three;
    const names = Object.keys(systems);
    const per = Object.fromEntries(names.map((n) => [n, []]));
    for (let r = 0; r < rounds; r++) {
      const round = {};
      for (const n of rotated(names, r)) {
        const s = systems[n];
        const c0 = cpuMs(s.pid);
        const { rps, errors } = await harnessLoad(dir, s.port, count, 16, s.headers);
        // Each one's last batch of rows goes to its store within the wait.
        await new Promise((res) => setTimeout(res, 1300));
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
  }
}
