import { expect, it } from 'vitest';
import type { ContractContext } from '../contract.js';
import {
  DAY,
  makeBudget,
  makeKey,
  makeLedgerEntry,
  makeTask,
  makeUseCase,
  newTenant,
  T0,
} from './fixtures.js';

export function registryCases(ctx: ContractContext): void {
  it('puts, gets, lists and updates use cases', async () => {
    const tenant = newTenant();
    const b = makeUseCase(tenant, 'uc-b', {
      name: 'Billing questions',
      department: null,
      stage: 'idea',
      spec: {},
    });
    const a = makeUseCase(tenant, 'uc-a', {
      name: 'Answering tickets',
      spec: {
        smart: { metric: 'handling time', target: 0.3 },
        owners: { product: 'Ana', finance: null },
        list: [1, 'two'],
      },
    });
    await ctx.store.putUseCase(b);
    await ctx.store.putUseCase(a);
    expect(await ctx.store.getUseCase(tenant, 'uc-a')).toEqual(a);
    expect(await ctx.store.getUseCase(tenant, 'uc-missing')).toBeNull();
    expect(await ctx.store.listUseCases(tenant)).toEqual([a, b]); // by name

    const updated = {
      ...a,
      stage: 'production' as const,
      spec: { changed: true },
      created_at: T0 + DAY,
      updated_at: T0 + 2 * DAY,
    };
    await ctx.store.putUseCase(updated);
    // An update never moves created_at.
    expect(await ctx.store.getUseCase(tenant, 'uc-a')).toEqual({ ...updated, created_at: a.created_at });
    expect(await ctx.store.listUseCases(tenant)).toHaveLength(2);
  });

  it('adds ledger entries idempotently by id and lists them, by use case too', async () => {
    const tenant = newTenant();
    const big = 2n ** 62n + 3n;
    const e1 = makeLedgerEntry(tenant, 'l1', { month: '2026-10', amount_nano: big, note: 'GPU reservation' });
    const e2 = makeLedgerEntry(tenant, 'l2', { category: 'human_review_qa' });
    const e3 = makeLedgerEntry(tenant, 'l3', { use_case: 'other', category: 'licences' });
    expect(await ctx.store.addLedgerEntry(e1)).toEqual({ inserted: 1, duplicates: 0 });
    expect(await ctx.store.addLedgerEntry(e2)).toEqual({ inserted: 1, duplicates: 0 });
    expect(await ctx.store.addLedgerEntry(e3)).toEqual({ inserted: 1, duplicates: 0 });
    expect(await ctx.store.addLedgerEntry({ ...e1, amount_nano: 1n })).toEqual({
      inserted: 0,
      duplicates: 1,
    });
    const all = await ctx.store.listLedger(tenant);
    expect(all).toHaveLength(3);
    expect(all.find((e) => e.id === 'l1')).toEqual(e1);
    expect(await ctx.store.listLedger(tenant, 'triage')).toEqual([e1, e2]); // by month, then category
    expect(await ctx.store.listLedger(tenant, 'nothing')).toEqual([]);
  });

  it('sums task.human seconds per UTC month, for one use case', async () => {
    const tenant = newTenant();
    const human = (id: string, time: string, seconds: number, useCase = 'triage') =>
      makeTask(tenant, id, {
        type: 'task.human',
        time: Date.parse(time),
        use_case: useCase,
        kind: 'edit',
        seconds,
        outcome: null,
        handling_seconds: null,
        value_nano: null,
      });
    await ctx.store.ingest({
      calls: [],
      tasks: [
        human('h1', '2026-10-31T23:59:59.999Z', 30.5),
        human('h2', '2026-11-01T00:00:00Z', 45),
        human('h3', '2026-11-20T08:00:00Z', 15),
        human('h4', '2026-11-20T08:00:00Z', 999, 'other'),
        makeTask(tenant, 'c1', { time: Date.parse('2026-11-02T00:00:00Z') }),
      ],
    });
    expect(await ctx.store.humanSecondsByMonth(tenant, 'triage')).toEqual([
      { month: '2026-10', seconds: 30.5 },
      { month: '2026-11', seconds: 60 },
    ]);
    expect(await ctx.store.humanSecondsByMonth(tenant, 'none')).toEqual([]);
  });

  it('puts, lists, replaces and deletes budgets', async () => {
    const tenant = newTenant();
    const first = makeBudget(tenant, 'b1');
    const second = makeBudget(tenant, 'b2', {
      scope: 'tenant',
      subject: tenant,
      limit_nano: 2n ** 60n,
      period: 'day',
      time_zone: 'UTC',
      thresholds: [],
      action: 'downgrade',
      downgrade_model: 'gpt-4o-mini',
      models: ['gpt-4o', 'o3*'],
      created_at: T0 + 1,
    });
    await ctx.store.putBudget(first);
    await ctx.store.putBudget(second);
    expect(await ctx.store.listBudgets(tenant)).toEqual([first, second]);

    const replaced = {
      ...first,
      limit_nano: 7n,
      action: 'block' as const,
      thresholds: [0.9],
      models: ['claude-*'],
    };
    await ctx.store.putBudget({ ...replaced, created_at: T0 + DAY }); // created_at stays
    expect(await ctx.store.listBudgets(tenant)).toEqual([replaced, second]);

    expect(await ctx.store.deleteBudget(tenant, 'b1')).toBe(true);
    expect(await ctx.store.deleteBudget(tenant, 'b1')).toBe(false);
    expect(await ctx.store.listBudgets(tenant)).toEqual([second]);
  });

  it('puts, lists, replaces and deletes rate limits, each tenant its own', async () => {
    const tenant = newTenant();
    const other = newTenant();
    const team = {
      tenant,
      id: 'rl-team',
      scope: 'team' as const,
      subject: 'cx',
      models: [],
      rpm: 600,
      tpm: null,
      max_parallel: 20,
      created_at: T0,
    };
    const tag = {
      tenant,
      id: 'rl-tag',
      scope: 'tag' as const,
      subject: 'feature=summarize',
      models: ['gpt-4o*'],
      rpm: null,
      tpm: 2_000_000_000,
      max_parallel: null,
      created_at: T0 + 1,
    };
    await ctx.store.putRateLimit(tag);
    await ctx.store.putRateLimit(team);
    await ctx.store.putRateLimit({ ...team, tenant: other });
    expect(await ctx.store.listRateLimits(tenant)).toEqual([team, tag]);

    const replaced = { ...team, rpm: 60, tpm: 90_000, models: ['claude-*'] };
    await ctx.store.putRateLimit({ ...replaced, created_at: T0 + DAY }); // created_at stays
    expect(await ctx.store.listRateLimits(tenant)).toEqual([replaced, tag]);
    expect(await ctx.store.listRateLimits(other)).toEqual([{ ...team, tenant: other }]);

    expect(await ctx.store.deleteRateLimit(tenant, 'rl-team')).toBe(true);
    expect(await ctx.store.deleteRateLimit(tenant, 'rl-team')).toBe(false);
    expect(await ctx.store.listRateLimits(tenant)).toEqual([tag]);
    expect(await ctx.store.listRateLimits(other)).toHaveLength(1);
  });

  it('creates keys, finds them by hash, lists and revokes them', async () => {
    const tenant = newTenant();
    const admin = makeKey(tenant, 'k-admin', { role: 'admin', project: null, models: [], rpm: null });
    const virtual = makeKey(tenant, 'k-virtual', {
      team: 'cx',
      user: 'u-17',
      tags: { app: 'checkout', 'cost/center': '42' },
      tpm: 100_000,
      budget_id: 'b1',
      created_at: T0 + 1,
      expires_at: T0 + 30 * DAY,
    });
    await ctx.store.createKey(admin);
    await ctx.store.createKey(virtual);
    expect(await ctx.store.findKeyByHash(virtual.hash)).toEqual(virtual);
    expect(await ctx.store.findKeyByHash('0'.repeat(64))).toBeNull();
    expect(await ctx.store.listKeys(tenant)).toEqual([admin, virtual]);

    expect(await ctx.store.revokeKey(tenant, 'k-virtual', T0 + DAY)).toBe(true);
    expect(await ctx.store.revokeKey(tenant, 'k-virtual', T0 + 2 * DAY)).toBe(false); // already revoked
    expect(await ctx.store.revokeKey(tenant, 'k-missing', T0)).toBe(false);
    // A revoked key is still found, so that auth can say why it fails.
    expect(await ctx.store.findKeyByHash(virtual.hash)).toEqual({ ...virtual, revoked_at: T0 + DAY });
  });

  it("updates an active key's owner and policy, clearing with null, and leaves a revoked one be", async () => {
    const tenant = newTenant();
    const key = makeKey(tenant, 'k-up', {
      name: 'support bot',
      team: 'cx',
      rpm: 60,
      tpm: 1000,
      models: ['gpt-4o'],
    });
    await ctx.store.createKey(key);
    const fields = {
      name: 'support bot (prod)',
      rpm: 600,
      tpm: null,
      models: ['gpt-4o*', 'claude-*'],
      tags: { app: 'support' },
      user: 'u-9',
      budget_id: 'budget_k-up',
      expires_at: T0 + 10 * DAY,
    };
    const want = { ...key, ...fields };
    expect(await ctx.store.updateKey(tenant, 'k-up', fields)).toEqual(want);
    expect(await ctx.store.findKeyByHash(key.hash)).toEqual(want);
    // Nothing to change: the key as it is.
    expect(await ctx.store.updateKey(tenant, 'k-up', {})).toEqual(want);
    expect(
      await ctx.store.updateKey(tenant, 'k-up', { expires_at: null, team: null, tags: {} }),
    ).toMatchObject({
      expires_at: null,
      team: null,
      tags: {},
    });
    // Another tenant's key of that id, an unknown one and a revoked one are not changed.
    expect(await ctx.store.updateKey(newTenant(), 'k-up', { rpm: 1 })).toBeNull();
    expect(await ctx.store.updateKey(tenant, 'k-none', { rpm: 1 })).toBeNull();
    await ctx.store.revokeKey(tenant, 'k-up', T0 + DAY);
    expect(await ctx.store.updateKey(tenant, 'k-up', { rpm: 1 })).toBeNull();
    expect((await ctx.store.findKeyByHash(key.hash))?.rpm).toBe(600);
  });

  it('gives an active key a new secret, and the old one finds nothing', async () => {
    const tenant = newTenant();
    const key = makeKey(tenant, 'k-rot', { rpm: 60 });
    await ctx.store.createKey(key);
    const secret = { hash: 'f'.repeat(64), prefix: 'tk-newer' };
    expect(await ctx.store.rotateKey(tenant, 'k-rot', secret)).toEqual({ ...key, ...secret });
    expect(await ctx.store.findKeyByHash(key.hash)).toBeNull();
    expect(await ctx.store.findKeyByHash(secret.hash)).toEqual({ ...key, ...secret });
    await ctx.store.revokeKey(tenant, 'k-rot', T0 + DAY);
    expect(await ctx.store.rotateKey(tenant, 'k-rot', { hash: 'e'.repeat(64), prefix: 'tk-x' })).toBeNull();
  });

  it('refuses a second key with the same hash', async () => {
    const tenant = newTenant();
    const key = makeKey(tenant, 'k1');
    await ctx.store.createKey(key);
    await expect(ctx.store.createKey({ ...key, id: 'k2' })).rejects.toThrow();
    expect(await ctx.store.listKeys(tenant)).toEqual([key]);
  });

  it('puts, lists, replaces and deletes providers, keeping only the encrypted secret', async () => {
    const tenant = newTenant();
    const p = {
      tenant,
      id: 'azure-eu',
      kind: 'azure',
      base_url: 'https://eu.openai.azure.com',
      secret_enc: 'aXY.dGFn.Y2lwaGVy',
      settings: { api_version: '2024-10-21', deployments: { 'gpt-4o': 'prod-4o' } },
      created_at: T0,
    };
    await ctx.store.putProvider(p);
    await ctx.store.putProvider({
      ...p,
      id: 'local',
      kind: 'openai-compatible',
      secret_enc: null,
      settings: {},
    });
    const mine = (await ctx.store.listProviders()).filter((x) => x.tenant === tenant);
    expect(mine.map((x) => x.id)).toEqual(['azure-eu', 'local']);
    expect(mine[0]).toEqual(p);
    await ctx.store.putProvider({ ...p, base_url: 'https://eu2.openai.azure.com', created_at: T0 + DAY });
    const after = (await ctx.store.listProviders()).filter((x) => x.tenant === tenant);
    expect(after[0]).toMatchObject({ base_url: 'https://eu2.openai.azure.com', created_at: T0 });
    expect(await ctx.store.deleteProvider(tenant, 'local')).toBe(true);
    expect(await ctx.store.deleteProvider(tenant, 'local')).toBe(false);
    expect((await ctx.store.listProviders()).filter((x) => x.tenant === tenant)).toHaveLength(1);
  });

  it('adds alerts idempotently by id and lists them newest first', async () => {
    const tenant = newTenant();
    const a = {
      tenant,
      id: 'a1',
      time: T0,
      kind: 'budget.threshold',
      subject: 'b1',
      payload: { threshold: 0.5, spentUsd: '50' },
    };
    const b = { ...a, id: 'a2', time: T0 + DAY, subject: null, payload: {} };
    expect(await ctx.store.addAlert(a)).toEqual({ inserted: 1, duplicates: 0 });
    expect(await ctx.store.addAlert(a)).toEqual({ inserted: 0, duplicates: 1 });
    await ctx.store.addAlert(b);
    expect(await ctx.store.listAlerts(tenant, 10)).toEqual([b, a]);
    expect(await ctx.store.listAlerts(tenant, 1)).toEqual([b]);
    expect(await ctx.store.listAlerts(newTenant(), 10)).toEqual([]);
  });
}
