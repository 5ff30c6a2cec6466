import type { CallRecord } from '@tally/core';
import type { Sink } from './types.js';

export interface BatchingSinkOptions {
  /** Writes a batch durably; a rejection keeps the batch for the next try. */
  write: (records: CallRecord[]) => Promise<void>;
  /** Flush when this many records wait... */
  maxBatch?: number;
  /** ...or after this long. */
  intervalMs?: number;
  /** Records kept while the writer fails; past this, the oldest are dropped and counted. */
  maxBuffered?: number;
  onError?: (err: unknown, pending: number) => void;
}

/**
 * Metering off the hot path: write() only appends to an array; batches go to the store on a timer
 * or when full, one write at a time, retried with backoff while the store is unavailable.
 */
export class BatchingSink implements Sink {
  private buf: CallRecord[] = [];
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> | null = null;
  private failures = 0;
  private closed = false;
  dropped = 0;

  constructor(private readonly opts: BatchingSinkOptions) {}

  write(record: CallRecord): void {
    this.buf.push(record);
    const max = this.opts.maxBuffered ?? 200_000;
    if (this.buf.length > max) {
      this.dropped += this.buf.length - max;
      this.buf.splice(0, this.buf.length - max);
    }
    if (this.buf.length >= (this.opts.maxBatch ?? 500)) this.kick(0);
    else this.kick(this.opts.intervalMs ?? 200);
  }

  get pending(): number {
    return this.buf.length;
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

  /** Writes everything buffered now; resolves when written (or when a write failed). */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
    if (this.buf.length === 0) return;
    const batch = this.buf.splice(0, this.opts.maxBatch ?? 500);
    this.writing = this.opts
      .write(batch)
      .then(() => {
        this.failures = 0;
      })
      .catch((err: unknown) => {
        // Keep the batch, in order, and back off: 100 ms doubling up to 10 s.
        this.buf.unshift(...batch);
        this.failures++;
        this.opts.onError?.(err, this.buf.length);
      })
      .finally(() => {
        this.writing = null;
      });
    await this.writing;
    if (this.buf.length > 0 && !this.closed) {
      // What arrived during the write waits for a full batch or the interval: each write has a
      // fixed cost (a transaction, a round trip), so back-to-back small writes cost many times more
      // a row than full ones.
      const full = this.buf.length >= (this.opts.maxBatch ?? 500);
      this.kick(
        this.failures > 0
          ? Math.min(10_000, 100 * 2 ** (this.failures - 1))
          : full
            ? 0
            : (this.opts.intervalMs ?? 200),
      );
    }
  }

  /** Flushes what is left (trying a few times), then stops. */
  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (let tries = 0; this.buf.length > 0 && tries < 5; tries++) await this.flush();
    this.closed = true;
  }
}
