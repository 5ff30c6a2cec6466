// Bytes the JS heap allocates a call (garbage included: what the collector has to clear), for a
// Tally all-in-one and the harness's bare proxy under the same load, each sampled by V8's heap
// profiler over the same number of calls. Usage: node bench/run.mjs alloc
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { prepareHarness } from './gateway-overhead.mjs';
import { freePort, mockUpstream, startGatewayUnderTest, stop } from './lib.mjs';

const HOOK = new URL('./heap-sampling.mjs', import.meta.url).pathname;
const ADMIN = 'tk-admin-alloc-0123456789';

/** Bytes a call, and the areas (Tally's packages, undici, node...) that allocate most. */
export function summariseHeap(profile, calls) {
  const area = (url) =>
    url.includes('/packages/')
      ? `tally ${url.split('/packages/')[1].split('/')[0]}`
      : url.includes('node_modules/')
        ? url.split('node_modules/').at(-1).split('/')[0]
        : url.startsWith('node:')
          ? 'node'
          : '(native)';
  const byId = new Map();
  const walk = (n) => {
    byId.set(n.id, n);
    for (const c of n.children ?? []) walk(c);
  };
  walk(profile.head);
  const areas = new Map();
  let total = 0;
  for (const s of profile.samples) {
    total += s.size;
    const a = area(byId.get(s.nodeId).callFrame.url);
    areas.set(a, (areas.get(a) ?? 0) + s.size);
  }
  return {
    perCall: total / calls,
    areas: [...areas].sort((x, y) => y[1] - x[1]).map(([a, b]) => [a, b / calls]),
  };
}

async function sampled(pid, out, load) {
  process.kill(pid, 'SIGUSR2');
  await new Promise((r) => setTimeout(r, 200));
  load();
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 200 && !existsSync(out); i++) await new Promise((r) => setTimeout(r, 100));
  // Written whole once it exists: wait for its size to settle.
  let size = -1;
  while (existsSync(out)) {
    await new Promise((r) => setTimeout(r, 200));
    const now = readFileSync(out).length;
    if (now === size) break;
    size = now;
  }
  return JSON.parse(readFileSync(out, 'utf8'));
}

export async function allocBench({ calls = 10_000, stream = true } = {}) {
  const dir = prepareHarness();
  const tmp = mkdtempSync(join(os.tmpdir(), 'tally-alloc-'));
  const up = await freePort();
  const mock = mockUpstream(dir, up);
  await new Promise((r) => setTimeout(r, 500));
  const env = { ...process.env, STREAM: stream ? '1' : '0' };
  const loadOf = (url, key) => () =>
    execFileSync(
      process.execPath,
      [`${dir}/load.mjs`, url, String(calls), '16', `authorization:Bearer ${key}`],
      {
        env,
      },
    );
  const rows = [];
  try {
    // The bare proxy.
    const barePort = await freePort();
    const bareOut = join(tmp, 'bare.json');
    const bare = spawn(process.execPath, ['--import', HOOK, `${dir}/bare-proxy.mjs`], {
      env: {
        ...process.env,
        PORT: String(barePort),
        UPSTREAM: `http://127.0.0.1:${up}`,
        HEAP_SAMPLING_OUT: bareOut,
      },
      stdio: 'ignore',
    });
    await new Promise((r) => setTimeout(r, 700));
    const bareUrl = `http://127.0.0.1:${barePort}/v1/chat/completions`;
    loadOf(bareUrl, 'x')(); // warm-up
    rows.push([
      'bare proxy',
      summariseHeap(await sampled(bare.pid, bareOut, loadOf(bareUrl, 'x')), calls + 200),
    ]);
    await stop(bare);
    // Tally, all-in-one.
    const tallyOut = join(tmp, 'tally.json');
    const gw = await startGatewayUnderTest(up, ADMIN, 'alloc', {
      nodeArgs: ['--import', HOOK],
      env: { HEAP_SAMPLING_OUT: tallyOut },
    });
    const url = `http://127.0.0.1:${gw.port}/v1/chat/completions`;
    loadOf(url, gw.key)(); // warm-up
    rows.push([
      'tally start',
      summariseHeap(await sampled(gw.pid, tallyOut, loadOf(url, gw.key)), calls + 200),
    ]);
    await gw.stop();
  } finally {
    mock.kill();
    rmSync(tmp, { recursive: true, force: true });
  }
  return rows;
}
