import { type HostedToolCalls, isObject } from '@tally/core';
import { containersOf } from './containers.js';

/**
 * What metering needs from a whole JSON answer: its top-level `usage` object, `model` and
 * `service_tier` (OpenAI's, after usage: read from the tail too).
 *
 * A small answer is parsed whole. A large one (an embeddings batch: 3 MB of floats for 100 inputs
 * of 1,536 dimensions, whose parse holds the event loop ~15 ms) is read from its ends: OpenAI's
 * answers put `usage` last, so the text from the last `"usage"` key to the end, opened with a `{`,
 * parses only if that key belongs to the object the document's final `}` closes, the top level.
 * The model is in that tail, or (embeddings) in the back half just before it, found by the same
 * test. Whatever this cannot settle goes to the whole parse: a chat or responses answer, whose
 * model comes first and whose bulk is text, costs about the same either way.
 */

type Obj = Record<string, unknown>;

export interface AnswerMeta {
  /** The top-level `usage` object, or null when there is none. */
  usage: Obj | null;
  /** The top-level `model` string, or null when there is none. */
  model: string | null;
  /** The top-level `service_tier` (priority and flex have prices of their own), or null. */
  serviceTier: string | null;
  /** The hosted tool calls a Responses answer's `output` lists (hostedToolCalls), or null. */
  toolCalls: HostedToolCalls | null;
  /** The containers a Responses answer's code interpreter calls used (containersOf), or null. */
  containers: string[] | null;
  /** The top-level `id` (a Responses answer's, for its follow-ups), or null. */
  id: string | null;
}

/** Answers up to this size are parsed whole: below it the parse costs well under 0.1 ms. */
export const WHOLE_PARSE_UP_TO = 64 * 1024;

const BACKSLASH = 0x5c;
const USAGE_KEY = Buffer.from('"usage"');
/** The end of every item type a Responses answer bills (`web_search_call`, `file_search_call`,
 * `image_generation_call`, `code_interpreter_call`), and of `function_call`'s. From its underscore,
 * a byte rare enough in an embeddings batch that one scan takes 0.04 ms for 3 MB, where a whole
 * name starting with a letter takes ten times that. */
const CALL_ITEM = Buffer.from('_call"');
const MODEL_TOKEN = Buffer.from('"model"');

/** Reads usage and model from a JSON answer. Throws SyntaxError when the body is not JSON (as far
 * as a whole parse is needed to tell). */
export function readAnswerMeta(buf: Buffer, wholeUpTo = WHOLE_PARSE_UP_TO): AnswerMeta {
  // An answer that lists hosted tool calls is read whole: they are counted from its output.
  if (buf.length > wholeUpTo && !buf.includes(CALL_ITEM)) {
    const fromEnds = fromTheEnds(buf);
    if (fromEnds) return fromEnds;
  }
  return metaOf(JSON.parse(buf.toString('utf8')));
}

/** Usage and model of an answer already parsed. */
export function metaOf(json: unknown): AnswerMeta {
  if (!isObject(json))
    return { usage: null, model: null, serviceTier: null, toolCalls: null, containers: null, id: null };
  return {
    usage: isObject(json['usage']) ? json['usage'] : null,
    model: typeof json['model'] === 'string' ? json['model'] : null,
    serviceTier: tierOf(json),
    toolCalls: hostedToolCalls(json['output']),
    containers: containersOf(json['output']),
    id: typeof json['id'] === 'string' ? json['id'] : null,
  };
}

/** The item types of OpenAI's hosted tools that are billed per call, and what each counts. */
const BILLED_ITEMS: Readonly<Record<string, keyof HostedToolCalls>> = {
  web_search_call: 'web_searches',
  file_search_call: 'file_searches',
  image_generation_call: 'image_generations',
};

/** The hosted tool call an output item of a Responses answer is, if one billed per call: a web
 * search, a file search or an image generation that did not fail. */
function billedToolCall(item: unknown): keyof HostedToolCalls | null {
  if (!isObject(item)) return null;
  const type = item['type'];
  if (typeof type !== 'string' || !Object.hasOwn(BILLED_ITEMS, type)) return null;
  return item['status'] !== 'failed' ? BILLED_ITEMS[type]! : null;
}

/** `calls` with one more of the hosted tool call `item` is, if it is one billed per call. */
export function countToolCall(calls: HostedToolCalls | null, item: unknown): HostedToolCalls | null {
  const kind = billedToolCall(item);
  if (kind === null) return calls;
  const out = calls ?? {};
  out[kind] = (out[kind] ?? 0) + 1;
  return out;
}

/** The hosted tool calls billed per call that a Responses answer's `output` lists, or null when
 * it lists none (or is not a list). */
export function hostedToolCalls(output: unknown): HostedToolCalls | null {
  if (!Array.isArray(output)) return null;
  let calls: HostedToolCalls | null = null;
  for (const item of output) calls = countToolCall(calls, item);
  return calls;
}

const tierOf = (o: Obj): string | null => (typeof o['service_tier'] === 'string' ? o['service_tier'] : null);

function fromTheEnds(buf: Buffer): AnswerMeta | null {
  const at = buf.lastIndexOf(USAGE_KEY);
  if (at < 0 || escaped(buf, at)) return null;
  const tail = parseTail(buf, at);
  if (!tail || !isObject(tail['usage'])) return null;
  if (typeof tail['model'] === 'string') return tailMeta(buf, tail, tail['model']);
  if ('model' in tail) return tailMeta(buf, tail, null);
  // An embeddings answer: the model just before usage, after the data. A model near the start
  // (chat, responses) is left to the whole parse, which a tail that long would cost anyway.
  const half = buf.length >> 1;
  const found = at > half ? buf.subarray(half, at).lastIndexOf(MODEL_TOKEN) : -1;
  const modelAt = half + found;
  if (found < 0 || escaped(buf, modelAt)) return null;
  const wider = parseTail(buf, modelAt);
  if (!wider || !isObject(wider['usage'])) return null;
  return tailMeta(buf, wider, typeof wider['model'] === 'string' ? wider['model'] : null);
}

/** The meta of an answer read from its end (`tail`, holding its usage): an answer that lists
 * hosted tool calls is never read so. */
const tailMeta = (buf: Buffer, tail: Obj, model: string | null): AnswerMeta => ({
  usage: tail['usage'] as Obj,
  model,
  serviceTier: tierOf(tail),
  toolCalls: null,
  containers: null,
  id: typeof tail['id'] === 'string' ? tail['id'] : headId(buf),
});

/** An `id` that opens the answer (a Responses answer's does): `{"id": "resp_…"`. */
const HEAD_ID = /^\s*\{\s*"id"\s*:\s*"([A-Za-z0-9_-]{1,256})"/;

function headId(buf: Buffer): string | null {
  return HEAD_ID.exec(buf.toString('latin1', 0, 320))?.[1] ?? null;
}

/** The members from the key at `at` to the end, if they close the document's object. */
function parseTail(buf: Buffer, at: number): Obj | null {
  try {
    const tail: unknown = JSON.parse(`{${buf.toString('utf8', at)}`);
    return isObject(tail) ? tail : null;
  } catch {
    return null;
  }
}

/** Whether the byte at `at` is escaped: an odd run of backslashes before it. */
export function escaped(buf: Buffer, at: number): boolean {
  let n = 0;
  for (let i = at - 1; i >= 0 && buf[i] === BACKSLASH; i--) n++;
  return n % 2 === 1;
}
