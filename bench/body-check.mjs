// The check every gateway call pays on its body before it goes (json-edit.ts checkTopLevel: one
// walk of the top level, for a name given twice and for nesting too deep), against the JSON.parse
// the gateway already does on it. Two shapes of chat body, of about 1, 2 and 4 KB:
// - a support chat: a system prompt, customers' questions (BANKING77, shared/data/paraphrase)
//   with an assistant's answer of a few sentences after each, and one tool;
// - the worst case for the walk: the recorded requests' turns, each a few words, so that the body
//   is mostly short strings and punctuation.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { bench, group, run } from 'mitata';
import { checkTopLevel } from '../packages/gateway/dist/json-edit.js';
import { chatRecordings } from '../packages/gateway/dist/testing/recorded.js';
import { SHARED } from './lib.mjs';

const TOOL = {
  type: 'function',
  function: {
    name: 'card_status',
    description: "The delivery status of the customer's card",
    parameters: { type: 'object', properties: { card_id: { type: 'string' } }, required: ['card_id'] },
  },
};

const ANSWER =
  'Thanks for reaching out. I have looked at your account: the request went through on our side, ' +
  'and you should see it within one to three working days. If it has not arrived by then, reply ' +
  'here and I will open a case with the team so that it is followed up.';

function questions() {
  const lines = readFileSync(`${SHARED}/data/paraphrase/banking77/train.csv`, 'utf8').split('\n').slice(1);
  return lines
    .map((l) => (l.startsWith('"') ? l.slice(1, l.lastIndexOf('"')) : l.slice(0, l.lastIndexOf(','))))
    .filter(Boolean);
}

/** A body of `kb` KB or a little more, its turns taken from `turns` in order. */
function body(kb, system, turns, tools) {
  const b = {
    model: 'gpt-4o',
    messages: system ? [{ role: 'system', content: system }] : [],
    temperature: 0.2,
    max_tokens: 512,
    ...(tools ? { tools } : {}),
    user: 'u-17',
  };
  for (let i = 0; Buffer.byteLength(JSON.stringify(b)) < kb * 1024; i++)
    b.messages.push(turns[i % turns.length]);
  return Buffer.from(JSON.stringify(b));
}

export async function bodyCheckBench() {
  const qs = questions();
  const support = qs.slice(0, 40).flatMap((q) => [
    { role: 'user', content: q },
    { role: 'assistant', content: ANSWER },
  ]);
  const system =
    'You are the support assistant of a retail bank. Answer in two or three sentences, never ask for a full card number, and hand over to a person when the customer asks for one.';
  const tiny = chatRecordings().flatMap((r) => (Array.isArray(r.request.messages) ? r.request.messages : []));
  const shapes = [
    { shape: 'support chat', make: (kb) => body(kb, system, support, [TOOL]) },
    { shape: 'short turns (worst case)', make: (kb) => body(kb, null, tiny, null) },
  ];
  const cases = shapes.flatMap(({ shape, make }) =>
    [1, 2, 4].map((kb) => ({ name: `${shape} ${kb}`, shape, raw: make(kb) })),
  );
  for (const c of cases) if (checkTopLevel(c.raw, 512) !== null) throw new Error(`${c.name} was refused`);
  group('body check', () => {
    for (const c of cases) {
      bench(`parse ${c.name}`, () => JSON.parse(c.raw.toString('utf8')));
      bench(`check ${c.name}`, () => checkTopLevel(c.raw, 512));
    }
  });
  const out = await run({ format: 'quiet' });
  // The median: on a shared machine the mean is pulled up by whatever else runs.
  const avg = Object.fromEntries(out.benchmarks.map((b) => [b.alias, b.runs[0].stats.p50]));
  return cases.map((c) => ({
    shape: c.shape,
    bytes: c.raw.length,
    parse: avg[`parse ${c.name}`],
    check: avg[`check ${c.name}`],
  }));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.table(await bodyCheckBench());
