import { randomUUID } from 'node:crypto';
import { MemoryState, RedisState, type SharedState } from '@tally/gateway';
import { MockUpstream, SKIP_WITHOUT_RECORDINGS } from '@tally/gateway/testing';
import { createDuckDbStore } from '@tally/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastCalls, postChat, type TestApp, testApp } from '../testing/test-app.js';

/** Two deployments of one model at the mock, told apart by the key the gateway sends each. */
const gatewayConfig = (mock: MockUpstream) => ({
  gateway: {
    providers: [
      { id: 'east', kind: 'openai', base_url: `${mock.url}/v1`, api_key: 'sk-east' },
      { id: 'west', kind: 'openai', base_url: `${mock.url}/v1`, api_key: 'sk-west' },
    ],
    routes: [
      {
        model: 'by-requests',
        targets: [{ provider: 'east', model: 'gpt-4o', rpm: 2 }],
        fallbacks: [{ provider: 'west', model: 'gpt-4o' }],
      },
      { model: 'one-a-minute', targets: [{ provider: 'east', model: 'gpt-4o-2024-08-06', rpm: 1 }] },
      { model: 'by-tokens', targets: [{ provider: 'west', model: 'gpt-4o', tpm: 3000 }] },
    ],
  },
});

/** Which deployment each of the mock's requests since `from` went to. */
const sentTo = (mock: MockUpstream, from: number) =>
  mock.received.slice(from).map((r) => String(r.headers['authorization']).replace('Bearer sk-', ''));

describe.skipIf(SKIP_WITHOUT_RECORDINGS)("gateway: an upstream deployment's quota", () => {
  const mock = new MockUpstream();
  let t: TestApp;
  let base: string;
  let key: string;

  beforeAll(async () => {
    await mock.start();
    t = await testApp(gatewayConfig(mock));
    base = await t.listen();
    key = (await t.newKey({ project: 'p' })).key;
  });
  afterAll(async () => {
    await t?.shutdown();
    await mock.stop();
  });

  it("passes a deployment at its requests a minute over for the route's next", async () => {
    const from = mock.received.length;
    for (let i = 0; i < 3; i++) {
      const res = await postChat(base, key, { model: 'by-requests' });
      expect(res.statusCode).toBe(200);
      await res.body.json();
    }
    expect(sentTo(mock, from)).toEqual(['east', 'east', 'west']);
    // The metrics show what is left of each quota.
    const metrics = (await t.app.inject({ url: '/metrics' })).body;
    expect(metrics).toMatch(
      /^tally_gateway_upstream_quota_remaining\{provider="east",model="gpt-4o",limit="requests"\} 0$/m,
    );
    expect(metrics).toMatch(
      /^tally_gateway_upstream_quota_remaining\{provider="west",model="gpt-4o",limit="tokens"\} 3000$/m,
    );
    // The deployment passed over is no attempt: the call went to the fallback as its first.
    expect((await lastCalls(t))[0]).toMatchObject({
      status: 'ok',
      route: { tier: 'fallback', fallback_hops: 1 },
    });
  });

  it('answers 429 upstream_quota_exceeded, with when to try again, when every deployment is at its quota', async () => {
    const from = mock.received.length;
    expect((await postChat(base, key, { model: 'one-a-minute' })).statusCode).toBe(200);
    const res = await postChat(base, key, { model: 'one-a-minute' });
    expect(res.statusCode).toBe(429);
    expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(await res.body.json()).toMatchObject({
      error: { code: 'upstream_quota_exceeded', type: 'requests', message: expect.stringContaining('east') },
    });
    expect(sentTo(mock, from)).toEqual(['east']);
    // Recorded as a refusal: nothing went upstream.
    expect((await lastCalls(t))[0]).toMatchObject({
      status: 'refused',
      error_type: 'upstream_quota_exceeded',
      model_requested: 'one-a-minute',
      cost_usd: '0',
    });
  });

  it("takes a call's most tokens from a deployment's tokens a minute, and gives back what it did not use", async () => {
    const bucket = { key: 'upstream::west:gpt-4o', rpm: null, tpm: 3000 };
    const res = await postChat(base, key, { model: 'by-tokens', max_tokens: 2500 });
    expect(res.statusCode).toBe(200);
    await res.body.json();
    const billed = (await lastCalls(t))[0]!.tokens;
    const standing = await t.ctx.state.rateStanding(bucket, Date.now());
    // Only what the call was billed stays taken (the bucket refills meanwhile, a token in 20 ms).
    expect(3000 - standing.tokens!.remaining).toBeGreaterThanOrEqual(
      billed['input']! + billed['output']! - 5,
    );
    expect(3000 - standing.tokens!.remaining).toBeLessThanOrEqual(billed['input']! + billed['output']!);
    // A call that could use more than the quota holds is not sent.
    const over = await postChat(base, key, { model: 'by-tokens', max_tokens: 4000 });
    expect(over.statusCode).toBe(429);
    expect(await over.body.json()).toMatchObject({
      error: { code: 'upstream_quota_exceeded', type: 'tokens' },
    });
  });
});

describe.skipIf(SKIP_WITHOUT_RECORDINGS)("gateway replicas: an upstream deployment's quota", () => {
  const quotaAcross = async (states: SharedState[]) => {
    const mock = await new MockUpstream().start();
    const store = await createDuckDbStore({ path: ':memory:' });
    await store.migrate();
    const apps = await Promise.all(states.map((s) => testApp(gatewayConfig(mock), undefined, s, store)));
    try {
      const key = (await apps[0]!.newKey({ project: 'p' })).key;
      const bases = await Promise.all(apps.map((a) => a.listen()));
      for (const b of [bases[0]!, bases[1]!, bases[0]!, bases[1]!]) {
        const res = await postChat(b, key, { model: 'by-requests' });
        expect(res.statusCode).toBe(200);
        await res.body.json();
      }
      return sentTo(mock, 0);
    } finally {
      await Promise.all(apps.map((a) => a.shutdown()));
      await store.close();
      await mock.stop();
    }
  };

  it('holds across replicas on Redis', async () => {
    const prefix = `tally-test:${randomUUID()}:`;
    const states = [
      new RedisState('redis://127.0.0.1:6379', prefix),
      new RedisState('redis://127.0.0.1:6379', prefix),
    ];
    try {
      // Two calls a minute for east, whichever replica sends them.
      expect(await quotaAcross(states)).toEqual(['east', 'east', 'west', 'west']);
    } finally {
      await Promise.all(states.map((s) => s.close()));
    }
  });

  it('is each process its own with in-process state', async () => {
    expect(await quotaAcross([new MemoryState(), new MemoryState()])).toEqual([
      'east',
      'east',
      'east',
      'east',
    ]);
  });
});
