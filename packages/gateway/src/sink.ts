import type { CallRecord } from '@tally/core';
import type { Sink } from './types.js';

/**
 * Where metered calls wait for their write: a chunk takes each record as it is metered. It may
 * encode it at once (as CSV or JSON text in an off-heap buffer), so that no record outlives the
 * call that made it: records held for a batch would survive the young generation's collections,
 * be copied and promoted, and grow the young generation to its cap.
 */
export interface SinkChunk {
  /** Records added so far. */
  readonly rows: number;
  add(record: CallRecord): void;
}

/** The plain chunk: the records themselves. */
export class RecordChunk implements SinkChunk {
  readonly records: CallRecord[] = [];

  get rows(): number {
    return this.records.length;
  }

  add(record: CallRecord): void {
    this.records.push(record);
  }
}

export interface BatchingSinkOptions<C extends SinkChunk> {
  /** A new, empty chunk. */
  newChunk: () => C;
  /** Writes a chunk durably; a rejection keeps it for the next try. */
  write: (chunk: C) => Promise<void>;
  /** A chunk holds this many records, and is written as soon as it is full... */
  maxBatch?: number;
  /** ...or after this long. */
  intervalMs?: number;
  /** Records kept while the writer fails; past this, the oldest chunks are dropped and counted. */
  maxBuffered?: number;
  onError?: (err: unknown, pending: number) => void;
}

/**
 * Metering off the hot path: write() only adds the record to a chunk; chunks go to the store on a
 * timer or when full, one write at a time, retried with backoff while the store is unavailable.
 */
export class BatchingSink<C extends SinkChunk = RecordChunk> implements Sink {
  /** Oldest first; the last one takes new records until it is full. */
  private chunks: C[] = [];
  private rows = 0;
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> | null = null;
  private failures = 0;
  private closed = false;
  dropped = 0;

  constructor(private readonly opts: BatchingSinkOptions<C>) {}

  private get maxBatch(): number {
    return this.opts.maxBatch ?? 500;
  }

  write(record: CallRecord): void {
    let chunk = this.chunks.at(-1);
    if (!chunk || chunk.rows >= this.maxBatch) {
      chunk = this.opts.newChunk();
      this.chunks.push(chunk);
    }
    chunk.add(record);
    this.rows++;
    const max = this.opts.maxBuffered ?? 200_000;
    while (this.rows > max && this.chunks.length > 1) {
      const old = this.chunks.shift()!;
      this.dropped += old.rows;
      this.rows -= old.rows;
    }
    if (this.rows >= this.maxBatch) this.kick(0);
    else this.kick(this.opts.intervalMs ?? 200);
  }

  /** Records waiting to be written (not counting a write under way). */
  get pending(): number {
    return this.rows;
  }

  private kick(delay: number): void {
    if (this.writing) return;
    if (this.timer) {
      if (delay > 0) return;
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, delay);
    this.timer.unref();
  }

  /** Writes the oldest chunk; resolves when written (or when the write failed). */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
    const chunk = this.chunks.shift();
    if (!chunk) return;
    this.rows -= chunk.rows;
    this.writing = this.opts
      .write(chunk)
      .then(() => {
        this.failures = 0;
      })
      .catch((err: unknown) => {
        // Keep the chunk, in order, and back off: 100 ms doubling up to 10 s.
        this.chunks.unshift(chunk);
        this.rows += chunk.rows;
        this.failures++;
        this.opts.onError?.(err, this.rows);
      })
      .finally(() => {
        this.writing = null;
      });
    await this.writing;
    if (this.rows > 0 && !this.closed) {
      // What arrived during the write waits for a full chunk or the interval: each write has a
      // fixed cost (a transaction, a round trip), so back-to-back small writes cost many times more
      // a row than full ones.
      this.kick(
        this.failures > 0
          ? Math.min(10_000, 100 * 2 ** (this.failures - 1))
          : this.rows >= this.maxBatch
            ? 0
            : (this.opts.intervalMs ?? 200),
      );
    }
  }

  /** Writes what is left (trying a few times), then stops. */
  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const tries = 5 + this.chunks.length;
    for (let i = 0; this.rows > 0 && i < tries; i++) await this.flush();
    this.closed = true;
  }
}

/** A sink of plain record chunks. */
export function recordSink(
  opts: Omit<BatchingSinkOptions<RecordChunk>, 'newChunk' | 'write'> & {
    write: (records: CallRecord[]) => Promise<void>;
  },
): BatchingSink<RecordChunk> {
  const { write, ...rest } = opts;
  return new BatchingSink({ ...rest, newChunk: () => new RecordChunk(), write: (c) => write(c.records) });
}
