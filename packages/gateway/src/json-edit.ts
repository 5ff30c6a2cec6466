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

/** The index after the string that opens at `i`, or -1. */
function stringEnd(b: Buffer, i: number): number {
  let from = i + 1;
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

function keyAt(b: Buffer, start: number, end: number): string {
  const inner = b.subarray(start + 1, end - 1);
  return inner.includes(BACKSLASH)
    ? (JSON.parse(b.toString('utf8', start, end)) as string)
    : inner.toString('utf8');
}

/**
 * Walks the members of the JSON object in `raw`, handing each one's name and the span of its value
 * to `visit` (false stops the walk there; a value that nests too deep is handed over with TOO_DEEP
 * for its end, and ends the walk). Answers the index of the object's closing brace, -1 when `raw`
 * is not one JSON object (or the walk was stopped), or TOO_DEEP.
 */
function walkTopLevel(
  raw: Buffer,
  maxDepth: number,
  visit: (key: string, start: number, end: number) => boolean,
): number {
  let i = skipSpace(raw, 0);
  if (raw[i] !== 0x7b) return -1;
  i = skipSpace(raw, i + 1);
  if (raw[i] !== 0x7d) {
    for (;;) {
      if (raw[i] !== QUOTE) return -1;
      const keyEnd = stringEnd(raw, i);
      if (keyEnd < 0) return -1;
      const key = keyAt(raw, i, keyEnd);
      i = skipSpace(raw, keyEnd);
      if (raw[i] !== 0x3a) return -1;
      i = skipSpace(raw, i + 1);
      const end = valueEnd(raw, i, maxDepth);
      if (end === TOO_DEEP) visit(key, i, end);
      if (end < 0) return end;
      if (!visit(key, i, end)) return -1;
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
  const close = walkTopLevel(raw, Number.POSITIVE_INFINITY, (key, start, end) => {
    members++;
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
  code: 'nesting_too_deep';
  key: string;
}

/**
 * Checks a request body that JSON.parse has taken as an object: no member nests objects and arrays
 * more than `maxDepth` deep (the body's own braces count as one). Walking a value that deep would
 * overflow the stack where the gateway reads or writes it again (JSON.stringify fails at about
 * 4,000). Null when the body is fine.
 */
export function checkTopLevel(raw: Buffer, maxDepth: number): BodyProblem | null {
  let problem: BodyProblem | null = null;
  walkTopLevel(raw, maxDepth - 1, (key, _start, end) => {
    if (end === TOO_DEEP) problem = { code: 'nesting_too_deep', key };
    return true;
  });
  return problem;
}
