import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { TallyError } from '@tally/core';
import { checkpointThresholdFor, MIN_MEMORY_LIMIT_BYTES, parseSize } from '../memory-limit.js';
import { SerialLock } from './serial-lock.js';

/** Two DuckDB instances on one file in one process would each believe they own it (the file lock
 * is per process), so a second open of the same file is refused. */
const openFiles = new Set<string>();

interface Lane {
  conn: DuckDBConnection;
  lock: SerialLock;
}

/** One DuckDB database: a single writer connection, where every write is serialised, and a few
 * reader connections, which see the last committed state. */
export class DuckDbDatabase {
  private closing: Promise<void> | null = null;
  private nextReader = 0;

  private constructor(
    readonly location: string,
    private readonly instance: DuckDBInstance,
    private readonly writer: Lane,
    private readonly readers: Lane[],
  ) {}

  /** `path` is ':memory:' or a file, whose folder is created when missing. */
  static async open(
    path: string,
    readerCount = 2,
    settings: Record<string, string> = {},
  ): Promise<DuckDbDatabase> {
    const limit = settings['memory_limit'];
    if (limit !== undefined) {
      const bytes = parseSize(limit);
      if (bytes === null || bytes < MIN_MEMORY_LIMIT_BYTES) {
        throw new TallyError(
          'config_invalid',
          `The store's memory limit must be a size of at least 64MB, such as '256MB'; got '${limit}'.`,
        );
      }
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
      if (file) mkdirSync(dirname(location), { recursive: true });
      const instance = await DuckDBInstance.create(location, {
        checkpoint_threshold: checkpointThresholdFor(settings['memory_limit']),
        ...settings,
      });
      const lane = async (): Promise<Lane> => ({ conn: await instance.connect(), lock: new SerialLock() });
      const writer = await lane();
      const readers: Lane[] = [];
      for (let i = 0; i < readerCount; i++) readers.push(await lane());
      return new DuckDbDatabase(location, instance, writer, readers);
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
    return this.writer.lock.run(() => task(this.writer.conn));
  }

  /** Like write, also while closing: for work accepted before close() that continues later. */
  writeAccepted<T>(task: (conn: DuckDBConnection) => Promise<T>): Promise<T> {
    return this.writer.lock.run(() => task(this.writer.conn));
  }

  /** Runs a read on one of the reader connections (each runs one statement at a time). */
  async read<T>(task: (conn: DuckDBConnection) => Promise<T>): Promise<T> {
    this.assertOpen();
    const lane = this.readers[this.nextReader++ % this.readers.length] ?? this.writer;
    return lane.lock.run(() => task(lane.conn));
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
    await Promise.resolve();
    const lanes = [this.writer, ...this.readers];
    await Promise.all(lanes.map((l) => l.lock.idle()));
    await this.writer.lock.run(async () => beforeClose(this.writer.conn));
    for (const l of lanes) l.conn.closeSync();
    this.instance.closeSync();
    openFiles.delete(this.location);
  }
}
