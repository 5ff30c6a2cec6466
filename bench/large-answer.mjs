// Large JSON answers through the gateway at concurrency 1: embeddings batches of 8 to 100 inputs
// (1,536 floats each, 0.26 to 3.2 MB of JSON), from an upstream that answers with a recorded
// OpenAI embedding once per input. Each size is timed directly, through the harness's bare Node
// proxy, and through `tally start` with a virtual key (budget and limits on), in the same run;
// with each process's CPU a call. The gateway reads usage and model from the answer's ends
// instead of parsing it whole.
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { embeddingRecordings } from '../packages/gateway/dist/testing/recorded.js';
import { prepareHarness } from './gateway-overhead.mjs';
import { bareProxy, cpuMs, freePort, serialP50, startGatewayUnderTest, startProcess, stop } from './lib.mjs';

const SELF = fileURLToPath(import.meta.url);
const ADMIN = 'tk-admin-large-answer-0123456789';
const SIZES = [8, 32, 100];

/** The upstream, in its own process: one recorded 1,536-dimension embedding, once per input. */
function upstream() {
  const rec = embeddingRecordings().find(
    (r) =>
      r.status === 200 &&
      r.body?.data?.[0]?.embedding?.length === 1536 &&
      Array.isArray(r.body.data[0].embedding),
  );
  if (!rec) throw new Error('no recorded 1,536-dimension embedding');
  const answers = new Map();
  const answer = (n) => {
    if (!answers.has(n)) {
      const data = Array.from({ length: n }, (_, index) => ({ ...rec.body.data[0], index }));
      const tokens = rec.body.usage.prompt_tokens * n;
      answers.set(
        n,
        Buffer.from(
          JSON.stringify({ ...rec.body, data, usage: { prompt_tokens: tokens, total_tokens: tokens } }),
        ),
      );
    }
    return answers.get(n);
  };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString() || '{}');
      const out = answer(Array.isArray(body.input) ? body.input.length : 1);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': out.length });
      res.end(out);
    });
  });
  server.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening'));
}

function timed(origin, headers, inputs, n) {
  const body = JSON.stringify({
    model: 'text-embedding-3-small',
    input: Array.from({ length: inputs }, (_, i) => `text ${i}`),
    encoding_format: 'float',
  });
  return serialP50(origin, '/v1/embeddings', headers, n, () => body);
}

export async function largeAnswerBench({ calls = 200 } = {}) {
  const dir = prepareHarness();
  const upPort = await freePort();
  const up = await startProcess([SELF, 'upstream'], { env: { PORT: String(upPort) } });
  const barePort = await freePort();
  // The bare proxy prints nothing when it listens.
  const bare = bareProxy(dir, barePort, upPort);
  await new Promise((r) => setTimeout(r, 500));
  const gw = await startGatewayUnderTest(upPort, ADMIN, 'large-answer');
  const direct = `http://127.0.0.1:${upPort}`;
  const viaBare = `http://127.0.0.1:${barePort}`;
  const tally = `http://127.0.0.1:${gw.port}`;
  const auth = { authorization: `Bearer ${gw.key}` };
  const rows = [];
  try {
    // Warm every path (the JIT) before measuring.
    for (const [o, h] of [
      [direct, {}],
      [viaBare, {}],
      [tally, auth],
    ])
      await timed(o, h, 8, 200);
    for (const inputs of SIZES) {
      const d = await timed(direct, {}, inputs, calls);
      const b0 = cpuMs(bare.pid);
      const b = await timed(viaBare, {}, inputs, calls);
      const bareCpu = (cpuMs(bare.pid) - b0) / calls;
      const t0 = cpuMs(gw.pid);
      const t = await timed(tally, auth, inputs, calls);
      const tallyCpu = (cpuMs(gw.pid) - t0) / calls;
      rows.push({ inputs, bytes: d.bytes, direct: d.p50, bare: b.p50, tally: t.p50, bareCpu, tallyCpu });
    }
  } finally {
    await gw.stop();
    await stop(bare);
    await stop(up.child);
  }
  return { calls, rows };
}

if (process.argv[1] === SELF && process.argv[2] === 'upstream') upstream();
else if (process.argv[1] === SELF) console.log(JSON.stringify(await largeAnswerBench(), null, 2));
