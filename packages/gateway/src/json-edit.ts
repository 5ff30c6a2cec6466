/**
 * Edits to a JSON object's top-level members, made in the client's own bytes: every other byte
 * goes upstream as sent. Parsing and serialising the body again would not keep it: a 64-bit
 * `seed` loses its low digits in a JavaScript number, and `1.0` becomes `1`.
 */
import { escaped } from './answer-meta.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

const isSpace = (c: number | undefined) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

function skipSpace(b: Buffer, i: number): number {
  while (i < b.length && isSpace(b[i])) i++;
  return i;
}

/** Strings are read byte by byte up to this length, past it by indexOf: most of a body's strings
 * (names, roles) are short, and for them a call to indexOf costs more than the loop. */
const SHORT_STRING = 16;

/** The index after the string that opens at `i`, or -1. */
function stringEnd(b: Buffer, i: number): number {
  const n = b.length;
  const stop = Math.min(i + 1 + SHORT_STRING, n);
  let j = i + 1;
  for (; j < stop; j++) {
    const c = b[j];
    if (c === QUOTE) return j + 1;
    if (c === BACKSLASH) j++;
  }
  let from = j;
  for (;;) {
    const q = b.indexOf(QUOTE, from);
    if (q < 0) return -1;
    if (!escaped(b, q)) return q + 1;
    from = q + 1;
  }
}

/** What valueEnd answers for a value that nests deeper than it was allowed to. */
const TOO_DEEP = -2;

/** The index after the value that starts at `i`; -1 when there is none, TOO_DEEP when it opens
 * more than `maxDepth` objects and arrays one in another. */
function valueEnd(b: Buffer, i: number, maxDepth: number): number {
  const c = b[i];
  if (c === QUOTE) return stringEnd(b, i);
  if (c === 0x7b || c === 0x5b) {
    let depth = 0;
    for (let j = i; j < b.length; ) {
      const d = b[j];
      if (d === QUOTE) {
        j = stringEnd(b, j);
        if (j < 0) return -1;
        continue;
      }
      if (d === 0x7b || d === 0x5b) {
        if (++depth > maxDepth) return TOO_DEEP;
      } else if ((d === 0x7d || d === 0x5d) && --depth === 0) return j + 1;
      j++;
    }
    return -1;
  }
  let j = i;
  while (j < b.length && !isSpace(b[j]) && b[j] !== 0x2c && b[j] !== 0x7d && b[j] !== 0x5d) j++;
  return j > i ? j : -1;
}

/** The name whose string spans `start` to `end`, quotes included. Read in place: subarray() and
 * includes() each cost more than such a short scan. */
function keyAt(b: Buffer, start: number, end: number): string {
  for (let i = start + 1; i < end - 1; i++)
    if (b[i] === BACKSLASH) return JSON.parse(b.toString('utf8', start, end)) as string;
  return b.toString('utf8', start + 1, end - 1);
}

/** One member of an object: the span of its name's string (quotes included) and of its value.
 * False stops the walk. */
type Visit = (keyStart: number, keyEnd: number, start: number, end: number) => boolean;

/**
 * Walks the members of the JSON object in `raw`, handing each one to `visit` (a value that nests
 * too deep is handed over with TOO_DEEP for its end, and ends the walk). Answers the index of the
 * object's closing brace, -1 when `raw` is not one JSON object (or the walk was stopped), or
 * TOO_DEEP.
 */
function walkTopLevel(raw: Buffer, maxDepth: number, visit: Visit): number {
  let i = skipSpace(raw, 0);
  if (raw[i] !== 0x7b) return -1;
  i = skipSpace(raw, i + 1);
  if (raw[i] !== 0x7d) {
    for (;;) {
      if (raw[i] !== QUOTE) return -1;
      const keyStart = i;
      const keyEnd = stringEnd(raw, i);
      if (keyEnd < 0) return -1;
      i = skipSpace(raw, keyEnd);
      if (raw[i] !== 0x3a) return -1;
      i = skipSpace(raw, i + 1);
      const end = valueEnd(raw, i, maxDepth);
      if (end === TOO_DEEP) visit(keyStart, keyEnd, i, end);
      if (end < 0) return end;
      if (!visit(keyStart, keyEnd, i, end)) return -1;
      i = skipSpace(raw, end);
      if (raw[i] === 0x2c) {
        i = skipSpace(raw, i + 1);
        continue;
      }
      if (raw[i] === 0x7d) break;
      return -1;
    }
  }
  return skipSpace(raw, i + 1) === raw.length ? i : -1;
}

/**
 * `raw` with the named top-level members' values replaced by the given JSON texts, and those it
 * lacks added at its end. Every member of a repeated name is replaced, as JSON.parse would read
 * the last. Null when `raw` is not a JSON object.
 */
export function editTopLevel(raw: Buffer, edits: ReadonlyMap<string, string>): Buffer | null {
  const parts: Buffer[] = [];
  const done = new Set<string>();
  let from = 0;
  let members = 0;
  const close = walkTopLevel(raw, Number.POSITIVE_INFINITY, (keyStart, keyEnd, start, end) => {
    members++;
    const key = keyAt(raw, keyStart, keyEnd);
    const edit = edits.get(key);
    if (edit !== undefined) {
      parts.push(raw.subarray(from, start), Buffer.from(edit, 'utf8'));
      from = end;
      done.add(key);
    }
    return true;
  });
  if (close < 0) return null;
  let added = '';
  for (const [key, value] of edits) {
    if (!done.has(key)) added += `${members++ > 0 ? ',' : ''}${JSON.stringify(key)}:${value}`;
  }
  parts.push(raw.subarray(from, close), Buffer.from(added, 'utf8'), raw.subarray(close));
  return Buffer.concat(parts);
}

/** What checkTopLevel finds wrong with a body, and the member it is in. */
export interface BodyProblem {
  code: 'nesting_too_deep' | 'duplicate_key';
  key: string;
}

/** Past this many members, or with a name that has escapes, names are compared as strings. */
const COMPARED_IN_PLACE = 32;

/** The spans of the names seen so far in the body being checked. Kept from call to call (the
 * check is synchronous), so that a call's check allocates no list. */
const spans: number[] = [];

/**
 * Checks a request body that JSON.parse has taken as an object, in one walk of its bytes:
 * - no member nests objects and arrays more than `maxDepth` deep (the body's own braces count as
 *   one): walking a value that deep would overflow the stack where the gateway reads or writes it
 *   again (JSON.stringify fails at about 4,000);
 * - no name is given twice: JSON.parse keeps the last, which the gateway checks and prices, while
 *   an upstream that keeps the first would serve another model than the one allowed and paid for.
 * Names are compared as bytes in place, as making strings of them costs more than the walk.
 * Null when the body is fine.
 */
export function checkTopLevel(raw: Buffer, maxDepth: number): BodyProblem | null {
  let problem: BodyProblem | null = null;
  let inPlace = true;
  spans.length = 0;
  walkTopLevel(raw, maxDepth - 1, (keyStart, keyEnd, _start, end) => {
    if (end === TOO_DEEP) problem = { code: 'nesting_too_deep', key: keyAt(raw, keyStart, keyEnd) };
    else if (!inPlace) return true;
    else if (spans.length === 2 * COMPARED_IN_PLACE || hasEscape(raw, keyStart, keyEnd)) inPlace = false;
    else {
      for (let n = 0; n < spans.length && problem === null; n += 2)
        if (sameBytes(raw, spans[n]!, spans[n + 1]!, keyStart, keyEnd))
          problem = { code: 'duplicate_key', key: keyAt(raw, keyStart, keyEnd) };
      spans.push(keyStart, keyEnd);
    }
    return problem === null;
  });
  return problem ?? (inPlace ? null : repeatedName(raw));
}

/** The first name given twice, as strings: for a body with many members or escaped names. */
function repeatedName(raw: Buffer): BodyProblem | null {
  const names = new Set<string>();
  let problem: BodyProblem | null = null;
  walkTopLevel(raw, Number.POSITIVE_INFINITY, (keyStart, keyEnd) => {
    const key = keyAt(raw, keyStart, keyEnd);
    if (names.has(key)) problem = { code: 'duplicate_key', key };
    names.add(key);
    return problem === null;
  });
  return problem;
}

function hasEscape(b: Buffer, start: number, end: number): boolean {
  for (let i = start + 1; i < end - 1; i++) if (b[i] === BACKSLASH) return true;
  return false;
}

function sameBytes(b: Buffer, s1: number, e1: number, s2: number, e2: number): boolean {
  if (e1 - s1 !== e2 - s2) return false;
  for (let i = 0; i < e1 - s1; i++) if (b[s1 + i] !== b[s2 + i]) return false;
  return true;
}
