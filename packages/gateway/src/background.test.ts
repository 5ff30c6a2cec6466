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
  function watchOf() {
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
      record: (_ctx, out, acc) => {
        recorded.push(out);
        acc.spentNano += 5n;
        return 5n;
      },
      sessions: async (_ctx, _body, _ids, calls) => calls,
      settle: async (_key, _hold, spent) => {
        settled.push(spent);
      },
    };
    return { clock, recorded, settled, watch: new BackgroundCalls(env) };
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
    provider: { id: 'openai', kind: 'openai' as const, base_url: `${mock.url}/v1`, api_key: 'sk' },
    id,
    key,
    time,
    a0: performance.now(),
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
});
