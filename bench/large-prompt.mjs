// Long prompts through the gateway at concurrency 1: what the gateway adds to the p50 of a direct
// call to the same mock upstream, as the newest turn grows. Each call's text is new (the newest turn
// is never remembered), English from OpenAI's recorded prompts, or Chinese and Japanese. The
// gateway counts a short turn's tokens exactly and estimates a long one from samples.
import { chatRecordings } from '../packages/gateway/dist/testing/recorded.js';
import { prepareHarness } from './gateway-overhead.mjs';
import { freePort, mockUpstream, serialP50, startGatewayUnderTest } from './lib.mjs';

const ADMIN = 'tk-admin-large-prompt-0123456789';
const SIZES = [1_000, 4_000, 16_000, 64_000];

function corpora() {
  const parts = [];
  for (const r of chatRecordings()) {
    for (const m of r.request.messages ?? []) if (typeof m.content === 'string') parts.push(m.content);
    if (parts.length > 2000) break;
  }
  const en = parts.join('\n');
  const cjk =
    '東京は日本の首都で、人口は千四百万人を超えています。毎朝、多くの人が電車で通勤します。' +
    '中文的文本也需要计算：模型的费用按词元计，长文本的估计必须可靠。';
  return { en, cjk };
}

/** `chars` characters of `text`, starting somewhere new for each call, with the call's number. */
function slice(text, chars, i) {
  const from = (i * 7919) % text.length;
  let s = `${i} `;
  while (s.length < chars) s += text.slice(from, from + chars - s.length) || text.slice(0, chars - s.length);
  return s.slice(0, chars);
}

async function p50(origin, headers, text, chars, n) {
  const body = (i) =>
    JSON.stringify({
      model: 'gpt-4o',
      messages: [
        { role: 'system', content: 'You are a helpful assistant.' },
        { role: 'user', content: slice(text, chars, i) },
      ],
    });
  return (await serialP50(origin, '/v1/chat/completions', headers, n, body)).p50;
}

export async function largePromptBench({ calls = 300 } = {}) {
  const dir = prepareHarness();
  const upPort = await freePort();
  const up = mockUpstream(dir, upPort);
  await new Promise((r) => setTimeout(r, 500));
  const gw = await startGatewayUnderTest(upPort, ADMIN, 'large-prompt');
  const direct = `http://127.0.0.1:${upPort}`;
  const tally = `http://127.0.0.1:${gw.port}`;
  const auth = { authorization: `Bearer ${gw.key}` };
  const { en, cjk } = corpora();
  const rows = [];
  try {
    // Warm both paths (the JIT) before measuring.
    await p50(direct, {}, en, 200, 1000);
    await p50(tally, auth, en, 200, 2000);
    for (const [lang, text] of [
      ['English', en],
      ['Chinese and Japanese', cjk],
    ]) {
      for (const chars of SIZES) {
        const d = await p50(direct, {}, text, chars, calls);
        const t = await p50(tally, auth, text, chars, calls);
        rows.push({ lang, chars, direct: d, tally: t });
      }
    }
  } finally {
    await gw.stop();
    up.kill();
  }
  return { calls, rows };
}
