import { expect, it } from 'vitest';
import type { ContractContext } from '../contract.js';
import {
  makeBudget,
  makeCall,
  makeKey,
  makeLedgerEntry,
  makeTask,
  makeUseCase,
  newTenant,
  T0,
} from './fixtures.js';

export function isolationCases(ctx: ContractContext): void {
  it('never shows one tenant’s rows to another, in any query', async () => {
    const a = newTenant('a');
    const b = newTenant('b');
    const s = ctx.store;
    // The same ids in both tenants: only the tenant tells them apart.
    for (const [tenant, project, cost] of [
      [a, 'alpha', 111n],
      [b, 'beta', 222n],
    ] as const) {
      await s.ingest({
        calls: [
          makeCall(tenant, 'c1', { project, cost_effective_nano: cost }),
          makeCall(tenant, 'c2', { project, time: T0 + 1 }),
        ],
        tasks: [makeTask(tenant, 'e1'), makeTask(tenant, 'e2', { task_id: 'T-2' })],
      });
      await s.putUseCase(makeUseCase(tenant, 'uc', { name: project }));
      await s.addLedgerEntry(makeLedgerEntry(tenant, 'l1', { note: project }));
      await s.putBudget(makeBudget(tenant, 'b1', { subject: project }));
      await s.createKey(makeKey(tenant, 'k1', { project }));
    }

    const page = await s.listCalls({ tenant: a, limit: 100 });
    expect(page.rows.map((c) => [c.tenant, c.project])).toEqual([
      [a, 'alpha'],
      [a, 'alpha'],
    ]);
    expect(await s.listCalls({ tenant: a, limit: 100, project: 'beta' })).toEqual({
      rows: [],
      nextCursor: null,
    });
    const first = await s.listCalls({ tenant: a, limit: 1 });
    const rest = await s.listCalls({ tenant: b, limit: 10, cursor: first.nextCursor! });
    expect(rest.rows.every((c) => c.tenant === b)).toBe(true);

    expect((await s.getCall(a, 'c1'))?.project).toBe('alpha');
    expect((await s.getCall(b, 'c1'))?.project).toBe('beta');
    expect(await s.getCall(newTenant(), 'c1')).toBeNull();

    expect((await s.listTaskEvents(a, 'triage')).map((t) => t.tenant)).toEqual([a, a]);
    expect((await s.listTaskEvents(a, 'triage', 'T-2')).map((t) => t.tenant)).toEqual([a]);

    const spend = await s.spend({ tenant: a, groupBy: 'project' });
    expect(spend.map((r) => [r.group, r.calls])).toEqual([['alpha', 2]]);
    expect((await s.spend({ tenant: b }))[0]?.cost_effective_nano).toBe(222n + 3_000_000n);
    expect(await s.counts(a)).toEqual({ calls: 2, task_events: 2 });

    expect((await s.getUseCase(a, 'uc'))?.name).toBe('alpha');
    expect((await s.listUseCases(b)).map((u) => u.name)).toEqual(['beta']);
    expect((await s.listLedger(a)).map((e) => e.note)).toEqual(['alpha']);
    expect((await s.listLedger(a, 'triage')).map((e) => e.tenant)).toEqual([a]);
    expect((await s.listBudgets(b)).map((x) => x.subject)).toEqual(['beta']);
    expect((await s.listKeys(a)).map((k) => k.project)).toEqual(['alpha']);

    // Writes through one tenant never touch the other's rows.
    await s.putUseCase(makeUseCase(a, 'uc', { name: 'alpha 2' }));
    expect((await s.getUseCase(b, 'uc'))?.name).toBe('beta');
    expect(await s.addLedgerEntry(makeLedgerEntry(b, 'l2'))).toEqual({ inserted: 1, duplicates: 0 });
    expect(await s.deleteBudget(a, 'b1')).toBe(true);
    expect(await s.listBudgets(b)).toHaveLength(1);
    expect(await s.revokeKey(a, 'k1', T0)).toBe(true);
    expect((await s.listKeys(b))[0]?.revoked_at).toBeNull();
  });
}
