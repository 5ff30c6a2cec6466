import { randomBytes } from 'node:crypto';

/** Random hex digits, drawn 4 KB of randomness at a time: an id takes 19 of them. */
let pool = '';
let at = 0;

/**
 * A UUIDv7: 48 bits of epoch milliseconds, the version, then 74 random bits with the variant.
 * Ids that grow with time keep the store's primary-key index cheap to extend, and sort calls by
 * time for free.
 */
export function uuidv7(now: number = Date.now()): string {
  if (at + 19 > pool.length) {
    pool = randomBytes(4096).toString('hex');
    at = 0;
  }
  const i = at;
  at += 19;
  if (now !== lastMs) {
    const ts = now.toString(16).padStart(12, '0');
    lastMs = now;
    lastPrefix = `${ts.slice(0, 8)}-${ts.slice(8, 12)}-7`;
  }
  // The variant (10xx) keeps two random bits of one digit.
  const d = pool.charCodeAt(i + 3);
  const variant = VARIANT[(d <= 57 ? d - 48 : d - 87) & 3];
  return `${lastPrefix}${pool.slice(i, i + 3)}-${variant}${pool.slice(i + 4, i + 7)}-${pool.slice(i + 7, i + 19)}`;
}

/** The time part of the last id's, kept while the millisecond lasts: calls that share one share it. */
let lastMs = -1;
let lastPrefix = '';

const VARIANT = ['8', '9', 'a', 'b'];
