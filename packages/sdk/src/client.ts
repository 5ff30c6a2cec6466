import { type Arm, type AssignmentConfig, assignArm } from './assign.js';

/** A task event in the wire format of POST /v1/events; id and time are filled in when absent. */
export type TaskEvent = {
  id?: string;
  time?: string;
  use_case: string;
  task_id: string;
  user?: string;
  team?: string;
} & (
  | { type: 'task.eligible'; arm: Arm; covariate?: number }
  | { type: 'task.ai_used'; call_ids?: string[] }
  | {
      type: 'task.completed';
      outcome: 'success' | 'failure' | 'abandoned';
      handling_seconds?: number;
      value_usd?: string;
    }
  | { type: 'task.human'; kind: 'review' | 'edit' | 'override' | 'escalation'; seconds: number }
  | { type: 'task.quality'; pass?: boolean; score?: number; reviewer?: string }
  | { type: 'task.opt_out'; reason?: string }
);

type Sent = Required<Pick<TaskEvent, 'id' | 'time'>> & TaskEvent;

export interface TallyOptions {
  /** The Tally server, e.g. http://localhost:4000. */
  url: string;
  /** An admin or project (member) key. */
  apiKey: string;
  /** Events a request; at most 1,000. */
  batchSize?: number;
  /** A partial batch is sent after this long. */
  flushIntervalMs?: number;
  /** Events kept while the server cannot be reached; past this the oldest are dropped (counted). */
  maxBuffer?: number;
  /** Backoff between failed sends: doubles from this, with jitter, up to maxBackoffMs. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** How long an assignment config read from the server is used before it is read again. */
  configTtlMs?: number;
  /** Flush when a Node process is about to exit (default true where `process` exists). */
  flushOnExit?: boolean;
  fetch?: typeof fetch;
  onError?: (err: TallyError) => void;
  /** Injected for exact tests. */
  now?: () => number;
  random?: () => number;
}

export interface SendStats {
  sent: number;
  duplicates: number;
  rejected: number;
  dropped: number;
  pending: number;
}

export class TallyError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number | null = null,
  ) {
    super(message);
    this.name = 'TallyError';
  }
}

/**
 * The Tally client: task events, batched and retried; holdout assignment, locally once the use
 * case's config is known. It needs only fetch, so it runs in Node, browsers and edge runtimes.
 */
export class Tally {
  private readonly o: Required<Omit<TallyOptions, 'onError'>> & Pick<TallyOptions, 'onError'>;
  private queue: Sent[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private sending: Promise<void> | null = null;
  private failures = 0;
  private closed = false;
  private readonly configs = new Map<string, { config: AssignmentConfig; at: number }>();
  readonly stats: SendStats = { sent: 0, duplicates: 0, rejected: 0, dropped: 0, pending: 0 };

  constructor(options: TallyOptions) {
    const fetchFn = options.fetch ?? globalThis.fetch;
    if (typeof fetchFn !== 'function')
      throw new TallyError('no_fetch', 'This runtime has no fetch; pass options.fetch.');
    this.o = {
      batchSize: 100,
      flushIntervalMs: 1000,
      maxBuffer: 10_000,
      backoffMs: 500,
      maxBackoffMs: 30_000,
      configTtlMs: 60_000,
      flushOnExit: true,
      now: () => Date.now(),
      random: Math.random,
      ...options,
      url: options.url.replace(/\/+$/, ''),
      fetch: fetchFn,
    };
    this.o.batchSize = Math.min(1000, Math.max(1, this.o.batchSize));
    const proc = (globalThis as { process?: { once?: (e: string, f: () => void) => void } }).process;
    if (this.o.flushOnExit && typeof proc?.once === 'function') {
      // Once: a server that stays down must not keep a finished process alive.
      proc.once('beforeExit', () => void this.close());
    }
  }

  /** Queues an event; returns its id. */
  track(event: TaskEvent): string {
    if (this.closed) throw new TallyError('closed', 'This client is closed.');
    const sent = {
      ...event,
      id: event.id ?? crypto.randomUUID(),
      time: event.time ?? new Date(this.o.now()).toISOString(),
    } as Sent;
    this.queue.push(sent);
    if (this.queue.length > this.o.maxBuffer) {
      const over = this.queue.length - this.o.maxBuffer;
      this.queue.splice(0, over);
      this.stats.dropped += over;
      this.o.onError?.(
        new TallyError('buffer_full', `Dropped the ${over} oldest events: the buffer is full.`),
      );
    }
    this.stats.pending = this.queue.length;
    this.schedule(this.queue.length >= this.o.batchSize ? 0 : this.o.flushIntervalMs);
    return sent.id;
  }

  /** The arm of a unit, computed here from the use case's salt and holdout share (read from the
   * server once, then kept for configTtlMs). */
  async assign(useCase: string, unitId: string): Promise<Arm> {
    return assignArm(await this.config(useCase), unitId);
  }

  /** Assigns a task and records it as eligible, with its arm: the usual first call for a task. */
  async eligible(
    useCase: string,
    taskId: string,
    extra: { user?: string; team?: string; covariate?: number; unitId?: string } = {},
  ): Promise<Arm> {
    const arm = await this.assign(useCase, extra.unitId ?? taskId);
    const { unitId: _unit, ...rest } = extra;
    this.track({ type: 'task.eligible', use_case: useCase, task_id: taskId, arm, ...rest });
    return arm;
  }

  private async config(useCase: string): Promise<AssignmentConfig> {
    const hit = this.configs.get(useCase);
    if (hit && this.o.now() - hit.at < this.o.configTtlMs) return hit.config;
    const res = await this.request('GET', `/v1/use-cases/${encodeURIComponent(useCase)}`);
    const body = (await res.json()) as { holdout?: { salt: string; share: number } };
    if (!body.holdout) throw new TallyError('invalid_response', `The server sent no holdout for ${useCase}.`);
    const config = { salt: body.holdout.salt, holdout_share: body.holdout.share };
    this.configs.set(useCase, { config, at: this.o.now() });
    return config;
  }

  private async request(method: string, path: string, body?: unknown): Promise<Response> {
    const res = await this.o.fetch(`${this.o.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.o.apiKey}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (!res.ok) {
      let detail = '';
      try {
        const j = (await res.json()) as { error?: { code?: string; message?: string } };
        detail = j.error?.message ?? '';
        throw new TallyError(
          j.error?.code ?? `http_${res.status}`,
          `${method} ${path}: ${res.status} ${detail}`,
          res.status,
        );
      } catch (err) {
        if (err instanceof TallyError) throw err;
        throw new TallyError(`http_${res.status}`, `${method} ${path}: ${res.status}`, res.status);
      }
    }
    return res;
  }

  private schedule(delay: number): void {
    if (this.sending || this.closed) return;
    if (this.timer) {
      if (delay > 0) return;
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, delay);
    (this.timer as { unref?: () => void }).unref?.();
  }

  /** Sends everything queued; resolves when sent, or when a send failed (the events stay queued). */
  async flush(): Promise<void> {
    while (this.sending) await this.sending;
    while (this.queue.length > 0) {
      const batch = this.queue.slice(0, this.o.batchSize);
      this.sending = this.send(batch).finally(() => {
        this.sending = null;
      });
      const ok = await this.sending.then(
        () => true,
        () => false,
      );
      if (!ok) break;
    }
    this.stats.pending = this.queue.length;
    if (this.queue.length > 0 && !this.closed) {
      const backoff = Math.min(this.o.maxBackoffMs, this.o.backoffMs * 2 ** (this.failures - 1));
      this.schedule(backoff * (0.5 + this.o.random() / 2));
    }
  }

  private async send(batch: Sent[]): Promise<void> {
    let res: Response;
    try {
      res = await this.request('POST', '/v1/events', { events: batch });
    } catch (err) {
      const e = err instanceof TallyError ? err : new TallyError('network', (err as Error).message);
      // A batch the server calls malformed will never be taken: drop it rather than retry forever.
      if (e.status === 400 || e.status === 413) {
        this.queue.splice(0, batch.length);
        this.stats.rejected += batch.length;
      } else this.failures++;
      this.o.onError?.(e);
      throw e;
    }
    const body = (await res.json()) as {
      accepted: number;
      duplicates: number;
      rejected: { index: number; code: string; message: string }[];
    };
    this.queue.splice(0, batch.length);
    this.failures = 0;
    this.stats.sent += body.accepted;
    this.stats.duplicates += body.duplicates;
    this.stats.rejected += body.rejected.length;
    for (const r of body.rejected) {
      this.o.onError?.(
        new TallyError(r.code, `Event ${batch[r.index]?.id ?? r.index} was rejected: ${r.message}`, 200),
      );
    }
  }

  /** Flushes (one more try for what is left) and stops. */
  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.flush();
    this.closed = true;
  }
}
