import { prepareHarness } from './gateway-overhead.mjs';
import { cpuMs, freePort, mockUpstream, rssPartsMb, runNode, startGatewayUnderTest } from './lib.mjs';
const HARNESS = prepareHarness();
const upPort = await freePort();
const upstream = mockUpstream(HARNESS, upPort);
await new Promise((r) => setTimeout(r, 300));
const N = Number(process.env.N ?? 16000);
for (const v of process.argv.slice(2)) {
  const saved = { ...process.env };
  const nodeArgs = [];
  for (const kv of v.split(',').filter(Boolean)) { if (kv.startsWith('--')) nodeArgs.push(kv); else { const [k, val] = kv.split('='); process.env[k] = val; } }
  const gw = await startGatewayUnderTest(upPort, 'tk-admin-rss-0123456789', 'rss', { nodeArgs });
  for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
  let peak = { rss: 0 };
  const t = setInterval(() => { const p = rssPartsMb(gw.pid); if (p.rss > (peak.rss ?? 0)) peak = p; }, 100);
  const c0 = cpuMs(gw.pid);
  const url = `http://127.0.0.1:${gw.port}/v1/chat/completions`;
  const r = [];
  for (const stream of ['0', '1']) {
    r.push(JSON.parse((await runNode([`${HARNESS}/load.mjs`, url, String(N), '16', `authorization:Bearer ${gw.key}`], { STREAM: stream })).trim()).rps);
  }
  const cpu = (cpuMs(gw.pid) - c0) * 1000 / (2 * N + 400);
  clearInterval(t);
  const m = await (await fetch(`http://127.0.0.1:${gw.port}/metrics`)).text();
  console.log(m.split('\n').filter((l) => /heap|external|store_memory|resident/.test(l) && !l.startsWith('#')).join('\n'));
  console.log(JSON.stringify({ v: v || 'default', peak, rps: r, cpuUsPerCall: Math.round(cpu) }));
  await gw.stop();
}
upstream.kill();
