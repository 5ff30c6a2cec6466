import { randomBytes } from 'node:crypto';

let pool = Buffer.alloc(0);
let offset = 0;

/**
 * A UUIDv7: 48 bits of epoch milliseconds, then random bits. Ids that grow with time keep the
 * store's primary-key index cheap to extend, and sort calls by time for free.
 */
export function uuidv7(now: number = Date.now()): string {
  if (offset + 10 > pool.length) {
    pool = randomBytes(4096);
    offset = 0;
  }
  const r = pool.subarray(offset, offset + 10);
  offset += 10;
  const ts = now.toString(16).padStart(12, '0');
  const hex = r.toString('hex');
  const variant = ((r[2]! & 0x3f) | 0x80).toString(16).padStart(2, '0');
  return `${ts.slice(0, 8)}-${ts.slice(8, 12)}-7${hex.slice(0, 3)}-${variant}${hex.slice(6, 8)}-${hex.slice(8, 20)}`;
}
