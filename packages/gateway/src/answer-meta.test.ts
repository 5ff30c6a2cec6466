import { Rng } from '@tally/core';
import { describe, expect, it } from 'vitest';
import { hostedToolCalls, readAnswerMeta, WHOLE_PARSE_UP_TO } from './answer-meta.js';
import { containersOf } from './containers.js';
import { chatRecordings, embeddingRecordings, SKIP_WITHOUT_RECORDINGS } from './testing/recorded.js';

type Obj = Record<string, unknown>;

/** What a whole parse says: the reference. */
function reference(text: string) {
  const j = JSON.parse(text) as Obj;
  const u = j['usage'];
  return {
    usage: typeof u === 'object' && u !== null && !Array.isArray(u) ? u : null,
    model: typeof j['model'] === 'string' ? j['model'] : null,
    serviceTier: typeof j['service_tier'] === 'string' ? j['service_tier'] : null,
    toolCalls: hostedToolCalls(j['output']),
    containers: containersOf(j['output']),
    id: typeof j['id'] === 'string' ? j['id'] : null,
  };
}

function check(text: string) {
  // Threshold 0: every body is read from its ends, as a large one would be.
  expect(readAnswerMeta(Buffer.from(text), 0)).toEqual(reference(text));
  expect(readAnswerMeta(Buffer.from(text))).toEqual(reference(text));
}

describe('reading usage and model from a JSON answer', () => {
  it.skipIf(SKIP_WITHOUT_RECORDINGS)(
    'agrees with a whole parse on every recorded answer, compact and indented',
    () => {
      const bodies = [...embeddingRecordings(), ...chatRecordings()]
        .map((r) => r.body)
        .filter((b): b is Obj => typeof b === 'object' && b !== null && !Array.isArray(b));
      expect(bodies.length).toBeGreaterThan(50);
      for (const b of bodies) {
        check(JSON.stringify(b));
        check(JSON.stringify(b, null, 2));
        // The tier that served the call, as OpenAI puts it: after usage.
        if (b['service_tier'] === 'default') check(JSON.stringify({ ...b, service_tier: 'priority' }));
      }
      expect(bodies.filter((b) => b['service_tier'] === 'default').length).toBeGreaterThan(50);
    },
  );

  it.skipIf(SKIP_WITHOUT_RECORDINGS)(
    'reads a 100-input embeddings batch past the whole-parse size from its ends',
    () => {
      const rec = embeddingRecordings().find(
        (r) =>
          r.status === 200 &&
          Array.isArray((r.body as Obj)['data']) &&
          ((r.body as Obj)['data'] as unknown[]).length > 0,
      )!;
      const body = rec.body as Obj;
      const item = (body['data'] as Obj[])[0]!;
      const batch = { ...body, data: Array.from({ length: 100 }, (_, i) => ({ ...item, index: i })) };
      const text = JSON.stringify(batch);
      expect(text.length).toBeGreaterThan(WHOLE_PARSE_UP_TO);
      expect(readAnswerMeta(Buffer.from(text))).toEqual(reference(text));
      expect(readAnswerMeta(Buffer.from(text)).usage).toEqual(body['usage']);
    },
  );

  it('finds the model among the first members of a long chat answer', () => {
    const text = JSON.stringify({
      id: 'chatcmpl-1',
      object: 'chat.completion',
      created: 1,
      model: 'gpt-4o-2024-08-06',
      choices: [{ index: 0, message: { role: 'assistant', content: 'x'.repeat(100_000) } }],
      usage: { prompt_tokens: 10, completion_tokens: 30_000, total_tokens: 30_010 },
      service_tier: 'flex',
    });
    expect(readAnswerMeta(Buffer.from(text))).toEqual({
      usage: { prompt_tokens: 10, completion_tokens: 30_000, total_tokens: 30_010 },
      model: 'gpt-4o-2024-08-06',
      serviceTier: 'flex',
      toolCalls: null,
      containers: null,
      id: 'chatcmpl-1',
    });
  });

  it("reads a large answer's id off its head when its end is all that is parsed", () => {
    // Model after usage: the answer is read from its end, and its id is the one that opens it.
    const answer = (id: string) =>
      JSON.stringify({
        id,
        object: 'response',
        output: [{ type: 'message', content: [{ type: 'output_text', text: 'x'.repeat(100_000) }] }],
        usage: { input_tokens: 10, output_tokens: 30_000, total_tokens: 30_010 },
        model: 'gpt-4.1-2025-04-14',
      });
    const text = answer('resp_67ccd2bed1ec8190');
    expect(readAnswerMeta(Buffer.from(text))).toEqual(reference(text));
    // An id with characters OpenAI's never have is not read off the head.
    expect(readAnswerMeta(Buffer.from(answer('resp_1", "x'))).id).toBeNull();
  });

  it('is not fooled by usage or model that are not top-level members', () => {
    const cases: unknown[] = [
      // Only nested ones.
      { data: [1, 2], meta: { usage: { prompt_tokens: 9 }, model: 'nested' } },
      // A nested usage after the real one.
      { model: 'm', usage: { prompt_tokens: 1 }, extra: { usage: { prompt_tokens: 2 } } },
      // Text that spells a usage key, in a value and in a key.
      { model: 'm', usage: { prompt_tokens: 1 }, note: '"usage": {"prompt_tokens": 5}}' },
      { model: 'm', usage: { prompt_tokens: 1 }, 'a "usage': { prompt_tokens: 7 } },
      { 'a "usage': { prompt_tokens: 7 } },
      { model: 'm', 'x\\': 1, usage: { prompt_tokens: 3 } },
      // A string value "usage", and a usage that is not an object.
      { kind: 'usage', model: 'm' },
      { model: 'm', usage: [1, 2] },
      { model: 'm', usage: null },
      { model: 7, usage: { prompt_tokens: 1 } },
      { model: null, data: 'x', usage: { prompt_tokens: 1 } },
      // The model after usage, twice, nested before the real one.
      { usage: { prompt_tokens: 1 }, model: 'late' },
      { model: 'first', usage: { prompt_tokens: 1 }, model2: 1 },
      { choices: [{ model: 'inner' }], model: 'outer', usage: { prompt_tokens: 1 } },
      { choices: [{ model: 'inner' }], usage: { prompt_tokens: 1 } },
      // No usage, or no object.
      { model: 'm' },
      [{ usage: { prompt_tokens: 1 } }],
      'usage',
    ];
    for (const c of cases) check(JSON.stringify(c));
    // Keys spelt with escapes, which JSON.stringify never writes.
    check('{"mod\\u0065l":"escaped","data":[1],"usage":{"prompt_tokens":1}}');
    check('{"model":"a","usage":{"prompt_tokens":1},"us\\u0061ge":{"prompt_tokens":2}}');
    // Duplicate keys: the last one counts, as in a whole parse.
    check('{"model":"a","usage":{"prompt_tokens":1},"model":"b","usage":{"prompt_tokens":2}}');
    check('{"model":"a","data":[],"model":"b","usage":{"prompt_tokens":2}}');
  });

  it('throws on a body that is not JSON, as a whole parse does', () => {
    expect(() => readAnswerMeta(Buffer.from('not json'), 0)).toThrow(SyntaxError);
    expect(() => readAnswerMeta(Buffer.from('{"usage": {"a": 1}'), 0)).toThrow(SyntaxError);
  });

  it('agrees with a whole parse on seeded random documents', () => {
    const rng = new Rng(20261203);
    const next = () => rng.next();
    const pick = <T>(xs: T[]): T => xs[Math.floor(next() * xs.length)]!;
    const keys = ['usage', 'model', 'data', 'a "usage', 'model\\', 'x', 'choices', 'us"age'];
    const strings = ['usage', 'model', '"usage": {', '\\', '\\"', '}', '{"usage":{}}', 'é漢字', ''];
    const value = (depth: number): unknown => {
      const r = next();
      if (depth > 3 || r < 0.3) return pick<unknown>([1, -2.5e-3, true, null, pick(strings)]);
      if (r < 0.6) return Array.from({ length: Math.floor(next() * 4) }, () => value(depth + 1));
      const o: Obj = {};
      for (let i = Math.floor(next() * 5); i > 0; i--) o[pick(keys)] = value(depth + 1);
      return o;
    };
    for (let n = 0; n < 3000; n++) {
      const doc: Obj = {};
      for (let i = Math.floor(next() * 6); i > 0; i--) doc[pick(keys)] = value(1);
      if (next() < 0.7) doc['usage'] = { prompt_tokens: Math.floor(next() * 100) };
      if (next() < 0.5) doc[pick(['model', 'x'])] = pick(['gpt-4o', 'text-embedding-3-small']);
      const text = next() < 0.5 ? JSON.stringify(doc) : JSON.stringify(doc, null, 1);
      check(text);
    }
  });
});

describe("counting a Responses answer's hosted tool calls", () => {
  /** A Responses answer as OpenAI's reference shows one with web search, `searches` items first. */
  const answer = (searches: Obj[], text = 'Done.') =>
    JSON.stringify({
      id: 'resp_1',
      object: 'response',
      model: 'gpt-5.4',
      output: [
        ...searches,
        {
          type: 'message',
          id: 'msg_1',
          status: 'completed',
          role: 'assistant',
          content: [{ type: 'output_text', text }],
        },
      ],
      usage: { input_tokens: 10, output_tokens: 5, total_tokens: 15 },
    });
  const web = (status: string) => ({ type: 'web_search_call', id: 'ws', status, action: { type: 'search' } });
  const file = { type: 'file_search_call', id: 'fs', status: 'completed', queries: ['q'], results: null };

  it('counts web and file searches that did not fail, and nothing else', () => {
    const text = answer([web('completed'), web('completed'), web('failed'), file, { type: 'function_call' }]);
    expect(readAnswerMeta(Buffer.from(text)).toolCalls).toEqual({ web_searches: 2, file_searches: 1 });
    check(text);
    expect(readAnswerMeta(Buffer.from(answer([]))).toolCalls).toBeNull();
    expect(hostedToolCalls('not a list')).toBeNull();
    expect(hostedToolCalls([null, 3, { type: 'web_search_call' }])).toEqual({ web_searches: 1 });
    // An item type that names a property every object has is no tool call.
    expect(
      hostedToolCalls([{ type: 'constructor' }, { type: '__proto__' }, { type: 'toString' }]),
    ).toBeNull();
  });

  it('counts the images the image generation tool made, not those that failed, in a large answer too', () => {
    const image = (status: string, result: string | null) => ({
      type: 'image_generation_call',
      id: 'ig',
      status,
      result,
    });
    const png = 'A'.repeat(WHOLE_PARSE_UP_TO * 3);
    const text = answer([image('completed', png), image('failed', null), web('completed')]);
    expect(readAnswerMeta(Buffer.from(text)).toolCalls).toEqual({ image_generations: 1, web_searches: 1 });
  });

  it('lists the containers code interpreter calls used, each once, in a small answer or a large one', () => {
    const code = (container: unknown) => ({
      type: 'code_interpreter_call',
      id: 'ci',
      status: 'completed',
      container_id: container,
      code: '1',
      outputs: null,
    });
    const items = [code('cntr_1'), code('cntr_1'), code('cntr_2'), code(null), code(''), web('completed')];
    expect(readAnswerMeta(Buffer.from(answer(items))).containers).toEqual(['cntr_1', 'cntr_2']);
    const large = answer([code('cntr_3')], 'x'.repeat(WHOLE_PARSE_UP_TO * 2));
    expect(readAnswerMeta(Buffer.from(large)).containers).toEqual(['cntr_3']);
    expect(readAnswerMeta(Buffer.from(answer([]))).containers).toBeNull();
  });

  it('reads a large answer that lists them whole, so that none is missed', () => {
    // Text well past the size read from the ends.
    const text = answer([web('completed'), file], 'x'.repeat(WHOLE_PARSE_UP_TO * 2));
    expect(readAnswerMeta(Buffer.from(text)).toolCalls).toEqual({ web_searches: 1, file_searches: 1 });
    // A tool call's name in the text alone costs only the whole parse: it is not counted.
    const quoted = answer([], `a "web_search_call" ${'y'.repeat(WHOLE_PARSE_UP_TO * 2)}`);
    expect(readAnswerMeta(Buffer.from(quoted)).toolCalls).toBeNull();
  });
});
