import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { type FileHandle, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { backoffMs } from './backoff.js';
import type { SinkChunk } from './sink.js';

/** How a spool keeps one kind of chunk on disk. */
export interface SpoolCodec<C extends SinkChunk> {
  /** Names the encoding; a file of another format (not one of `earlier`) is left where it is,
   * untouched. */
  readonly format: string;
  /** The chunk's encoded calls so far. As calls are added these only grow at the end, so a file
   * can mirror them by appending what is new. */
  bytes(chunk: C): Buffer;
  /** The chunk again, from bytes(): whole calls only, a call cut off at the end (by a crash in
   * the middle of a write) left out. */
  restore(bytes: Buffer): C;
  /** Formats this spool wrote before, by name: how a file of each becomes a chunk. */
  readonly earlier?: Readonly<Record<string, (bytes: Buffer) => C>>;
}

/**
 * A chunk being filled, mirrored to a file of the spool that this process holds (a claim): if the
 * process dies, the calls it had metered are on disk, and the next process to read the spool
 * writes them. The sink appends what is new every few milliseconds, off the request path.
 */
export class ChunkJournal {
  private fh: FileHandle | null = null;
  private written = 0;
  private chain: Promise<void>;
  /** The file could not be made or written: the chunk is only in memory. */
  failed = false;
  /** The file's size once what was asked is written, as the spool counts it against its bound. */
  size = 0;

  constructor(
    readonly name: string,
    readonly path: string,
    header: string,
  ) {
    this.chain = open(path, 'w')
      .then(async (fh) => {
        this.fh = fh;
        await fh.write(header);
      })
      .catch(() => {
        this.failed = true;
      });
  }

  /** Appends what `bytes` holds past what the file has. */
  sync(bytes: Buffer): Promise<void> {
    this.chain = this.chain
      .then(async () => {
        const fh = this.fh;
        if (!fh || this.failed) return;
        while (this.written < bytes.length) {
          const { bytesWritten } = await fh.write(bytes, this.written, bytes.length - this.written);
          this.written += bytesWritten;
        }
      })
      .catch(() => {
        this.failed = true;
      });
    return this.chain;
  }

  /** Resolves once what was asked is written (or has failed). */
  settled(): Promise<void> {
    return this.chain;
  }

  /** Closes the file once what was asked is written. */
  close(): Promise<void> {
    this.chain = this.chain.then(async () => {
      const fh = this.fh;
      this.fh = null;
      await fh?.close().catch(() => undefined);
    });
    return this.chain;
  }
}

interface Entry {
  rows: number;
  /** The file's size. */
  bytes: number;
  tries: number;
  /** Not tried again before this time (ms). */
  retryAt: number;
}

const SUFFIX = '.calls';
const CLAIM = /^(.+\.calls)\.(\d+)\.([0-9a-f]+)\.claim$/;
/** This process among those that had its pid before it: a container's process is often pid 1 on
 * every start, and the claims of the one that crashed must not look like its own. */
const INSTANCE = randomBytes(6).toString('hex');
/** What this process's claims end with. */
const MINE = `.${process.pid}.${INSTANCE}.claim`;

/** Whether a file named for process `pid`, or by a claim of it, may still be that process's. */
function heldBy(pid: number, name: string): boolean {
  if (pid === process.pid) return name.includes(`.${INSTANCE}.`);
  return alive(pid);
}

/** Whether a process of this id is running (on this host). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface SpoolOptions {
  /** The clock (ms), for tests. */
  now?: () => number;
  /** How often the directory is read again for files other processes left (ms); 60 s. */
  rescanMs?: number;
  /** The most the spool's files may hold. Past it, a chunk does not join the spool: the sink
   * keeps it in memory (up to its own bound) and tries the store again. Unbounded by default. */
  maxBytes?: number;
}

/**
 * Metered calls on disk until the store (or the server a replica meters into) has them. Each chunk
 * is one file, `<ms>-<pid>-<n>.calls`: a JSON header line ({format}) and the chunk's bytes.
 * - While a process holds a chunk (filling it, or writing it), its file is named
 *   `<name>.<pid>.<instance>.claim`: a journal of the chunk, or a spooled file taken to be written. Two
 *   processes sharing the directory never both take a file, and a claim whose process has died
 *   goes back into the spool when the directory is next read, so calls metered before a crash
 *   are written by the next process.
 * - A chunk that could not be written (a write that keeps failing, a buffer past its bound, a
 *   shutdown while the store is down) is released into the spool under its plain name.
 */
export class ChunkSpool<C extends SinkChunk> {
  private readonly entries = new Map<string, Entry>();
  private seq = 0;
  private scannedAt = -Infinity;
  /** Calls in the spool's files, as far as this process knows. */
  rows = 0;
  /** The size of those files. */
  bytes = 0;
  /** The size of the journals of chunks still in memory, which the bound also counts. */
  journaled = 0;

  private readonly now: () => number;
  private readonly rescanMs: number;
  readonly maxBytes: number;

  constructor(
    readonly dir: string,
    private readonly codec: SpoolCodec<C>,
    opts: SpoolOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.rescanMs = opts.rescanMs ?? 60_000;
    this.maxBytes = opts.maxBytes ?? Number.POSITIVE_INFINITY;
    // Calls waiting here name projects, users and costs: the folders made for them are the user's alone.
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  /** Refuses a file of `size` bytes that would take the spool past its bound (its files and the
   * journals of chunks still in memory). */
  private room(size: number): void {
    if (!this.fits(size)) {
      throw Object.assign(
        new Error(
          `The metering spool in ${this.dir} holds ${this.bytes} bytes, and its bound is ${this.maxBytes}: ` +
            'this chunk stays in memory until the store takes it.',
        ),
        { code: 'spool_full' },
      );
    }
  }

  /** Whether a file of `size` bytes fits under the bound, in place of `freed` bytes it replaces. */
  private fits(size: number, freed = 0): boolean {
    return this.bytes + this.journaled - freed + size <= this.maxBytes;
  }

  /** Files known and not yet written. */
  get files(): number {
    return this.entries.size;
  }

  /** Reads the directory: files this process does not know of yet, claims of dead processes. */
  async scan(): Promise<void> {
    this.scannedAt = this.now();
    const names = (await readdir(this.dir)).sort();
    for (const name of names) {
      const claim = CLAIM.exec(name);
      if (claim) {
        if (!heldBy(Number(claim[2]), name)) {
          await rename(join(this.dir, name), join(this.dir, claim[1]!)).catch(() => undefined);
          await this.learn(claim[1]!);
        }
      } else if (name.endsWith('.tmp')) {
        // A save that a crash cut short: its chunk was still in memory, so it was never counted
        // as kept, and the file holds nothing that is not elsewhere or lost with the process.
        const pid = Number(name.split('-')[1]);
        if (!heldBy(pid, name)) await rm(join(this.dir, name), { force: true });
      } else if (name.endsWith(SUFFIX)) {
        await this.learn(name);
      }
    }
  }

  private async learn(name: string): Promise<void> {
    if (this.entries.has(name)) return;
    const path = join(this.dir, name);
    const read = await this.read(path);
    if (!read) return;
    // A journal that a crash cut off before its first call holds nothing.
    if (read.chunk.rows === 0) return void (await rm(path, { force: true }));
    this.entries.set(name, { rows: read.chunk.rows, bytes: read.size, tries: 0, retryAt: 0 });
    this.rows += read.chunk.rows;
    this.bytes += read.size;
  }

  /** A file's chunk, or null if it is not one of this spool's format (or cannot be read). */
  private async read(path: string): Promise<{ chunk: C; size: number } | null> {
    try {
      const bytes = await readFile(path);
      const nl = bytes.indexOf(10);
      if (nl < 0) return null;
      const h = JSON.parse(bytes.subarray(0, nl).toString('utf8')) as { format?: unknown };
      const body = bytes.subarray(nl + 1);
      if (h.format === this.codec.format) return { chunk: this.codec.restore(body), size: bytes.length };
      const earlier = typeof h.format === 'string' ? this.codec.earlier?.[h.format] : undefined;
      return earlier ? { chunk: earlier(body), size: bytes.length } : null;
    } catch {
      return null;
    }
  }

  /** The size of a file holding these bytes under the header. */
  private fileSize(bytes: Buffer): number {
    return Buffer.byteLength(this.header()) + bytes.length;
  }

  private header(): string {
    return `${JSON.stringify({ format: this.codec.format })}\n`;
  }

  private newName(): string {
    return `${this.now()}-${process.pid}-${String(++this.seq).padStart(6, '0')}${SUFFIX}`;
  }

  /** A journal for a new chunk, under a claim of this process. */
  private journal(): ChunkJournal {
    const name = this.newName();
    return new ChunkJournal(name, join(this.dir, `${name}${MINE}`), this.header());
  }

  /** The file of this process's calls under way: named to sort after its chunks' files, so that
   * after a crash it is written last. */
  private get inflightPath(): string {
    return join(this.dir, `~inflight-${process.pid}-${INSTANCE}${SUFFIX}${MINE}`);
  }

  /** Replaces the file of the calls under way with this chunk (none: removes it). */
  async keepInflight(chunk: C | null): Promise<void> {
    if (!chunk || chunk.rows === 0) return void (await rm(this.inflightPath, { force: true }));
    const tmp = `${this.inflightPath}.tmp`;
    const fh = await open(tmp, 'w');
    try {
      await fh.write(this.header());
      await fh.write(this.codec.bytes(chunk));
    } finally {
      await fh.close();
    }
    await rename(tmp, this.inflightPath);
  }

  /** Mirrors a chunk to its journal, starting one for a chunk that has none (`j` null): returns
   * the journal, or null when the spool's bound leaves no room for it. The chunk is then only in
   * memory, as a chunk past the bound is (a journal it had is removed), until a later call finds
   * room. */
  mirror(j: ChunkJournal | null, chunk: C): ChunkJournal | null {
    const bytes = this.codec.bytes(chunk);
    const size = this.fileSize(bytes);
    if (!this.fits(size, j?.size ?? 0)) {
      if (j) void this.discard(j);
      return null;
    }
    j ??= this.journal();
    this.journaled += size - j.size;
    j.size = size;
    void j.sync(bytes);
    return j;
  }

  /** The journal's chunk is written (or is no longer mirrored): its file goes. */
  async discard(j: ChunkJournal): Promise<void> {
    this.journaled -= j.size;
    j.size = 0;
    await j.close();
    await rm(j.path, { force: true });
  }

  /** The journal's chunk could not be written: it joins the spool, written whole first. False if
   * its file failed; the caller then keeps the chunk another way. */
  async release(j: ChunkJournal, chunk: C): Promise<boolean> {
    const bytes = this.codec.bytes(chunk);
    const size = this.fileSize(bytes);
    if (!this.fits(size, j.size)) {
      // The spool is full: the chunk stays in memory, and its journal goes with the disk it takes.
      await this.discard(j);
      this.room(size);
    }
    this.journaled -= j.size;
    j.size = 0;
    await j.sync(bytes);
    await j.close();
    if (j.failed) return false;
    try {
      await rename(j.path, join(this.dir, j.name));
    } catch {
      return false;
    }
    this.entries.set(j.name, { rows: chunk.rows, bytes: size, tries: 0, retryAt: 0 });
    this.rows += chunk.rows;
    this.bytes += size;
    return true;
  }

  /** Keeps a chunk on disk (synced before it counts as kept): for a chunk with no journal.
   * Resolves with the file's name. */
  async save(chunk: C): Promise<string> {
    const bytes = this.codec.bytes(chunk);
    const size = this.fileSize(bytes);
    this.room(size);
    const name = this.newName();
    const tmp = join(this.dir, `${name}.${INSTANCE}.tmp`);
    const fh = await open(tmp, 'w');
    try {
      await fh.write(this.header());
      await fh.write(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, join(this.dir, name));
    this.entries.set(name, { rows: chunk.rows, bytes: size, tries: 0, retryAt: 0 });
    this.rows += chunk.rows;
    this.bytes += size;
    return name;
  }

  /** The oldest file that is due, claimed by this process and read back, or null. */
  async take(): Promise<{ name: string; chunk: C } | null> {
    if (this.entries.size === 0 && this.now() - this.scannedAt >= this.rescanMs) await this.scan();
    const now = this.now();
    for (const [name, e] of this.entries) {
      if (e.retryAt > now) continue;
      const claimed = join(this.dir, `${name}${MINE}`);
      try {
        await rename(join(this.dir, name), claimed);
      } catch {
        // Another process took it (or it was removed by hand).
        this.forget(name);
        continue;
      }
      const read = await this.read(claimed);
      if (read) return { name, chunk: read.chunk };
      await rename(claimed, join(this.dir, name)).catch(() => undefined);
      e.retryAt = Infinity;
    }
    return null;
  }

  /** The taken file's calls are written: it goes. */
  async done(name: string): Promise<void> {
    await rm(join(this.dir, `${name}${MINE}`), { force: true });
    this.forget(name);
  }

  /** The store took part of the taken file's calls: `rest`, the calls it refused, replaces the
   * file (kept before the file goes), and waits as after failed(). */
  async replace(name: string, rest: C): Promise<void> {
    const tries = (this.entries.get(name)?.tries ?? 0) + 1;
    const kept = rest.rows > 0 ? await this.save(rest) : null;
    await this.done(name);
    const e = kept === null ? undefined : this.entries.get(kept);
    if (e) {
      e.tries = tries;
      e.retryAt = this.now() + backoffMs(tries);
    }
  }

  /** The taken file's write failed: it goes back, and is not tried again for a while (1 s
   * doubling to a minute), so that one file the store refuses does not hold up the others. */
  async failed(name: string): Promise<void> {
    await rename(join(this.dir, `${name}${MINE}`), join(this.dir, name)).catch(() => undefined);
    const e = this.entries.get(name);
    if (!e) return;
    e.tries++;
    e.retryAt = this.now() + backoffMs(e.tries);
  }

  private forget(name: string): void {
    const e = this.entries.get(name);
    if (!e) return;
    this.entries.delete(name);
    this.rows -= e.rows;
    this.bytes -= e.bytes;
  }
}
