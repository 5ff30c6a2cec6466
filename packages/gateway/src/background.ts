import { hostedToolCalls } from './answer-meta.js';
import type { Hold } from './budget-guard.js';
import { containersOf } from './containers.js';
import { KeptWatch, lookUp, type Watching } from './kept.js';
import type { AttemptContext, AttemptOutcome } from './meter.js';
import { upstreamFor } from './providers.js';
import type { Accumulated, ContainerSessions } from './relay.js';
import { estimatePromptTokens } from './tokenizer.js';
import type { GatewayDeps, ProviderConfig, VirtualKey } from './types.js';
import type { Upstreams } from './upstream.js';

type Obj = Record<string, unknown>;

/**
 * Background Responses calls (`background: true`). The upstream answers at once, queued and
 * without usage, and runs the response on its own; its usage comes only with the response once it
 * has ended. So the gateway watches each one it passed on: it asks the provider for the response
 * (the first time after `background_poll_ms`, then half as long again each time, up to a minute)
 * until it has ended (completed, failed, cancelled or incomplete), meters the call from it, and
 * settles the budgets its reservation held meanwhile. A follow-up of the client's that sees it
 * ended meters it at once. One the provider no longer knows is metered from its prompt, estimated
 * (`background_lost`), and so is one that runs past `background_max_hours`
 * (`background_unfinished`).
 *
 * With a directory to keep them in, the calls being watched outlive the process: each process keeps
 * its own in a file there (rewritten as they change), and a process that starts takes over the
 * files of those that have stopped or died, and watches their calls to their end. Without one, a
 * call still running when the process stops is metered as cut off (`gateway_interrupted`, its
 * prompt estimated), as one under way is when its process dies.
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
  /** The provider that holds the response (its id). */
  provider: string;
  /** The response's id, as the provider gave it. */
  id: string;
  key: VirtualKey;
  /** When the request came (ms). */
  time: number;
  /** The budgets' reservation, settled once the call is metered. */
  hold: Hold | null;
}

/** What watching needs from the gateway. */
export interface BackgroundEnv {
  deps: GatewayDeps;
  upstreams: Upstreams;
  /** A provider by id, as the tenant's calls reach it. */
  provider(id: string, tenant: string): ProviderConfig | undefined;
  /** Meters an attempt (the call is no longer under way): its cost, or null unpriced. */
  record(ctx: AttemptContext, out: AttemptOutcome, acc: Accumulated): bigint | null;
  sessions: ContainerSessions;
  /** Settles the budgets a call held. */
  settle(key: VirtualKey, hold: Hold, spentNano: bigint, time: number): Promise<void>;
  /** A stopped process's hold, held again here (see holdAgain in budget-guard). */
  holdAgain(hold: Hold): Promise<Hold>;
}

interface Watched extends BackgroundCall, Watching {
  /** The prompt's tokens, for a call metered without usage: counted before it is kept on disk. */
  promptTokens: number | null;
}

/** A watched call as it is kept on disk: its attempt without what lives in the process, and of
 * its body only the tools (which say what a code interpreter container was made for). */
interface KeptCall {
  ctx: AttemptContext;
  tools: unknown;
  promptTokens: number;
  provider: string;
  id: string;
  key: VirtualKey;
  time: number;
  hold: Hold | null;
}

export class BackgroundCalls extends KeptWatch<Watched, KeptCall> {
  constructor(
    private readonly env: BackgroundEnv,
    dir?: string,
  ) {
    super(
      dir,
      'pending',
      'background calls',
      (err, doing) => env.deps.onError?.(err, doing),
      LONGEST_WAIT_MS,
    );
  }

  /** Starts watching a call whose answer came queued or in progress. */
  watch(call: BackgroundCall): void {
    this.start({ ...call, promptTokens: null });
  }

  private start(call: Omit<Watched, 'wait' | 'timer' | 'done'>): void {
    const w: Watched = {
      ...call,
      wait: this.env.deps.config.background_poll_ms ?? 1000,
      timer: null,
      done: false,
    };
    this.add(w);
    if (this.kept.file) this.track(this.keep(w));
  }

  /** Counts the prompt, then keeps the call on disk. */
  private async keep(w: Watched): Promise<void> {
    w.promptTokens ??= await estimatePromptTokens(w.body);
    await this.save();
    if (this.has(w.key.tenant, w.id)) {
      w.ctx.kept = true;
    }
  }

  /** The calls to keep on disk: those whose prompt has been counted, not yet metered. */
  protected keptItems(): KeptCall[] {
    const calls: KeptCall[] = [];
    for (const w of this.watched.values()) {
      if (w.done || w.promptTokens === null) continue;
      const { underway: _u, progress: _p, ...ctx } = w.ctx;
      calls.push({
        ctx,
        tools: w.body['tools'] ?? null,
        promptTokens: w.promptTokens,
        provider: w.provider,
        id: w.id,
        key: w.key,
        time: w.time,
        hold: w.hold,
      });
    }
    return calls;
  }

  private save(): Promise<void> {
    return this.kept.save();
  }

  /** Watches here the calls a stopped process kept. */
  protected async adopt(calls: KeptCall[]): Promise<void> {
    for (const c of calls) {
      if (this.has(c.key.tenant, c.id)) continue;
      // The reservation went with the process that made it, and is held again here.
      const hold = c.hold ? await this.env.holdAgain(c.hold) : null;
      if (this.has(c.key.tenant, c.id)) continue;
      this.start({
        ctx: { ...c.ctx, kept: true },
        body: { tools: c.tools },
        provider: c.provider,
        id: c.id,
        key: c.key,
        time: c.time,
        hold,
        promptTokens: c.promptTokens,
      });
    }
    await this.save();
  }

  /** A follow-up's answer for a response: if it has ended, its call is metered from it now. */
  observe(tenant: string, id: string, response: Obj | null): void {
    const w = this.get(tenant, id);
    if (w && hasEnded(response)) this.track(this.finish(w, response, null));
  }

  /** Asks the provider for the response: metered if it has ended (or is lost), else asked again. */
  protected async look(w: Watched): Promise<void> {
    w.timer = null;
    if (w.done || this.closed) return;
    const maxMs = (this.env.deps.config.background_max_hours ?? 24) * 3_600_000;
    if (this.env.deps.clock.now() - w.time > maxMs) return this.finish(w, null, 'background_unfinished');
    const got = await lookUp(
      this.env,
      this.env.provider(w.provider, w.key.tenant),
      w.provider,
      (p) => upstreamFor(p, 'responses', '', {}),
      w.id,
      'watching a background response',
    );
    if (w.done) return;
    if (got) {
      const response = got.status === 200 ? got.json : null;
      if (hasEnded(response)) return this.finish(w, response, null);
      // Deleted before it ended, or forgotten: its usage will never come.
      if (got.status === 404) return this.finish(w, null, 'background_lost');
    }
    if (!w.done) this.schedule(w);
  }

  /** Meters the call, from its ended response or (with `lost`) as estimated, and settles its
   * budgets. Once. */
  private async finish(w: Watched, response: Obj | null, lost: string | null): Promise<void> {
    if (w.done) return;
    w.done = true;
    if (w.timer) clearTimeout(w.timer);
    this.remove(w);
    const usage =
      response && typeof response['usage'] === 'object' ? (response['usage'] as Obj | null) : null;
    const status = typeof response?.['status'] === 'string' ? response['status'] : null;
    let toolCalls = response ? hostedToolCalls(response['output']) : null;
    const containers = response ? containersOf(response['output']) : null;
    if (containers) toolCalls = await this.env.sessions(w.ctx, w.body, containers, toolCalls);
    // An incomplete response (its output cut at max_output_tokens, say) answered, as it does when
    // it is not in the background; a failed or cancelled one did not.
    const answered = lost === null && (status === 'completed' || status === 'incomplete');
    const out: AttemptOutcome = {
      status: answered ? 'ok' : 'error',
      errorType: answered ? null : (lost ?? `background_${status}`),
      usage,
      // No usage (lost, unfinished, or cancelled before it ran): the prompt, which went upstream.
      estimated: usage ? null : { input: w.promptTokens ?? (await estimatePromptTokens(w.body)), output: 0 },
      modelServed: typeof response?.['model'] === 'string' ? response['model'] : null,
      serviceTier: typeof response?.['service_tier'] === 'string' ? response['service_tier'] : null,
      toolCalls,
      latencyMs: Math.max(0, this.env.deps.clock.now() - w.time),
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
      if (w.ctx.kept) await this.save();
    }
  }

  /** Stops watching. With a directory, the calls still running upstream stay in this process's file,
   * for the next process to take over; without one, they are metered as cut off now
   * (`gateway_interrupted`, their prompt estimated), as a call under way is when its process dies.
   * The looks under way are waited for. */
  async close(): Promise<void> {
    if (this.kept.file) {
      await this.stop();
      // What started being kept on disk is kept whole.
      for (const w of this.watched.values()) w.promptTokens ??= await estimatePromptTokens(w.body);
      await this.save();
    } else {
      for (const w of [...this.watched.values()]) this.track(this.finish(w, null, 'gateway_interrupted'));
      while (this.busy.size > 0) await Promise.allSettled([...this.busy]);
    }
    this.kept.close();
  }
}
