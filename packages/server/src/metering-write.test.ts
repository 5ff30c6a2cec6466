import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { createDuckDbStore, type Store } from '@tally/store';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { meteringWriter } from './metering-write.js';
import { ServerMetrics } from './metrics.js';
import { sampleCall } from './testing/calls.js';

describe('the metering write into this process store', () => {
  let store: Store;
  let dir: string;
  beforeEach(async () => {
    dir = mkdtempSync(join(os.tmpdir(), 'tally-metering-write-'));
    store = await createDuckDbStore({ path: join(dir, 'tally.duckdb') });
    await store.migrate();
  });
  afterEach(async () => {
    await store.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  const id = (n: number) => `01936b2e-0000-7000-8000-${String(n).padStart(12, '0')}`;

  it('stores the rest of a batch holding calls the store refuses, and sets those aside with the reason', async () => {
    const metrics = new ServerMetrics(false);
    const rejectedDir = join(dir, 'rejected');
    const w = meteringWriter(store, metrics, pino({ level: 'silent' }), rejectedDir);
    const good = store.newCallBatch();
    for (let i = 1; i <= 9; i++) good.add(sampleCall(id(i)));
    // Two lines no column takes, among the good ones: a count that is text, and one that is 2^40.
    const lines = good.bytes.toString('utf8').trimEnd().split('\n');
    const bad1 = lines[2]!.replace(',20,10,', ',twenty,10,').replace(id(3), id(103));
    const bad2 = lines[6]!.replace(',20,10,', `,${2 ** 40},10,`).replace(id(7), id(107));
    const all = [...lines.slice(0, 3), bad1, ...lines.slice(3, 7), bad2, ...lines.slice(7)];
    const batch = store.restoreCallBatch(good.format, Buffer.from(`${all.join('\n')}\n`));
    expect(batch.rows).toBe(11);

    await w.write(batch);
    expect((await store.counts('default')).calls).toBe(9);
    for (let i = 1; i <= 9; i++) expect(await store.getCall('default', id(i))).not.toBeNull();
    expect(await store.getCall('default', id(103))).toBeNull();
    expect(w.rejected.count).toBe(2);
    const [file] = readdirSync(rejectedDir);
    expect(readFileSync(join(rejectedDir, file!), 'utf8')).toBe(`${bad1}\n${bad2}\n`);
    expect(await metrics.registry.getSingleMetricAsString('tally_metering_calls_rejected_total')).toMatch(
      / 2$/m,
    );

    // The same batch again (its answer lost): nothing is counted twice, and the refused calls are
    // set aside again rather than stored.
    await w.write(store.restoreCallBatch(good.format, Buffer.from(`${all.join('\n')}\n`)));
    expect((await store.counts('default')).calls).toBe(9);
  });

  it('throws a failure of the store itself, for the sink to try the whole batch again', async () => {
    const w = meteringWriter(store, new ServerMetrics(false), pino({ level: 'silent' }));
    const batch = store.newCallBatch();
    batch.add(sampleCall(id(1)));
    await store.close();
    await expect(w.write(batch)).rejects.toMatchObject({ code: 'store_unavailable' });
    expect(w.rejected.count).toBe(0);
  });
});
