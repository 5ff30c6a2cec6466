import type { CallRecord } from '@tally/core';
import type { ChunkJournal, ChunkSpool } from './spool.js';
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

/**
 * What a writer throws when the store took part of a chunk and refused the rest (a batch checked
 * call by call, say): `rest` holds the refused calls, and only they are kept and tried again. A
 * refusal may pass later (a server upgraded to read a newer call), so they are not dropped.
 */
export class ChunkPartlyWritten<C extends SinkChunk = SinkChunk> extends Error {
  constructor(
    readonly rest: C,
    message: string,
  ) {
    super(message);
    this.name = 'ChunkPartlyWritten';
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
  /** Records kept in memory while the writer fails; past this, the oldest chunks go to the
   * spool (or, with none, are dropped and counted). */
  maxBuffered?: number;
  /** Where chunks that cannot be written are kept on disk, and written from later. */
  spool?: ChunkSpool<C>;
  /** Failed writes in a row after which a chunk goes to the spool rather than back in line. */
  spoolAfter?: number;
  /** How often the spool is looked at for files to write (ms). */
  replayMs?: number;
  /** With a spool, each chunk is mirrored to its file this often (ms), so that the calls metered
   * before a crash are on disk; 0 turns the journal off. */
  journalMs?: number;
  onError?: (err: unknown, pending: number) => void;
}

/**
 * Metering off the hot path: write() only adds the record to a chunk; chunks go to the store on a
 * timer or when full, one write at a time, retried with backoff while the store is unavailable.
 * With a spool, each chunk is also mirrored to a file as it fills (a journal, appended every
 * `journalMs`), so a crash loses at most that long of calls; a chunk that keeps failing (or that
 * memory has no room for, or that is left at shutdown) is kept there, and the spool's files are
 * written when the store takes writes again.
 */
export class BatchingSink<C extends SinkChunk = RecordChunk> implements Sink {
  /** Oldest first; the last one takes new records until it is full. */
  private chunks: C[] = [];
  private rows = 0;
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> | null = null;
  private failures = 0;
  private closed = false;
  /** Work on the spool's files under way (spills, discards), for close() to wait for. */
  private readonly background = new Set<Promise<unknown>>();
  private readonly replayTimer: NodeJS.Timeout | null = null;
  private readonly journals = new Map<C, ChunkJournal>();
  private journalTimer: NodeJS.Timeout | null = null;
  /** The chunk being written, which its journal still mirrors. */
  private inflight: C | null = null;
  /** Records lost: past the buffer with no spool, or when the spool could not keep them. */
  dropped = 0;
  /** Records the store refused (ChunkPartlyWritten), counted at each refusal: they are kept and
   * tried again, so one record refused twice counts twice. */
  refused = 0;
  /** What trackInflight keeps on disk: the calls under way, and whether any are. */
  private inflightTracking: { calls: () => Promise<CallRecord[]>; busy: () => boolean } | null = null;
  /** The tracker's timer, while it looks (null while it sleeps). */
  private inflightTimer: NodeJS.Timeout | null = null;
  private inflightIds = '';
  private inflightWrite: Promise<void> | null = null;

  constructor(private readonly opts: BatchingSinkOptions<C>) {
    if (opts.spool) {
      this.replayTimer = setInterval(() => this.replay(), opts.replayMs ?? 1000);
      this.replayTimer.unref();
    }
  }

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
    if (this.journalTimer === null && this.opts.spool && (this.opts.journalMs ?? 20) > 0) {
      this.journalTimer = setTimeout(() => this.syncJournals(), this.opts.journalMs ?? 20);
      this.journalTimer.unref();
    }
    const max = this.opts.maxBuffered ?? 200_000;
    while (this.rows > max && this.chunks.length > 1) {
      const old = this.chunks.shift()!;
      this.rows -= old.rows;
      if (this.opts.spool) this.spill(old);
      else this.dropped += old.rows;
    }
    if (this.rows >= this.maxBatch) this.kick(0);
    else this.kick(this.opts.intervalMs ?? 200);
  }

  /** Records waiting in memory to be written (not counting a write under way). */
  get pending(): number {
    return this.rows;
  }

  /** Records kept in the spool's files. */
  get spooled(): number {
    return this.opts.spool?.rows ?? 0;
  }

  /** The size of the spool's files, and their bound. */
  get spooledBytes(): number {
    return this.opts.spool?.bytes ?? 0;
  }

  get spoolLimitBytes(): number | null {
    const max = this.opts.spool?.maxBytes;
    return max === undefined || !Number.isFinite(max) ? null : max;
  }

  /** Failed writes in a row (0 once a write succeeds). */
  get failing(): number {
    return this.failures;
  }

  /**
   * Keeps the calls under way on disk, in one file of the spool that this process holds, written
   * again (whole, then renamed over) every `journalMs` while they change. After a crash the next
   * process writes them after the journals of the same process, so a call that did end, and was
   * journaled, keeps its real record.
   */
  trackInflight(calls: () => Promise<CallRecord[]>, busy?: () => boolean): void {
    const spool = this.opts.spool;
    const every = this.opts.journalMs ?? 20;
    if (!spool || every <= 0 || this.inflightTracking) return;
    this.inflightTracking = { calls, busy: busy ?? (() => true) };
    this.inflightStarted();
  }

  /** A call went under way: the tracker, asleep while none was, looks again. */
  inflightStarted(): void {
    const t = this.inflightTracking;
    if (!t || this.inflightTimer !== null || this.closed) return;
    const spool = this.opts.spool!;
    this.inflightTimer = setInterval(() => {
      if (this.inflightWrite || this.closed) return;
      // Nothing under way and none on file: it sleeps until the next call (no wake-ups while idle).
      if (!t.busy() && this.inflightIds === '') {
        clearInterval(this.inflightTimer!);
        this.inflightTimer = null;
        return;
      }
      this.inflightWrite = (async () => {
        const records = await t.calls();
        // Rewritten when the calls, or a stream's count of output so far, change.
        const ids = records.map((r) => `${r.id}:${r.tokens.output}`).join(',');
        if (ids === this.inflightIds) return;
        const chunk = this.opts.newChunk();
        for (const r of records) chunk.add(r);
        await spool.keepInflight(chunk);
        this.inflightIds = ids;
      })()
        .catch((err: unknown) => this.opts.onError?.(err, this.rows))
        .finally(() => {
          this.inflightWrite = null;
        });
    }, this.opts.journalMs ?? 20);
    this.inflightTimer.unref();
  }

  /** Appends what each chunk has gained to its journal (making the journal if it has none). */
  private syncJournals(): void {
    this.journalTimer = null;
    const spool = this.opts.spool;
    if (!spool) return;
    for (const chunk of this.inflight ? [this.inflight, ...this.chunks] : this.chunks) {
      if (chunk.rows === 0) continue;
      // With no room under the spool's bound, the chunk is only in memory until there is.
      const j = spool.mirror(this.journals.get(chunk) ?? null, chunk);
      if (j) this.journals.set(chunk, j);
      else this.journals.delete(chunk);
    }
  }

  private track(p: Promise<unknown>): void {
    this.background.add(p);
    void p.finally(() => this.background.delete(p));
  }

  /** The chunk is in the store: its journal goes. */
  private written(chunk: C): void {
    const j = this.journals.get(chunk);
    if (!j) return;
    this.journals.delete(chunk);
    this.track(this.opts.spool!.discard(j).catch(() => undefined));
  }

  /** Keeps a chunk in the spool (its journal, or a new file); false (and the error reported) if
   * it could not. */
  private async keep(chunk: C): Promise<boolean> {
    const spool = this.opts.spool!;
    const j = this.journals.get(chunk);
    this.journals.delete(chunk);
    try {
      if (j && (await spool.release(j, chunk))) return true;
      await spool.save(chunk);
      return true;
    } catch (err) {
      this.opts.onError?.(err, this.rows + chunk.rows);
      return false;
    }
  }

  private spill(chunk: C): void {
    this.track(
      this.keep(chunk).then((ok) => {
        if (!ok) this.dropped += chunk.rows;
      }),
    );
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
    this.writing = this.writeOne(chunk).finally(() => {
      this.writing = null;
    });
    await this.writing;
    this.next();
  }

  private async writeOne(chunk: C): Promise<void> {
    this.inflight = chunk;
    try {
      await this.opts.write(chunk);
      this.failures = 0;
      this.inflight = null;
      this.written(chunk);
    } catch (err) {
      this.inflight = null;
      this.failures++;
      if (err instanceof ChunkPartlyWritten) {
        // The rest takes the chunk's place: mirrored to a journal of its own before the chunk's
        // journal, which holds the written calls too, goes.
        const rest = err.rest as C;
        this.refused += rest.rows;
        const j = this.opts.spool && rest.rows > 0 ? this.opts.spool.mirror(null, rest) : null;
        if (j) this.journals.set(rest, j);
        this.written(chunk);
        chunk = rest;
      }
      if (chunk.rows === 0) {
        // Nothing was left over after all.
        this.failures = 0;
        return;
      }
      this.opts.onError?.(err, this.rows + chunk.rows);
      // After a few tries in a row, the chunk waits on disk, and the next one gets its turn.
      if (this.opts.spool && this.failures >= (this.opts.spoolAfter ?? 3) && (await this.keep(chunk))) return;
      // Otherwise it stays first in line, and the next try backs off: 100 ms doubling up to 10 s.
      this.chunks.unshift(chunk);
      this.rows += chunk.rows;
    }
  }

  private next(): void {
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

  /** Writes spooled files, oldest first: up to ten a look while no calls wait in memory, one
   * while some do (live calls go first, and the spool still drains under load). */
  private replay(): void {
    const spool = this.opts.spool;
    if (!spool || this.writing || this.closed) return;
    const busy = this.rows > 0;
    this.writing = (async () => {
      for (let n = 0; n < (busy ? 1 : 10) && !this.closed; n++) {
        if (n > 0 && this.rows > 0) return;
        let taken: Awaited<ReturnType<typeof spool.take>>;
        try {
          taken = await spool.take();
        } catch (err) {
          // The directory cannot be read: reported, and tried again at the next look.
          this.opts.onError?.(err, this.rows);
          return;
        }
        if (!taken) return;
        try {
          await this.opts.write(taken.chunk);
        } catch (err) {
          if (err instanceof ChunkPartlyWritten) {
            this.refused += err.rest.rows;
            await spool.replace(taken.name, err.rest as C);
          } else await spool.failed(taken.name);
          this.opts.onError?.(err, this.rows);
          return;
        }
        await spool.done(taken.name);
        this.failures = 0;
      }
    })().finally(() => {
      this.writing = null;
    });
    void this.writing.then(() => this.next());
  }

  /** Writes what is left (trying a few times), then stops; what could not be written is kept
   * in the spool for the next start (or lost, with none). */
  async close(): Promise<void> {
    if (this.replayTimer) clearInterval(this.replayTimer);
    if (this.timer) clearTimeout(this.timer);
    if (this.journalTimer) clearTimeout(this.journalTimer);
    if (this.inflightTimer) clearInterval(this.inflightTimer);
    this.inflightTimer = null;
    this.timer = null;
    const tries = 5 + this.chunks.length;
    for (let i = 0; this.rows > 0 && i < tries; i++) await this.flush();
    this.closed = true;
    while (this.writing) await this.writing;
    for (const chunk of this.chunks.splice(0)) {
      this.rows -= chunk.rows;
      if (!this.opts.spool || !(await this.keep(chunk))) this.dropped += chunk.rows;
    }
    while (this.background.size > 0) await Promise.all([...this.background]);
    // The gateway has drained: nothing is under way.
    if (this.inflightTracking) {
      while (this.inflightWrite) await this.inflightWrite;
      await this.opts.spool?.keepInflight(null).catch(() => undefined);
    }
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
