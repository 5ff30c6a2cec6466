import type { CallRecord } from '@tally/core';
import { RecordChunk } from '../sink.js';
import type { SpoolCodec } from '../spool.js';

/** A spool codec for tests: a chunk's record ids, one a line; a line cut off at the end is left out. */
export const idLines: SpoolCodec<RecordChunk> = {
  format: 'ids-v1',
  bytes: (c) => Buffer.from(c.records.map((r) => `${r.id}\n`).join('')),
  restore: (bytes) => {
    const c = new RecordChunk();
    const text = bytes.toString('utf8');
    for (const id of text.slice(0, text.lastIndexOf('\n') + 1).split('\n')) {
      if (id) c.add({ id } as CallRecord);
    }
    return c;
  },
};

/** A chunk of records with these ids. */
export function idChunk(...ids: string[]): RecordChunk {
  const c = new RecordChunk();
  for (const id of ids) c.add({ id } as CallRecord);
  return c;
}
