import { TallyError } from '@tally/core';

/** The position after the last row of a page: calls are ordered by (time desc, id desc). */
export interface CallCursor {
  time: number;
  id: string;
}

export function encodeCursor(c: CallCursor): string {
  return Buffer.from(JSON.stringify([c.time, c.id]), 'utf8').toString('base64url');
}

/** Throws invalid_cursor for anything encodeCursor did not make. */
export function decodeCursor(cursor: string): CallCursor {
  const bad = () => new TallyError('invalid_cursor');
  // Node decodes base64 leniently (it skips characters it does not know), so a cursor only
  // counts when it encodes back to itself.
  const buf = Buffer.from(cursor, 'base64url');
  if (buf.length === 0 || buf.toString('base64url') !== cursor) throw bad();
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.toString('utf8'));
  } catch {
    throw bad();
  }
  if (!Array.isArray(parsed) || parsed.length !== 2) throw bad();
  const [time, id] = parsed as unknown[];
  if (typeof time !== 'number' || !Number.isSafeInteger(time) || typeof id !== 'string') throw bad();
  return { time, id };
}
