import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GatewayDeps, ProviderConfig, VirtualKey } from './types.js';
import type { Upstreams } from './upstream.js';
import { DEFAULT_MAX_RESPONSE_BYTES, parseObject, readWhole } from './upstream-answer.js';

/**
 * What a watch keeps on disk, so that what it watches outlives the process: each watch (a process's
 * background calls, its batches) keeps its own file in a directory, `<prefix>.<pid>.<instance>.json`,
 * rewritten whole as what it watches changes. A watch that starts takes over, by rename, the files
 * of the watches of its kind that have stopped or died; two that reach for one file get it once.
 */

/** The instances (`<pid>.<id>`) of the watches running in this process. */
const LIVE = new Set<string>();

/** Whether the watch whose file this is still runs: in a live process, or in this one. */
function running(pid: number, instance: string): boolean {
  if (pid === process.pid) return LIVE.has(`${pid}.${instance}`);
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** JSON with bigints (a hold's amounts) kept exact. */
const toJson = (v: unknown): string =>
  JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? { $n: x.toString() } : x));
const fromJson = (text: string): unknown =>
  JSON.parse(text, (_k, x) =>
    x !== null && typeof x === 'object' && typeof (x as { $n?: unknown }).$n === 'string'
      ? BigInt((x as { $n: string }).$n)
      : x,
  );

export class KeptFile<T> {
  private readonly instance = randomBytes(6).toString('hex');
  /** This watch's file; null without a directory (nothing is kept). */
  readonly file: string | null;
  private saving: Promise<void> | null = null;
  private dirty = false;

  /** `items` gives what is to be kept, read at each write; `what` names it in errors. */
  constructor(
    private readonly dir: string | undefined,
    private readonly prefix: string,
    private readonly what: string,
    private readonly items: () => T[],
    private readonly onError: (err: unknown, doing: string) => void,
  ) {
    LIVE.add(`${process.pid}.${this.instance}`);
    this.file = dir ? join(dir, `${prefix}.${process.pid}.${this.instance}.json`) : null;
  }

  /** Rewrites the file with what is to be kept (or removes it, with nothing). One write at a time;
   * changes meanwhile make one more. */
  save(): Promise<void> {
    if (!this.file) return Promise.resolve();
    this.dirty = true;
    this.saving ??= (async () => {
      while (this.dirty) {
        this.dirty = false;
        const items = this.items();
        try {
          mkdirSync(this.dir!, { recursive: true });
          if (items.length === 0) rmSync(this.file!, { force: true });
          else {
            writeFileSync(`${this.file}.tmp`, toJson(items));
            renameSync(`${this.file}.tmp`, this.file!);
          }
        } catch (err) {
          this.onError(err, `keeping ${this.what} on disk`);
        }
      }
    })().finally(() => {
      this.saving = null;
    });
    return this.saving;
  }

  /** Takes over the files of the watches of this kind that have stopped: `take` gets what each
   * kept (and should save it here), and the file is removed once it has. */
  async adopt(take: (items: T[]) => Promise<void>): Promise<void> {
    if (!this.dir) return;
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return;
    }
    const pattern = new RegExp(`^${this.prefix}\\.(\\d+)\\.([0-9a-f]+)\\.json$`);
    for (const name of names) {
      const m = pattern.exec(name);
      if (!m || running(Number(m[1]), m[2]!)) continue;
      const taken = join(this.dir, `adopting.${process.pid}.${this.instance}.${name}`);
      try {
        renameSync(join(this.dir, name), taken);
      } catch {
        continue;
      }
      try {
        await take(fromJson(readFileSync(taken, 'utf8')) as T[]);
        rmSync(taken, { force: true });
      } catch (err) {
        this.onError(err, `taking over ${this.what}`);
      }
    }
  }

  /** The watch has stopped: its file is for the next to take over. */
  close(): void {
    LIVE.delete(`${process.pid}.${this.instance}`);
  }
}

/** What a watch watches: one thing of a tenant's, asked after each `wait`. */
export interface Watching {
  id: string;
  key: VirtualKey;
  /** How long until it is asked for again. */
  wait: number;
  timer: NodeJS.Timeout | null;
  /** Metered (or being metered): nothing more is done for it. */
  done: boolean;
}

/**
 * A watch over things that run on at a provider (background responses, batches): each is asked for
 * after its wait, and then half as long again each time, up to `longestWaitMs`, until it has ended.
 * What it watches is kept on disk (a KeptFile), and it takes over what stopped watches kept.
 */
export abstract class KeptWatch<W extends Watching, K> {
  protected readonly watched = new Map<string, W>();
  /** The work under way (looks, meterings), for close() to wait for. */
  protected readonly busy = new Set<Promise<void>>();
  protected readonly kept: KeptFile<K>;
  protected closed = false;
  /** Resolves once what the stopped watches kept is being watched here. */
  readonly ready: Promise<void>;

  constructor(
    dir: string | undefined,
    prefix: string,
    what: string,
    onError: (err: unknown, doing: string) => void,
    private readonly longestWaitMs: number,
  ) {
    this.kept = new KeptFile(dir, prefix, what, () => this.keptItems(), onError);
    // Once the subclass is whole: what is taken over is watched at once.
    this.ready = Promise.resolve().then(() => this.kept.adopt((items) => this.adopt(items)));
  }

  /** What is to be kept on disk now. */
  protected abstract keptItems(): K[];
  /** Watches here what a stopped watch kept (and saves it). */
  protected abstract adopt(items: K[]): Promise<void>;
  /** Asks for one: meters it if it has ended, else schedules it again. */
  protected abstract look(w: W): Promise<void>;

  private static keyOf(tenant: string, id: string): string {
    return `${tenant}\n${id}`;
  }

  /** How many are being watched. */
  get size(): number {
    return this.watched.size;
  }

  /** Whether a tenant's is being watched. */
  has(tenant: string, id: string): boolean {
    return this.watched.has(KeptWatch.keyOf(tenant, id));
  }

  protected get(tenant: string, id: string): W | undefined {
    return this.watched.get(KeptWatch.keyOf(tenant, id));
  }

  /** Starts watching `w`: first asked for after its wait. */
  protected add(w: W): void {
    this.watched.set(KeptWatch.keyOf(w.key.tenant, w.id), w);
    this.schedule(w);
  }

  protected remove(w: W): void {
    this.watched.delete(KeptWatch.keyOf(w.key.tenant, w.id));
  }

  protected track(p: Promise<void>): void {
    this.busy.add(p);
    void p.finally(() => this.busy.delete(p));
  }

  protected schedule(w: W): void {
    if (this.closed) return;
    w.timer = setTimeout(() => this.track(this.look(w)), w.wait);
    // A process with only this left to do may exit: what is kept is taken over by the next.
    w.timer.unref();
    w.wait = Math.min(this.longestWaitMs, Math.round(w.wait * 1.5));
  }

  /** Stops asking: no look is scheduled from now on, and those under way are waited for. */
  protected async stop(): Promise<void> {
    this.closed = true;
    for (const w of this.watched.values()) if (w.timer) clearTimeout(w.timer);
    while (this.busy.size > 0) await Promise.allSettled([...this.busy]);
  }
}

/**
 * Asks a provider for one thing it keeps (`GET <path>/<id>`, a response or a batch): its status and
 * its body as a JSON object (null for none); or null, reported as `doing`, when the provider is not
 * configured (any more, or not yet read after a start) or could not be reached: then it is asked
 * again later.
 */
export async function lookUp(
  env: { deps: GatewayDeps; upstreams: Upstreams },
  provider: ProviderConfig | undefined,
  providerId: string,
  store: (p: ProviderConfig) => { origin: string; path: string; headers: Record<string, string> },
  id: string,
  doing: string,
): Promise<{ status: number; json: Record<string, unknown> | null } | null> {
  if (!provider) {
    env.deps.onError?.(new Error(`provider ${providerId} is not configured`), doing);
    return null;
  }
  const target = store(provider);
  const { 'content-type': _bodyless, ...headers } = target.headers;
  try {
    const up = await env.upstreams.request(target.origin, {
      path: `${target.path}/${id}`,
      method: 'GET',
      headers,
      timeoutMs: Math.min(provider.timeout_ms ?? env.deps.config.timeout_ms, 60_000),
    });
    const read = await readWhole(up, env.deps.config.max_response_bytes ?? DEFAULT_MAX_RESPONSE_BYTES);
    return { status: up.statusCode, json: read.buf ? parseObject(read.buf.toString('utf8')) : null };
  } catch (err) {
    env.deps.onError?.(err, doing);
    return null;
  }
}
