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

/** The index after the value that starts at `i`, or -1. */
function valueEnd(b: Buffer, i: number): number {
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
      if (d === 0x7b || d === 0x5b) depth++;
      else if ((d === 0x7d || d === 0x5d) && --depth === 0) return j + 1;
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
 * `raw` with the named top-level members' values replaced by the given JSON texts, and those it
 * lacks added at its end. Every member of a repeated name is replaced, as JSON.parse would read
 * the last. Null when `raw` is not a JSON object.
 */
export function editTopLevel(raw: Buffer, edits: ReadonlyMap<string, string>): Buffer | null {
  let i = skipSpace(raw, 0);
  if (raw[i] !== 0x7b) return null;
  i = skipSpace(raw, i + 1);
  const parts: Buffer[] = [];
  const done = new Set<string>();
  let from = 0;
  let members = 0;
  if (raw[i] !== 0x7d) {
    for (;;) {
      if (raw[i] !== QUOTE) return null;
      const keyEnd = stringEnd(raw, i);
      if (keyEnd < 0) return null;
      const key = keyAt(raw, i, keyEnd);
      i = skipSpace(raw, keyEnd);
      if (raw[i] !== 0x3a) return null;
      i = skipSpace(raw, i + 1);
      const end = valueEnd(raw, i);
      if (end < 0) return null;
      members++;
      const edit = edits.get(key);
      if (edit !== undefined) {
        parts.push(raw.subarray(from, i), Buffer.from(edit, 'utf8'));
        from = end;
        done.add(key);
      }
      i = skipSpace(raw, end);
      if (raw[i] === 0x2c) {
        i = skipSpace(raw, i + 1);
        continue;
      }
      if (raw[i] === 0x7d) break;
      return null;
    }
  }
  if (skipSpace(raw, i + 1) !== raw.length) return null;
  let added = '';
  for (const [key, value] of edits) {
    if (!done.has(key)) added += `${members++ > 0 ? ',' : ''}${JSON.stringify(key)}:${value}`;
  }
  parts.push(raw.subarray(from, i), Buffer.from(added, 'utf8'), raw.subarray(i));
  return Buffer.concat(parts);
}
