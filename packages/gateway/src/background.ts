import { hostedToolCalls } from './answer-meta.js';
import type { Hold } from './budget-guard.js';
import { containersOf } from './containers.js';
import type { AttemptContext, AttemptOutcome } from './meter.js';
import { upstreamFor } from './providers.js';
import type { Accumulated, ContainerSessions } from './relay.js';
import { estimatePromptTokens } from './tokenizer.js';
import type { GatewayDeps, ProviderConfig, VirtualKey } from './types.js';
import type { Upstreams } from './upstream.js';
import { parseObject, readWhole } from './upstream-answer.js';

type Obj = Record<string, unknown>;

/**
 * Background Responses calls (`background: true`). The upstream answers at once, queued and
 * without usage, and runs the response on its own; its usage comes only with the response once it
 * has ended. So the gateway watches each one it passed on: it asks the provider for the response
 * (the first time after `background_poll_ms`, then half as long again each time, up to a minute)
 * until it has ended (completed, failed, cancelled or incomplete), meters the call from it, and
 * settles the budgets its reservation held meanwhile. A follow-up of the client's that sees it
 * ended meters it at once. Until then the call is under way: a process that dies meters it as
 * cut off (`gateway_interrupted`, its prompt estimated), as it does any call under way, and so does
 * one that closes. One the provider no longer knows is metered as estimated too
 * (`background_lost`), and one that runs past `background_max_hours` (`background_unfinished`).
 */

/** The statuses a response ends in. */
const ENDED = new Set(['completed', 'failed', 'cancelled', 'incomplete']);

export const hasEnded = (response: Obj | null): boolean =>
  typeof response?.['status'] === 'string' && ENDED.has(response['status']);

/** The longest wait between two looks at a response. */
const LONGEST_WAIT_MS = 60_000;

export interface BackgroundCall {
  ctx: AttemptContext;
  body: Obj;
  provider: ProviderConfig;
  /** The response's id, as the provider gave it. */
  id: string;
  key: VirtualKey;
  /** When the request came (ms), and when its attempt went (performance.now()), for its latency. */
  time: number;
  a0: number;
  /** The budgets' reservation, settled once the call is metered. */
  hold: Hold | null;
}

/** What watching needs from the gateway. */
export interface BackgroundEnv {
  deps: GatewayDeps;
  upstreams: Upstreams;
  /** Meters an attempt (the call is no longer under way): its cost, or null unpriced. */
  record(ctx: AttemptContext, out: AttemptOutcome, acc: Accumulated): bigint | null;
  sessions: ContainerSessions;
  /** Settles the budgets a call held. */
  settle(key: VirtualKey, hold: Hold, spentNano: bigint, time: number): Promise<void>;
}

interface Watched extends BackgroundCall {
  wait: number;
  timer: NodeJS.Timeout | null;
  /** Metered (or being metered): nothing more is done for it. */
  done: boolean;
}

export class BackgroundCalls {
  private readonly watched = new Map<string, Watched>();
  private readonly busy = new Set<Promise<void>>();

  constructor(private readonly env: BackgroundEnv) {}

  private static idOf(tenant: string, id: string): string {
    return `${tenant}\n${id}`;
  }

  /** How many calls are being watched. */
  get size(): number {
    return this.watched.size;
  }

  /** Starts watching a call whose answer came queued or in progress. */
  watch(call: BackgroundCall): void {
    const w: Watched = {
      ...call,
      wait: this.env.deps.config.background_poll_ms ?? 1000,
      timer: null,
      done: false,
    };
    this.watched.set(BackgroundCalls.idOf(call.key.tenant, call.id), w);
    this.schedule(w);
  }

  /** Whether a tenant's response is being watched. */
  has(tenant: string, id: string): boolean {
    return this.watched.has(BackgroundCalls.idOf(tenant, id));
  }

  /** A follow-up's answer for a response: if it has ended, its call is metered from it now. */
  observe(tenant: string, id: string, response: Obj | null): void {
    const w = this.watched.get(BackgroundCalls.idOf(tenant, id));
    if (w && hasEnded(response)) this.track(this.finish(w, response, null));
  }

  private track(p: Promise<void>): void {
    this.busy.add(p);
    void p.finally(() => this.busy.delete(p));
  }

  private schedule(w: Watched): void {
    w.timer = setTimeout(() => this.track(this.look(w)), w.wait);
    // A process with only this left to do may exit: what is under way is metered then.
    w.timer.unref();
    w.wait = Math.min(LONGEST_WAIT_MS, Math.round(w.wait * 1.5));
  }

  /** Asks the provider for the response: metered if it has ended (or is lost), else asked again. */
  private async look(w: Watched): Promise<void> {
    w.timer = null;
    if (w.done) return;
    const maxMs = (this.env.deps.config.background_max_hours ?? 24) * 3_600_000;
    if (this.env.deps.clock.now() - w.time > maxMs) return this.finish(w, null, 'background_unfinished');
    const target = upstreamFor(w.provider, 'responses', '', {});
    const { 'content-type': _bodyless, ...headers } = target.headers;
    try {
      const up = await this.env.upstreams.request(target.origin, {
        path: `${target.path}/${w.id}`,
        method: 'GET',
        headers,
        timeoutMs: Math.min(w.provider.timeout_ms ?? this.env.deps.config.timeout_ms, 60_000),
      });
      const read = await readWhole(up, this.env.deps.config.max_response_bytes ?? 64 * 1024 * 1024);
      if (w.done) return;
      const response = read.buf && up.statusCode === 200 ? parseObject(read.buf.toString('utf8')) : null;
      if (hasEnded(response)) return this.finish(w, response, null);
      // Deleted before it ended, or forgotten: its usage will never come.
      if (up.statusCode === 404) return this.finish(w, null, 'background_lost');
    } catch (err) {
      // The provider out of reach: asked again later, as for an answer still in progress.
      this.env.deps.onError?.(err, 'watching a background response');
    }
    if (!w.done) this.schedule(w);
  }

  /** Meters the call, from its ended response or (with `lost`) as estimated, and settles its
   * budgets. Once. */
  private async finish(w: Watched, response: Obj | null, lost: string | null): Promise<void> {
    if (w.done) return;
    w.done = true;
    if (w.timer) clearTimeout(w.timer);
    this.watched.delete(BackgroundCalls.idOf(w.key.tenant, w.id));
    const usage =
      response && typeof response['usage'] === 'object' ? (response['usage'] as Obj | null) : null;
    const status = typeof response?.['status'] === 'string' ? response['status'] : null;
    let toolCalls = response ? hostedToolCalls(response['output']) : null;
    const containers = response ? containersOf(response['output']) : null;
    if (containers) toolCalls = await this.env.sessions(w.ctx, w.body, containers, toolCalls);
    const out: AttemptOutcome = {
      status: status === 'completed' ? 'ok' : 'error',
      errorType: lost ?? (status === 'completed' ? null : `background_${status}`),
      usage,
      // No usage (lost, unfinished, or cancelled before it ran): the prompt, which went upstream.
      estimated: usage ? null : { input: await estimatePromptTokens(w.body), output: 0 },
      modelServed: typeof response?.['model'] === 'string' ? response['model'] : null,
      serviceTier: typeof response?.['service_tier'] === 'string' ? response['service_tier'] : null,
      toolCalls,
      latencyMs: performance.now() - w.a0,
      ttftMs: null,
    };
    const acc: Accumulated = { spentNano: 0n, tokens: 0, headers: {} };
    try {
      this.env.record(w.ctx, out, acc);
    } finally {
      if (w.hold) {
        const spent = acc.unpriced && w.hold.reserved > acc.spentNano ? w.hold.reserved : acc.spentNano;
        await this.env.settle(w.key, w.hold, spent, w.time);
      }
    }
  }

  /** Stops watching: the calls still running upstream are metered as cut off now
   * (`gateway_interrupted`, their prompt estimated), as a call under way is when its process dies,
   * and the looks under way are waited for. */
  async close(): Promise<void> {
    for (const w of [...this.watched.values()]) this.track(this.finish(w, null, 'gateway_interrupted'));
    while (this.busy.size > 0) await Promise.allSettled([...this.busy]);
  }
}
