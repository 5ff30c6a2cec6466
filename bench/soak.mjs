// Gateway soak: SOAK_SECONDS (default 600) of chat calls at concurrency 16 through Tally (a key
// with a budget and limits), RSS sampled every 10 s. The DESIGN target: RSS flat over 10 minutes.
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { freePort, mockUpstream, rssMb, SHARED, startGatewayUnderTest, stop } from './lib.mjs';

const ADMIN = 'tk-admin-soak-0123456789abcdef';

/** `replica`: the load goes to a `tally gateway` replica in front of the server; both are sampled. */
export async function soak(
  seconds = Number(process.env.SOAK_SECONDS ?? 600),
  replica = process.env.REPLICA === '1',
) {
  const up = await freePort();
  // The harness's mock upstream prints nothing: it is ready once its port answers.
  const mock = mockUpstream(`${SHARED}/bench/overhead`, up);
  await new Promise((r) => setTimeout(r, 500));
  const gw = await startGatewayUnderTest(up, ADMIN, 'soak', { replica });
  const { port, key } = gw;
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 16 });
  const body = JSON.stringify({
    model: 'gpt-4o',
    messages: [{ role: 'user', content: 'Say hello in five words.' }],
  });
  const end = Date.now() + seconds * 1000;
  let done = 0;
  let errors = 0;
  const samples = [];
  const sampler = setInterval(
    () =>
      samples.push({
        t: Math.round((seconds * 1000 - (end - Date.now())) / 1000),
        rss: rssMb(gw.pid),
        serverRss: rssMb(gw.serverPid),
        done,
      }),
    10_000,
  );
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (Date.now() < end) {
        const r = await pool.request({
          path: '/v1/chat/completions',
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body,
        });
        await r.body.dump();
        if (r.statusCode === 200) done++;
        else errors++;
      }
    }),
  );
  clearInterval(sampler);
  await pool.close();
  await gw.stop();
  await stop(mock);
  return { seconds, replica, requests: done, errors, samples };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const r = await soak();
  console.log(JSON.stringify(r));
}
