// The gateway's hot path under `node --cpu-prof`: the mock upstream of shared/bench/overhead, a
// Tally gateway (all-in-one, or REPLICA=1 for a `tally gateway` replica) with a benchmark key, and
// the harness's load generator. Prints self time by area and the top functions, and where the
// .cpuprofile was written. Usage: node bench/profile.mjs [COUNT] [CONCURRENCY]  (STREAM=1: SSE)
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { prepareHarness } from './gateway-overhead.mjs';
import { freePort, mockUpstream, runNode, startGatewayUnderTest } from './lib.mjs';

const ADMIN = 'tk-admin-profile-0123456789';

/** Which part of the system a profile node's code belongs to. */
function area(url, name) {
  if (!url) return name === '(garbage collector)' ? 'gc' : name.startsWith('(') ? name : 'native';
  if (url.includes('/packages/gateway/')) return 'tally gateway';
  if (url.includes('/packages/')) return `tally ${url.split('/packages/')[1].split('/')[0]}`;
  if (url.includes('node_modules/undici')) return 'undici';
  if (url.includes('node_modules/'))
    return url.split('node_modules/').at(-1).split('/').slice(0, 2).join('/');
  if (url.startsWith('node:'))
    return url
      .replace(/^node:internal\//, 'node:')
      .split('/')
      .slice(0, 2)
      .join('/');
  return url;
}

export function summarise(profile, top = 25) {
  const { nodes, samples, timeDeltas } = profile;
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Start at the first call served: module loading and the store's start are not the hot path.
  const serving = (id) => {
    for (let at = id; at !== undefined; at = parent.get(at)) {
      const f = byId.get(at).callFrame;
      if (f.functionName === 'serveOne' && f.url.includes('/packages/gateway/')) return true;
    }
    return false;
  };
  let first = 0;
  while (first < samples.length && !serving(samples[first])) first++;
  const self = new Map();
  for (let i = first + 1; i < samples.length; i++)
    self.set(samples[i], (self.get(samples[i]) ?? 0) + (timeDeltas[i] ?? 0));
  let total = 0;
  const areas = new Map();
  const fns = new Map();
  for (const [id, us] of self) {
    const n = byId.get(id);
    const { functionName, url, lineNumber } = n.callFrame;
    const name = functionName || '(anonymous)';
    if (name === '(idle)' || name === '(program)') continue;
    total += us;
    const a = area(url, name);
    areas.set(a, (areas.get(a) ?? 0) + us);
    const f = `${name} ${url ? `${url.split('/').slice(-2).join('/')}:${lineNumber + 1}` : ''}`;
    fns.set(f, (fns.get(f) ?? 0) + us);
  }
  const pct = (us) => `${((100 * us) / total).toFixed(1)} %`;
  const sorted = (m) => [...m].sort((a, b) => b[1] - a[1]);
  return {
    busyMs: total / 1000,
    areas: sorted(areas).map(([k, v]) => [k, pct(v)]),
    functions: sorted(fns)
      .slice(0, top)
      .map(([k, v]) => [k, pct(v)]),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const count = Number(process.argv[2] ?? 6000);
  const conc = Number(process.argv[3] ?? 16);
  const replica = process.env.REPLICA === '1';
  const HARNESS = prepareHarness();
  const dir = mkdtempSync(join(os.tmpdir(), 'tally-prof-'));
  const upPort = await freePort();
  const upstream = mockUpstream(HARNESS, upPort);
  await new Promise((r) => setTimeout(r, 300));
  const gw = await startGatewayUnderTest(upPort, ADMIN, 'profile', {
    replica,
    nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`],
  });
  const url = `http://127.0.0.1:${gw.port}/v1/chat/completions`;
  const figures = await runNode([
    `${HARNESS}/load.mjs`,
    url,
    String(count),
    String(conc),
    `authorization:Bearer ${gw.key}`,
  ]);
  await gw.stop();
  upstream.kill();
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  // With a replica, two processes wrote profiles: the busiest is the one that took the traffic.
  const profiles = files.map((f) => ({ f, s: summarise(JSON.parse(readFileSync(join(dir, f), 'utf8'))) }));
  profiles.sort((a, b) => b.s.busyMs - a.s.busyMs);
  const { f, s } = profiles[0];
  console.log(`load: ${figures.trim()}`);
  console.log(`profile: ${join(dir, f)} (${s.busyMs.toFixed(0)} ms busy)`);
  console.log('\nself time by area');
  for (const [k, v] of s.areas.slice(0, 15)) console.log(`  ${v.padStart(7)}  ${k}`);
  console.log('\ntop functions by self time');
  for (const [k, v] of s.functions) console.log(`  ${v.padStart(7)}  ${k}`);
}
