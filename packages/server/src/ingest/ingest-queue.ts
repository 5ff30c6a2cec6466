import type { IngestBatch, Store, WriteResult } from '@tally/store';

interface Pending {
  batch: IngestBatch;
  /** Resolved with the result of the whole merged write. */
  resolve: (r: WriteResult) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit: requests that arrive while a write is in flight are merged into the next one, so
 * that many small batches cost one transaction, and each request is acknowledged only after the
 * transaction holding its events has committed.
 */
export class IngestQueue {
  private pending: Pending[] = [];
  private running = false;
  private closed = false;
  private idle: Promise<void> = Promise.resolve();
  private idleResolve: (() => void) | null = null;

  constructor(
    private readonly store: Store,
    private readonly maxRowsPerWrite = 20_000,
  ) {}

  submit(batch: IngestBatch): Promise<WriteResult> {
    if (this.closed) return Promise.reject(new Error('ingest queue is closed'));
    return new Promise((resolve, reject) => {
      this.pending.push({ batch, resolve, reject });
      if (!this.running) void this.drain();
    });
  }

  /** Waits for every submitted batch to be written, then refuses new ones. */
  async close(): Promise<void> {
    this.closed = true;
    await this.idle;
  }

  private async drain(): Promise<void> {
    this.running = true;
    this.idle = new Promise((r) => {
      this.idleResolve = r;
    });
    try {
      while (this.pending.length > 0) {
        const group = this.takeGroup();
        const merged: IngestBatch = { calls: [], tasks: [] };
        for (const p of group) {
          for (const c of p.batch.calls) merged.calls.push(c);
          for (const t of p.batch.tasks) merged.tasks.push(t);
        }
        try {
          const result = await this.store.ingest(merged);
          for (const p of group) p.resolve(result);
        } catch (err) {
          for (const p of group) p.reject(err);
        }
      }
    } finally {
      this.running = false;
      this.idleResolve?.();
    }
  }

  private takeGroup(): Pending[] {
    let rows = 0;
    let n = 0;
    while (n < this.pending.length) {
      const b = this.pending[n]!.batch;
      rows += b.calls.length + b.tasks.length;
      n++;
      if (rows >= this.maxRowsPerWrite) break;
    }
    return this.pending.splice(0, n);
  }
}
