import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackgroundCalls, type BackgroundEnv } from './background.js';
import type { Hold } from './budget-guard.js';
import type { AttemptContext, AttemptOutcome } from './meter.js';
import { MockUpstream } from './testing/mock-upstream.js';
import type { GatewayDeps, VirtualKey } from './types.js';
import { Upstreams } from './upstream.js';

const key: VirtualKey = {
  id: 'k1',
  tenant: 't1',
  project: null,
  team: null,
  user: null,
  models: [],
  tags: {},
  rpm: null,
  tpm: null,
};

describe('background calls, watched', () => {
  const mock = new MockUpstream();
  const upstreams = new Upstreams();
  beforeAll(() => mock.start());
  afterAll(async () => {
    await upstreams.close();
    await mock.stop();
  });

  /** A watch on the mock, with a clock the test moves, that keeps what it meters and settles. */
  function watchOf(dir?: string) {
    const clock = { t: Date.now(), now: () => clock.t };
    const recorded: AttemptOutcome[] = [];
    const settled: bigint[] = [];
    const env: BackgroundEnv = {
      deps: {
        config: {
          providers: [],
          routes: [],
          timeout_ms: 2000,
          background_poll_ms: 10,
          background_max_hours: 1,
        },
        clock,
      } as unknown as GatewayDeps,
      upstreams,
      provider: (id) =>
        id === 'openai'
          ? { id: 'openai', kind: 'openai', base_url: `${mock.url}/v1`, api_key: 'sk' }
          : undefined,
      record: (ctx, out, acc) => {
        recorded.push({ ...out, ctxId: ctx.id } as AttemptOutcome);
        acc.spentNano += 5n;
        return 5n;
      },
      sessions: async (_ctx, _body, _ids, calls) => calls,
      settle: async (_key, _hold, spent) => {
        settled.push(spent);
      },
      holdAgain: async (hold) => hold,
    };
    return { clock, recorded, settled, watch: new BackgroundCalls(env, dir) };
  }

  async function queued(): Promise<string> {
    mock.backgroundMs = 60_000;
    const res = await request(`${mock.url}/v1/responses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4.1', input: 'Research.', background: true }),
    });
    return ((await res.body.json()) as { id: string }).id;
  }

  const call = (id: string, time: number) => ({
    ctx: { id: 'c1' } as AttemptContext,
    body: { model: 'gpt-4.1', input: 'Research.' },
    provider: 'openai',
    id,
    key,
    time,
    hold: { held: [], unheld: [], reserved: 100n, opId: 'op' } as Hold,
  });

  it('asks again, less and less often, while the response runs, and gives up past its hours', async () => {
    const { clock, recorded, settled, watch } = watchOf();
    const id = await queued();
    const from = mock.received.length;
    watch.watch(call(id, clock.t));
    await new Promise((r) => setTimeout(r, 150));
    // At 10, 25, 47, 81, 132 ms: at most five looks in 150 ms (fewer on a busy host), not fifteen.
    const looks = mock.received.slice(from).filter((r) => r.path === `/v1/responses/${id}`).length;
    expect(looks).toBeGreaterThanOrEqual(1);
    expect(looks).toBeLessThanOrEqual(5);
    expect(recorded).toEqual([]);
    clock.t += 3_600_001;
    await new Promise((r) => setTimeout(r, 200));
    expect(recorded).toHaveLength(1);
    expect(recorded[0]).toMatchObject({
      status: 'error',
      errorType: 'background_unfinished',
      usage: null,
      estimated: { output: 0 },
    });
    expect(recorded[0]!.estimated!.input).toBeGreaterThan(0);
    // Settled at what the call cost, not at its reservation.
    expect(settled).toEqual([5n]);
    expect(watch.size).toBe(0);
  });

  it('meters a call once, whichever of the watch and a follow-up sees it ended first', async () => {
    const { clock, recorded, settled, watch } = watchOf();
    const id = await queued();
    watch.watch(call(id, clock.t));
    const ended = {
      id,
      status: 'completed',
      model: 'gpt-4.1-2025-04-14',
      usage: { input_tokens: 5, output_tokens: 7 },
    };
    watch.observe('t1', id, { ...ended, status: 'in_progress' });
    expect(watch.has('t1', id)).toBe(true);
    watch.observe('other-tenant', id, ended);
    expect(watch.has('t1', id)).toBe(true);
    watch.observe('t1', id, ended);
    watch.observe('t1', id, ended);
    await watch.close();
    expect(recorded).toHaveLength(1);
    expect(recorded[0]).toMatchObject({
      status: 'ok',
      usage: ended.usage,
      modelServed: 'gpt-4.1-2025-04-14',
    });
    expect(settled).toEqual([5n]);
  });

  it('meters an incomplete response as answered, and a failed one as an error, each from its usage', async () => {
    const { clock, recorded, watch } = watchOf();
    const usage = { input_tokens: 5, output_tokens: 7 };
    for (const status of ['incomplete', 'failed']) {
      const id = await queued();
      watch.watch(call(id, clock.t));
      watch.observe('t1', id, { id, status, usage });
    }
    await watch.close();
    expect(recorded).toMatchObject([
      { status: 'ok', errorType: null, usage },
      { status: 'error', errorType: 'background_failed', usage },
    ]);
  });

  /** A watch kept in a directory of its own, watching one response queued upstream, once the call
   * is on disk. */
  async function keptWatch() {
    const dir = mkdtempSync(join(tmpdir(), 'tally-background-'));
    const first = watchOf(dir);
    const id = await queued();
    first.watch.watch(call(id, first.clock.t));
    await until(() => readdirSync(dir).some((f) => f.startsWith('pending.')));
    return { dir, first, id };
  }

  it('keeps the calls it watches on disk, and a watch that starts after it stopped takes them over', async () => {
    const { dir, first, id } = await keptWatch();
    try {
      await first.watch.close();
      // Stopped with the response still running: kept, not metered.
      expect(first.recorded).toEqual([]);
      const [file] = readdirSync(dir);
      const kept = JSON.parse(readFileSync(join(dir, file!), 'utf8'));
      expect(kept).toMatchObject([
        { id, provider: 'openai', key: { id: 'k1' }, hold: { reserved: { $n: '100' } } },
      ]);
      expect(kept[0].promptTokens).toBeGreaterThan(0);

      // The next start takes the file over and watches the call to its end.
      mock.stored.get(id)!.readyAt = Date.now();
      const next = watchOf(dir);
      await next.watch.ready;
      expect(next.watch.has('t1', id)).toBe(true);
      expect(readdirSync(dir).filter((f) => f.startsWith('adopting.'))).toEqual([]);
      await until(() => next.recorded.length === 1);
      expect(next.recorded[0]).toMatchObject({ status: 'ok', usage: { output_tokens: 300 }, ctxId: 'c1' });
      // Its reservation went with the process that made it: the cost is added, nothing released.
      await until(() => next.settled.length === 1);
      expect(next.settled).toEqual([5n]);
      await until(() => readdirSync(dir).length === 0);
      await next.watch.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("leaves a running watch's file alone", async () => {
    const { dir, first, id } = await keptWatch();
    try {
      const other = watchOf(dir);
      await other.watch.ready;
      expect(other.watch.size).toBe(0);
      expect(first.watch.has('t1', id)).toBe(true);
      await other.watch.close();
      await first.watch.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

async function until(check: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}
