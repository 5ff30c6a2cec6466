import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { TallyError } from '@tally/core';
import { checkpointThresholdFor, memoryLimitProblem } from '../memory-limit.js';
import { SerialLock } from './serial-lock.js';

/** Two DuckDB instances on one file in one process would each believe they own it (the file lock
 * is per process), so a second open of the same file is refused. */
const openFiles = new Set<string>();

/** DuckDB's errors for a state that only reopening the database clears: it has invalidated the
 * database, or the writer connection is stuck in a transaction its ROLLBACK did not end. Both
 * follow failures such as a commit that ran out of memory, and every later statement fails. */
export function needsReopening(err: unknown): boolean {
  const message = messageOf(err);
  return (
    message.includes('database has been invalidated') || message.includes('Current transaction is aborted')
  );
}

/** A primary-key violation, where the caller has ruled out a real duplicate. */
export function isDuplicateKey(err: unknown): boolean {
  return messageOf(err).includes('Duplicate key');
}

function messageOf(err: unknown): string {
  const message = (err as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message : '';
}

/** DuckDB's allocator (jemalloc, on Linux) keeps the pages that queries and writes free, and
 * hands them back to the system only when the buffer pool is asked for more than
 * `allocator_bulk_deallocation_flush_threshold` at once (512 MiB by default). Its other purge
 * (`allocator_flush_threshold`) runs on DuckDB's own worker threads, not on the threads the
 * Node bindings run statements on. A store that writes steadily then grows by a few hundred bytes
 * for each row written and never shrinks (bench/store-retention.mjs). Lowering the threshold to 0
 * for good purges at every buffer taken, which doubled the CPU a metered call costs the store;
 * lowering it for one statement purges once, for 10-40 ms. */
const BULK_FLUSH_SETTING = 'allocator_bulk_deallocation_flush_threshold';
const BULK_FLUSH_DEFAULT = '512MiB';
/** How long after the last release work may go before freed memory is released again. */
export const RELEASE_EVERY_MS = 5000;

interface Lane {
  conn: DuckDBConnection;
  lock: SerialLock;
}

/** One DuckDB database: a single writer connection, where every write is serialised, and a few
 * reader connections, which see the last committed state. */
export class DuckDbDatabase {
  private closing: Promise<void> | null = null;
  private nextReader = 0;

  /** Runs after the database was reopened (the old connections, and whatever was bound to
   * them, such as appenders, are gone). */
  onReopen: () => void = () => undefined;
  /** How many times the database was reopened to clear a failed state (see needsReopening). */
  reopened = 0;
  /** Set while the instance is closed for a reopen, and after a reopen that failed. */
  private needsReopen = false;
  /** How many times freed memory was handed back (see releaseFreedMemory). */
  released = 0;
  private lastRelease = 0;
  private releaseTimer: ReturnType<typeof setTimeout> | null = null;

  private constructor(
    readonly location: string,
    private instance: DuckDBInstance,
    private readonly writer: Lane,
    private readonly readers: Lane[],
    private readonly settings: Record<string, string>,
  ) {}

  /** `path` is ':memory:' or a file, whose folder is created when missing. */
  static async open(
    path: string,
    readerCount = 2,
    settings: Record<string, string> = {},
  ): Promise<DuckDbDatabase> {
    const limit = settings['memory_limit'];
    const problem = limit === undefined ? null : memoryLimitProblem(limit);
    if (problem !== null) {
      throw new TallyError(
        'config_invalid',
        `The store's memory limit ${problem}, such as '256MB'; got '${limit}'.`,
      );
    }
    const location = path === ':memory:' ? path : resolve(path);
    const file = location !== ':memory:';
    if (file) {
      if (openFiles.has(location)) {
        throw new TallyError(
          'store_unavailable',
          `The database ${location} is already open in this process.`,
        );
      }
      openFiles.add(location);
    }
    try {
      if (file) mkdirSync(dirname(location), { recursive: true, mode: 0o700 });
      const all = { checkpoint_threshold: checkpointThresholdFor(settings['memory_limit']), ...settings };
      const instance = await DuckDBInstance.create(location, all);
      const lane = async (): Promise<Lane> => ({ conn: await instance.connect(), lock: new SerialLock() });
      const writer = await lane();
      const readers: Lane[] = [];
      for (let i = 0; i < readerCount; i++) readers.push(await lane());
      return new DuckDbDatabase(location, instance, writer, readers, all);
    } catch (err) {
      openFiles.delete(location);
      throw new TallyError(
        'store_unavailable',
        `Could not open the DuckDB database ${location}: ${(err as Error).message}`,
      );
    }
  }

  /** Runs a task on the writer connection, after every write asked for before it. */
  async write<T>(task: (conn: DuckDBConnection) => Promise<T>): Promise<T> {
    this.assertOpen();
    return this.writeAccepted(task);
  }

  /** Like write, also while closing: for work accepted before close() that continues later. */
  writeAccepted<T>(task: (conn: DuckDBConnection) => Promise<T>): Promise<T> {
    this.releaseLater();
    return this.writer.lock.run(async () => {
      if (this.needsReopen) await this.reopen();
      try {
        return await task(this.writer.conn);
      } catch (err) {
        // What was committed is in the file and its log: reopening gets it back, and the failed
        // write, which never committed, is the caller's to retry.
        if (needsReopening(err) && this.canReopen()) await this.reopen();
        throw err;
      }
    });
  }

  /**
   * Reopens the database after the writes queued before this call, for a caller that has seen a
   * state only reopening clears: a primary-key violation on rows it had filtered against the table
   * means a failed commit left its ids in the index. (An in-memory database cannot be reopened.)
   */
  async recover(): Promise<void> {
    if (!this.canReopen()) return;
    await this.writer.lock.run(() => this.reopen());
  }

  private canReopen(): boolean {
    return this.location !== ':memory:' && this.closing === null;
  }

  /** Closes and reopens the instance, inside the writer's lock and holding every reader's. */
  private async reopen(): Promise<void> {
    const releases = await Promise.all(
      this.readers.map(
        (l) =>
          new Promise<() => void>((acquired) => {
            void l.lock.run(() => new Promise<void>((release) => acquired(release)));
          }),
      ),
    );
    this.needsReopen = true;
    try {
      for (const l of [this.writer, ...this.readers]) {
        try {
          l.conn.closeSync();
        } catch {
          // An invalidated connection may refuse even to close; the instance goes with it.
        }
      }
      try {
        this.instance.closeSync();
      } catch {
        // As above.
      }
      this.instance = await DuckDBInstance.create(this.location, this.settings);
      for (const l of [this.writer, ...this.readers]) l.conn = await this.instance.connect();
      this.needsReopen = false;
      this.reopened++;
      this.onReopen();
    } finally {
      for (const release of releases) release();
    }
  }

  /** Runs a read on one of the reader connections (each runs one statement at a time). */
  async read<T>(task: (conn: DuckDBConnection) => Promise<T>): Promise<T> {
    this.assertOpen();
    // After a reopen that failed, the connections are closed: the next reader tries again.
    if (this.needsReopen) {
      await this.writer.lock.run(async () => {
        if (this.needsReopen) await this.reopen();
      });
    }
    const lane = this.readers[this.nextReader++ % this.readers.length] ?? this.writer;
    this.releaseLater();
    return lane.lock.run(() => task(lane.conn));
  }

  /** After work, and at most every RELEASE_EVERY_MS, hands freed memory back to the system. The
   * timer does not keep the process alive. */
  private releaseLater(): void {
    if (this.releaseTimer !== null || this.closing !== null) return;
    const wait = Math.max(0, this.lastRelease + RELEASE_EVERY_MS - Date.now());
    this.releaseTimer = setTimeout(() => {
      this.releaseTimer = null;
      // A release that fails is harmless: the memory stays held until the next one.
      this.releaseFreedMemory().catch(() => undefined);
    }, wait);
    this.releaseTimer.unref();
  }

  /**
   * Hands back to the system the memory DuckDB's allocator holds freed (see BULK_FLUSH_SETTING),
   * after the writes queued before it. Lowering the threshold purges the allocator's arenas at
   * once; it is set back in the same lock, so no write runs with it lowered.
   */
  async releaseFreedMemory(): Promise<void> {
    if (this.closing !== null) return;
    await this.writer.lock.run(async () => {
      if (this.needsReopen || this.closing !== null) return;
      this.lastRelease = Date.now();
      const conn = this.writer.conn;
      await conn.run(`SET ${BULK_FLUSH_SETTING} = '0MB'`);
      try {
        await conn.run('SELECT 1');
      } finally {
        await conn.run(`SET ${BULK_FLUSH_SETTING} = '${BULK_FLUSH_DEFAULT}'`);
      }
      this.released++;
    });
  }

  assertOpen(): void {
    if (this.closing !== null) throw new TallyError('store_unavailable', 'The store is closed.');
  }

  /** Refuses new work, lets the work already asked for finish (`beforeClose` runs last on the
   * writer), then closes the connections and the database, which checkpoints the file. */
  close(beforeClose: (writer: DuckDBConnection) => void): Promise<void> {
    this.closing ??= this.shutDown(beforeClose);
    return this.closing;
  }

  private async shutDown(beforeClose: (writer: DuckDBConnection) => void): Promise<void> {
    if (this.releaseTimer !== null) clearTimeout(this.releaseTimer);
    this.releaseTimer = null;
    await Promise.resolve();
    const lanes = [this.writer, ...this.readers];
    await Promise.all(lanes.map((l) => l.lock.idle()));
    await this.writer.lock.run(async () => beforeClose(this.writer.conn));
    for (const l of lanes) l.conn.closeSync();
    this.instance.closeSync();
    openFiles.delete(this.location);
  }
}
