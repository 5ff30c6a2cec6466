import { expect, it } from 'vitest';
import type { ContractContext } from '../contract.js';
import { SCHEMA_VERSION } from '../schema.js';
import { makeCall, newTenant } from './fixtures.js';

export function lifecycleCases(ctx: ContractContext): void {
  it('reports the schema version after migrate()', () => {
    expect(ctx.store.info.schemaVersion).toBe(SCHEMA_VERSION);
    expect(['duckdb', 'postgres']).toContain(ctx.store.info.kind);
  });

  it('reports the memory it holds', async () => {
    const tenant = newTenant();
    await ctx.store.ingest({ calls: [makeCall(tenant, 'm1')], tasks: [] });
    const m = await ctx.store.memory();
    expect(m.usedBytes).toBeGreaterThan(0);
    expect(m.spilledBytes).toBeGreaterThanOrEqual(0);
    if (m.limitBytes !== null) expect(m.limitBytes).toBeGreaterThan(0);
  });

  it('migrate() is idempotent and keeps the data', async () => {
    const tenant = newTenant();
    await ctx.store.ingest({ calls: [makeCall(tenant, 'c1')], tasks: [] });
    await ctx.store.migrate();
    await ctx.store.migrate();
    expect(ctx.store.info.schemaVersion).toBe(SCHEMA_VERSION);
    expect(await ctx.store.counts(tenant)).toEqual({ calls: 1, task_events: 0 });
    // Writes still work after a migration.
    expect(await ctx.store.ingest({ calls: [makeCall(tenant, 'c2')], tasks: [] })).toEqual({
      inserted: 1,
      duplicates: 0,
    });
  });

  it('a closed store refuses work with store_unavailable', async () => {
    const other = await ctx.makeStore();
    await other.migrate();
    await other.close();
    await expect(other.counts(newTenant())).rejects.toMatchObject({ code: 'store_unavailable' });
    await expect(other.ingest({ calls: [makeCall(newTenant(), 'c1')], tasks: [] })).rejects.toMatchObject({
      code: 'store_unavailable',
    });
  });

  it('close() lets an ingest already asked for finish', async () => {
    const other = await ctx.makeStore();
    await other.migrate();
    const tenant = newTenant();
    const writing = other.ingest({ calls: [makeCall(tenant, 'c1'), makeCall(tenant, 'c2')], tasks: [] });
    await other.close();
    expect(await writing).toEqual({ inserted: 2, duplicates: 0 });
  });
}
