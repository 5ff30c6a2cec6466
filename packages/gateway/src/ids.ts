import { randomBytes } from 'node:crypto';

/** Random hex digits, drawn 4 KB of randomness at a time: an id takes 19 of them. */
let pool = '';
let at = 0;

/**
 * A UUIDv7: 48 bits of epoch milliseconds, the version, a 12-bit counter, then 62 random bits with
 * the variant. Ids that grow with time keep the store's primary-key index cheap to extend, and sort
 * calls by time for free.
 *
 * Ids made in one millisecond grow too (RFC 9562, 6.2, method 1): the counter starts at a random
 * value under 2048 at each new millisecond and counts up, and past 4095 the time part moves on a
 * millisecond. So the attempts of one request, which share its time, list in the order they were
 * made. A clock that steps back by up to a second keeps the ids growing; one that steps back
 * further starts again from it.
 */
export function uuidv7(now: number = Date.now()): string {
  if (at + 19 > pool.length) {
    pool = randomBytes(4096).toString('hex');
    at = 0;
  }
  const i = at;
  at += 19;
  if (now > lastMs || now < lastMs - 1000) startMs(now, i);
  else if (++counter > 0xfff) startMs(lastMs + 1, i);
  // The variant (10xx) keeps two random bits of one digit.
  const d = pool.charCodeAt(i + 3);
  const variant = VARIANT[(d <= 57 ? d - 48 : d - 87) & 3];
  return `${lastPrefix}${HEX3[counter]}-${variant}${pool.slice(i + 4, i + 7)}-${pool.slice(i + 7, i + 19)}`;
}

/** A new millisecond for the ids: its time part, and a counter from random digits `i` of the pool. */
function startMs(ms: number, i: number): void {
  const ts = ms.toString(16).padStart(12, '0');
  lastMs = ms;
  lastPrefix = `${ts.slice(0, 8)}-${ts.slice(8, 12)}-7`;
  counter = Number.parseInt(pool.slice(i, i + 3), 16) & 0x7ff;
}

/** The time part of the last id's, kept while the millisecond lasts: calls that share one share it. */
let lastMs = -1;
let lastPrefix = '';
/** The last id's counter, within its millisecond. */
let counter = 0;

const VARIANT = ['8', '9', 'a', 'b'];
const HEX3 = Array.from({ length: 4096 }, (_, n) => n.toString(16).padStart(3, '0'));
