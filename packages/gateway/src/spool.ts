import { mkdirSync } from 'node:fs';
import { open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { SinkChunk } from './sink.js';

/** How a spool keeps one kind of chunk on disk. */
export interface SpoolCodec<C extends SinkChunk> {
  /** Names the encoding; a file of another format is left where it is, untouched. */
  readonly format: string;
  /** The chunk's encoded calls, as they would be written. */
  bytes(chunk: C): Buffer;
  /** The chunk again, from bytes() and its row count. */
  restore(bytes: Buffer, rows: number): C;
}

interface Entry {
  rows: number;
  tries: number;
  /** Not tried again before this time (ms). */
  retryAt: number;
}

const SUFFIX = '.calls';
const CLAIM = /^(.+\.calls)\.(\d+)\.claim$/;

/** Whether a process of this id is running (on this host). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Chunks of metered calls that could not be written, kept on disk until they can be: a write that
 * keeps failing, a buffer past its bound, or a shutdown while the store (or the server a replica
 * meters into) is down. Each chunk is one file, `<ms>-<pid>-<n>.calls`: a JSON header line
 * ({format, rows}) and the chunk's bytes. A file is written under a temporary name and renamed, so
 * a crash leaves no half file under a real name. A process that takes a file to write it renames it
 * to `<name>.<pid>.claim` first, so that two processes sharing the directory never both take it; a
 * claim whose process has died goes back into the spool when the directory is next read.
 */
export class ChunkSpool<C extends SinkChunk> {
  private readonly entries = new Map<string, Entry>();
  private seq = 0;
  private scannedAt = -Infinity;
  /** Calls in the spool's files, as far as this process knows. */
  rows = 0;

  constructor(
    readonly dir: string,
    private readonly codec: SpoolCodec<C>,
    private readonly now: () => number = Date.now,
    /** How often the directory is read again for files other processes left (ms). */
    private readonly rescanMs = 60_000,
  ) {
    mkdirSync(dir, { recursive: true });
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
        if (Number(claim[2]) !== process.pid && !alive(Number(claim[2]))) {
          await rename(join(this.dir, name), join(this.dir, claim[1]!)).catch(() => undefined);
          await this.learn(claim[1]!);
        }
      } else if (name.endsWith('.tmp')) {
        // A save that a crash cut short: its chunk was still in memory, so it was never counted
        // as kept, and the file holds nothing that is not elsewhere or lost with the process.
        const pid = Number(name.split('-')[1]);
        if (pid !== process.pid && !alive(pid)) await rm(join(this.dir, name), { force: true });
      } else if (name.endsWith(SUFFIX)) {
        await this.learn(name);
      }
    }
  }

  private async learn(name: string): Promise<void> {
    if (this.entries.has(name)) return;
    const header = await this.header(join(this.dir, name));
    if (!header || header.format !== this.codec.format) return;
    this.entries.set(name, { rows: header.rows, tries: 0, retryAt: 0 });
    this.rows += header.rows;
  }

  private async header(path: string): Promise<{ format: string; rows: number } | null> {
    try {
      const fh = await open(path, 'r');
      try {
        const buf = Buffer.alloc(512);
        const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
        const nl = buf.subarray(0, bytesRead).indexOf(10);
        if (nl < 0) return null;
        const h = JSON.parse(buf.subarray(0, nl).toString('utf8')) as { format?: unknown; rows?: unknown };
        return typeof h.format === 'string' && Number.isInteger(h.rows)
          ? { format: h.format, rows: h.rows as number }
          : null;
      } finally {
        await fh.close();
      }
    } catch {
      return null;
    }
  }

  /** Keeps a chunk on disk (synced before it counts as kept). */
  async save(chunk: C): Promise<void> {
    const name = `${this.now()}-${process.pid}-${String(++this.seq).padStart(6, '0')}${SUFFIX}`;
    const tmp = join(this.dir, `${name}.tmp`);
    const fh = await open(tmp, 'w');
    try {
      await fh.write(`${JSON.stringify({ format: this.codec.format, rows: chunk.rows })}\n`);
      await fh.write(this.codec.bytes(chunk));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, join(this.dir, name));
    this.entries.set(name, { rows: chunk.rows, tries: 0, retryAt: 0 });
    this.rows += chunk.rows;
  }

  /** The oldest file that is due, claimed by this process and read back, or null. */
  async take(): Promise<{ name: string; chunk: C } | null> {
    if (this.entries.size === 0 && this.now() - this.scannedAt >= this.rescanMs) await this.scan();
    const now = this.now();
    for (const [name, e] of this.entries) {
      if (e.retryAt > now) continue;
      const claimed = join(this.dir, `${name}.${process.pid}.claim`);
      try {
        await rename(join(this.dir, name), claimed);
      } catch {
        // Another process took it (or it was removed by hand).
        this.forget(name);
        continue;
      }
      try {
        const bytes = await readFile(claimed);
        const nl = bytes.indexOf(10);
        return { name, chunk: this.codec.restore(bytes.subarray(nl + 1), e.rows) };
      } catch {
        await rename(claimed, join(this.dir, name)).catch(() => undefined);
        e.retryAt = Infinity;
      }
    }
    return null;
  }

  /** The taken file's calls are written: it goes. */
  async done(name: string): Promise<void> {
    await rm(join(this.dir, `${name}.${process.pid}.claim`), { force: true });
    this.forget(name);
  }

  /** The taken file's write failed: it goes back, and is not tried again for a while (1 s
   * doubling to a minute), so that one file the store refuses does not hold up the others. */
  async failed(name: string): Promise<void> {
    await rename(join(this.dir, `${name}.${process.pid}.claim`), join(this.dir, name)).catch(() => undefined);
    const e = this.entries.get(name);
    if (!e) return;
    e.tries++;
    e.retryAt = this.now() + Math.min(60_000, 1000 * 2 ** (e.tries - 1));
  }

  private forget(name: string): void {
    const e = this.entries.get(name);
    if (!e) return;
    this.entries.delete(name);
    this.rows -= e.rows;
  }
}
