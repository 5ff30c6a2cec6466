import { isObject } from '@tally/core';

/**
 * What metering needs from a whole JSON answer: its top-level `usage` object and `model`.
 *
 * A small answer is parsed whole. A large one (an embeddings batch: 3 MB of floats for 100 inputs
 * of 1,536 dimensions, whose parse holds the event loop ~15 ms) is read from its ends: OpenAI's
 * answers put `usage` last, so the text from the last `"usage"` key to the end, opened with a `{`,
 * parses only if that key belongs to the object the document's final `}` closes, the top level.
 * The model is in that tail (embeddings) or among the first top-level members (chat, responses),
 * which are walked without building them. Whatever this cannot settle goes to the whole parse.
 */

type Obj = Record<string, unknown>;

export interface AnswerMeta {
  /** The top-level `usage` object, or null when there is none. */
  usage: Obj | null;
  /** The top-level `model` string, or null when there is none. */
  model: string | null;
}

/** Answers up to this size are parsed whole: below it the parse costs well under 0.1 ms. */
export const WHOLE_PARSE_UP_TO = 64 * 1024;
/** How far the walk over the first members goes before giving up for the whole parse. */
const HEAD_WALK_LIMIT = 256 * 1024;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const USAGE_KEY = Buffer.from('"usage"');
const MODEL_KEY = Buffer.from('model');
const MODEL_TOKEN = Buffer.from('"model"');

/** Reads usage and model from a JSON answer. Throws SyntaxError when the body is not JSON (as far
 * as a whole parse is needed to tell). */
export function readAnswerMeta(buf: Buffer, wholeUpTo = WHOLE_PARSE_UP_TO): AnswerMeta {
  if (buf.length > wholeUpTo) {
    const fromEnds = fromTheEnds(buf);
    if (fromEnds) return fromEnds;
  }
  const json: unknown = JSON.parse(buf.toString('utf8'));
  if (!isObject(json)) return { usage: null, model: null };
  return {
    usage: isObject(json['usage']) ? json['usage'] : null,
    model: typeof json['model'] === 'string' ? json['model'] : null,
  };
}

function fromTheEnds(buf: Buffer): AnswerMeta | null {
  const at = buf.lastIndexOf(USAGE_KEY);
  if (at < 0 || escaped(buf, at)) return null;
  const tail = parseTail(buf, at);
  if (!tail || !isObject(tail['usage'])) return null;
  if (typeof tail['model'] === 'string') return { usage: tail['usage'], model: tail['model'] };
  if ('model' in tail) return { usage: tail['usage'], model: null };
  // An embeddings answer: the model just before usage, after the data.
  const modelAt = buf.lastIndexOf(MODEL_TOKEN, at);
  if (modelAt >= 0 && !escaped(buf, modelAt)) {
    const wider = parseTail(buf, modelAt);
    if (wider && typeof wider['model'] === 'string' && isObject(wider['usage'])) {
      return { usage: wider['usage'], model: wider['model'] };
    }
  }
  const model = headModel(buf, at);
  return model === undefined ? null : { usage: tail['usage'], model };
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

/** Whether the quote at `at` is escaped (an odd run of backslashes before it). */
function escaped(buf: Buffer, at: number): boolean {
  let n = 0;
  for (let i = at - 1; i >= 0 && buf[i] === BACKSLASH; i--) n++;
  return n % 2 === 1;
}

/** The index of the quote that closes the string opened at `open`, or -1. */
function stringEnd(buf: Buffer, open: number): number {
  let from = open + 1;
  for (;;) {
    const q = buf.indexOf(QUOTE, from);
    if (q < 0 || !escaped(buf, q)) return q;
    from = q + 1;
  }
}

function skipSpace(buf: Buffer, i: number): number {
  let c = buf[i];
  while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = buf[++i];
  return i;
}

/** The index just past the JSON value that starts at `i`, or -1 if it does not end by `limit`. */
function skipValue(buf: Buffer, i: number, limit: number): number {
  const c = buf[i];
  if (c === QUOTE) {
    const e = stringEnd(buf, i);
    return e < 0 ? -1 : e + 1;
  }
  if (c === 0x7b || c === 0x5b) {
    let depth = 0;
    for (let j = i; j < limit; j++) {
      const d = buf[j];
      if (d === QUOTE) {
        j = stringEnd(buf, j);
        if (j < 0) return -1;
      } else if (d === 0x7b || d === 0x5b) depth++;
      else if (d === 0x7d || d === 0x5d) {
        if (--depth === 0) return j + 1;
      }
    }
    return -1;
  }
  // A number, true, false or null.
  let j = i;
  for (; j < limit; j++) {
    const d = buf[j];
    if (d === 0x2c || d === 0x7d || d === 0x5d || d === 0x20 || d === 0x0a || d === 0x0d || d === 0x09) break;
  }
  return j === i || j >= limit ? -1 : j;
}

/**
 * The top-level `model` string among the members before `end` (where the tail began): a string,
 * null if there is no such member (or the last is not a string), undefined if the walk cannot
 * tell. Members are walked over, not built: a string is skipped by searching for its quote.
 */
function headModel(buf: Buffer, end: number): string | null | undefined {
  const limit = Math.min(end, HEAD_WALK_LIMIT);
  let i = skipSpace(buf, 0);
  if (buf[i] !== 0x7b) return undefined;
  i = skipSpace(buf, i + 1);
  let model: string | null = null;
  while (i < limit) {
    if (buf[i] !== QUOTE) return undefined;
    const keyEnd = stringEnd(buf, i);
    if (keyEnd < 0 || keyEnd >= limit) return undefined;
    // An escape in a key could spell "model": the whole parse decides.
    const bs = buf.indexOf(BACKSLASH, i + 1);
    if (bs >= 0 && bs < keyEnd) return undefined;
    const isModel =
      keyEnd - i - 1 === MODEL_KEY.length && buf.compare(MODEL_KEY, 0, MODEL_KEY.length, i + 1, keyEnd) === 0;
    i = skipSpace(buf, keyEnd + 1);
    if (buf[i] !== 0x3a) return undefined;
    i = skipSpace(buf, i + 1);
    const next = skipValue(buf, i, limit);
    if (next < 0) return undefined;
    if (isModel) {
      if (buf[i] !== QUOTE) model = null;
      else {
        try {
          model = JSON.parse(buf.toString('utf8', i, next)) as string;
        } catch {
          return undefined;
        }
      }
    }
    i = skipSpace(buf, next);
    if (buf[i] === 0x2c) {
      i = skipSpace(buf, i + 1);
      // The tail starts with the next key: every member before it has been seen (a repeated key
      // counts once, the last time, as in a whole parse).
      if (i === end) return model;
      continue;
    }
    return undefined;
  }
  return undefined;
}
