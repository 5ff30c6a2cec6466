// The stream meter on OpenAI's recorded streams (shared/data/openai-recorded), per chunk: what
// metering a stream costs against the floor of merely splitting it into events, and against
// parsing every chunk (what a meter that reads each chunk's JSON pays). The streams were recorded
// with include_usage, so every chunk but the last carries "usage":null.
import { fileURLToPath } from 'node:url';
import { bench, group, run } from 'mitata';
import { SseSplitter } from '../packages/gateway/dist/index.js';
import { streamMeter } from '../packages/gateway/dist/stream-meter.js';
import { chatRecordings } from '../packages/gateway/dist/testing/recorded.js';

export async function streamMeterBench() {
  const streams = chatRecordings().filter(
    (r) => r.status === 200 && Array.isArray(r.body) && r.body.some((c) => 'usage' in c && c.usage === null),
  );
  const wires = streams.map(
    (r) => `${r.body.map((c) => `data: ${JSON.stringify(c)}\n\n`).join('')}data: [DONE]\n\n`,
  );
  const chunks = streams.reduce((n, r) => n + r.body.length + 1, 0);
  // As a socket delivers them: reads of 512 bytes, events cut anywhere.
  const reads = wires.map((w) => {
    const out = [];
    for (let i = 0; i < w.length; i += 512) out.push(w.slice(i, i + 512));
    return out;
  });
  const events = function* (rs) {
    const sp = new SseSplitter();
    for (const r of rs) yield* sp.push(r);
  };
  const split = () => {
    let n = 0;
    for (const rs of reads) for (const _ of events(rs)) n++;
    return n;
  };
  const parseAll = () => {
    let n = 0;
    for (const w of wires)
      for (const ev of new SseSplitter().push(w))
        if (ev !== 'data: [DONE]\n\n') n += JSON.parse(ev.slice(6)).created;
    return n;
  };
  const meter = () => {
    let n = 0;
    for (const rs of reads) {
      const m = streamMeter('chat', true);
      for (const ev of events(rs)) if (m.onEvent(ev)) n++;
      if (m.usage() === null) throw new Error('no usage found');
    }
    return n;
  };
  group('stream meter', () => {
    bench('split into events (floor)', split);
    bench('split, and parse every chunk', parseAll);
    bench('split, and meter', meter);
  });
  const out = await run({ format: 'quiet' });
  const avg = Object.fromEntries(out.benchmarks.map((b) => [b.alias, b.runs[0].stats.avg]));
  return {
    streams: streams.length,
    chunks,
    floor: avg['split into events (floor)'] / chunks,
    parse: avg['split, and parse every chunk'] / chunks,
    meter: avg['split, and meter'] / chunks,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(await streamMeterBench());
