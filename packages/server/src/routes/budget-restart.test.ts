import { randomUUID } from 'node:crypto';
import { MemoryState, RedisState, type SharedState } from '@tally/gateway';
import { MockUpstream } from '@tally/gateway/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postMessage, type TestApp, testApp } from '../testing/test-app.js';

// Each process gets a state of its own: a new process's memory, or a Redis that has lost what the
// first one wrote (flushed, evicted or replaced: here, another prefix).
const states: [string, () => SharedState][] = [
  ['in-process', () => new MemoryState()],
  [
    'a Redis that lost its state',
    () => new RedisState('redis://127.0.0.1:6379', `tally-test:${randomUUID()}:`),
  ],
];

describe.each(states)('budgets across a restart (%s)', (_name, makeState) => {
  const mock = new MockUpstream();
  const config = { gateway: { providers: [{ id: 'anthropic', kind: 'anthropic', base_url: '' }] } };
  let first: TestApp;

  beforeAll(async () => {
    await mock.start();
    config.gateway.providers[0]!.base_url = mock.url;
    first = await testApp(config, undefined, makeState());
  });
  afterAll(async () => {
    await first?.store.close();
    await mock.stop();
  });

  const message = async (base: string, key: string) => {
    const res = await postMessage(base, key);
    await res.body.dump();
    return res.statusCode;
  };
  const budgets = async (t: TestApp) =>
    (await t.app.inject({ url: '/v1/budgets', headers: t.auth })).json().data;

  it('keeps what a budget spent: a new process reads it from the store', async () => {
    // Each call costs $0.01437 and reserves $0.01539: two fit under $0.035, a third does not.
    const { id, key } = await first.newKey({ project: 'p', budget_usd: '0.035' });
    // A project budget made before the calls, and one made after them: both count them.
    await first.app.inject({
      method: 'POST',
      url: '/v1/budgets',
      headers: first.auth,
      payload: { scope: 'project', subject: 'p', limit_usd: '10', action: 'alert' },
    });
    const base = await first.listen();
    expect([await message(base, key), await message(base, key), await message(base, key)]).toEqual([
      200, 200, 429,
    ]);
    await first.gateway.flush();
    await first.close();

    const second = await testApp(config, undefined, makeState(), first.store);
    try {
      await second.app.inject({
        method: 'POST',
        url: '/v1/budgets',
        headers: second.auth,
        payload: { id: 'team-late', scope: 'tenant', limit_usd: '10', action: 'alert' },
      });
      const spent = Object.fromEntries(
        (await budgets(second)).map((b: { id: string; scope: string; spent_usd: string }) => [
          b.id === `budget_${id}` ? 'key' : b.scope,
          b.spent_usd,
        ]),
      );
      expect(spent).toEqual({ key: '0.02874', project: '0.02874', tenant: '0.02874' });
      // Budgets that count some models read the store's spend on those models alone.
      for (const [id, models] of [
        ['sonnet-late', ['claude-sonnet-*']],
        ['opus-late', ['claude-opus-*']],
      ] as const)
        await second.app.inject({
          method: 'POST',
          url: '/v1/budgets',
          headers: second.auth,
          payload: { id, scope: 'tenant', limit_usd: '10', action: 'alert', models },
        });
      const byId = Object.fromEntries(
        (await budgets(second)).map((b: { id: string; spent_usd: string }) => [b.id, b.spent_usd]),
      );
      expect([byId['sonnet-late'], byId['opus-late']]).toEqual(['0.02874', '0']);
      expect(await message(await second.listen(), key)).toBe(429);
      // The first process said the key's budget was exhausted; the second does not say it again.
      await second.ctx.alerts.stored();
      const alerts = (await second.app.inject({ url: '/v1/alerts', headers: second.auth })).json().data;
      const exhausted = alerts.filter(
        (a: { kind: string; budgetId: string }) =>
          a.kind === 'budget.exhausted' && a.budgetId === `budget_${id}`,
      );
      expect(exhausted).toHaveLength(1);
    } finally {
      await second.close();
    }
  });
});
