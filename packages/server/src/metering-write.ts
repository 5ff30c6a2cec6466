import { appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { isTallyError } from '@tally/core';
import { type CallBatch, csvLines, type Store } from '@tally/store';
import type { FastifyBaseLogger } from 'fastify';
import type { ServerMetrics } from './metrics.js';

/** Calls the store refused, one by one: what the metering could not store, and why. */
export interface RejectedCalls {
  /** How many this process has set aside. */
  readonly count: number;
}

/**
 * The metering sink's write into this process's store. A batch that the store refuses because of
 * one call it cannot take (a value no column holds) is split in halves until each refused call is
 * alone: the others are stored, and each refused call is appended, with the reason, to a CSV file
 * of the day in `rejectedDir` (and logged), so that one bad call never holds back the thousands
 * written with it. Any other failure is thrown, and the sink tries the whole batch again (the
 * calls already stored then count as duplicates).
 */
export function meteringWriter(
  store: Store,
  metrics: ServerMetrics,
  log: FastifyBaseLogger,
  rejectedDir?: string,
): { write: (batch: CallBatch) => Promise<void>; rejected: RejectedCalls } {
  const rejected = { count: 0 };
  const refused = (err: unknown) => isTallyError(err) && err.code === 'invalid_event';

  const setAside = async (line: string, reason: string) => {
    rejected.count++;
    metrics.callsRejected.inc();
    log.error({ reason, call: line.slice(0, 2000) }, 'the store refused a metered call; it is set aside');
    if (!rejectedDir) return;
    await mkdir(rejectedDir, { recursive: true, mode: 0o700 });
    const file = join(rejectedDir, `calls-${new Date().toISOString().slice(0, 10)}.csv`);
    await appendFile(file, `${line}\n`, { mode: 0o600 });
  };

  const split = async (format: string, lines: string[]): Promise<number> => {
    const batch = store.restoreCallBatch(format, Buffer.from(`${lines.join('\n')}\n`, 'utf8'));
    try {
      return (await store.appendCallBatch(batch)).inserted;
    } catch (err) {
      if (!refused(err)) throw err;
      if (lines.length === 1) {
        await setAside(lines[0]!, (err as Error).message);
        return 0;
      }
      const mid = lines.length >> 1;
      return (await split(format, lines.slice(0, mid))) + (await split(format, lines.slice(mid)));
    }
  };

  return {
    rejected,
    write: async (batch) => {
      let inserted: number;
      try {
        inserted = (await store.appendCallBatch(batch)).inserted;
      } catch (err) {
        if (!refused(err)) throw err;
        inserted = await split(batch.format, csvLines(batch.bytes));
      }
      metrics.eventsAccepted.inc({ kind: 'gateway_call' }, inserted);
    },
  };
}
