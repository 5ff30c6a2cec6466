import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { MockUpstream, SKIP_WITHOUT_RECORDINGS } from '@tally/gateway/testing';
import { callCsvLine, createDuckDbStore, type Store } from '@tally/store';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type TallyApp } from '../app.js';
import { configSchema } from '../config.js';
import { sampleCall } from '../testing/calls.js';
import { ADMIN_KEY, testCatalog } from '../testing/test-app.js';

const auth = { authorization: `Bearer ${ADMIN_KEY}` };
const until = async (check: () => Promise<boolean> | boolean, ms = 8000) => {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
};

/** The real store, with switches that make its writes or its reads fail. */
function faulty(store: Store) {
  const faults = { writes: false, committedButFailed: false, reads: false };
  const wrapped = new Proxy(store, {
    get(target, prop) {
      if (prop === 'appendCallBatch') {
        return async (batch: Parameters<Store['appendCallBatch']>[0]) => {
          if (faults.writes) throw new Error('store unavailable');
          const r = await target.appendCallBatch(batch);
          // The write went in, but its answer was lost: the batch will be written again.
          if (faults.committedButFailed) throw new Error('connection lost after commit');
          return r;
        };
      }
      if (prop === 'memory' && faults.reads) return async () => Promise.reject(new Error('store unreadable'));
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return { store: wrapped, faults };
}

describe.skipIf(SKIP_WITHOUT_RECORDINGS)(
  'metering when the store fails: spooled to disk, nothing lost or doubled',
  () => {
    const mock = new MockUpstream();
    let dir: string;
    let store: Store;

    beforeAll(async () => {
      await mock.start();
      dir = mkdtempSync(join(os.tmpdir(), 'tally-spool-app-'));
      store = await createDuckDbStore({ path: join(dir, 'tally.duckdb') });
      await store.migrate();
    });
    afterAll(async () => {
      await store?.close();
      await mock.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    const spoolDir = () => join(dir, 'spool');
    async function start(s: Store): Promise<{ tally: TallyApp; base: string }> {
      const catalog = testCatalog();
      const tally = await buildApp({
        config: configSchema.parse({
          admin_key: ADMIN_KEY,
          log_level: 'silent',
          gateway: { providers: [{ id: 'openai', kind: 'openai', base_url: `${mock.url}/v1` }] },
        }),
        store: s,
        price: (i) => catalog.price(i),
        priceVersion: catalog.version,
        processMetrics: false,
        secretKey: randomBytes(32),
        spoolDir: spoolDir(),
      });
      return { tally, base: await tally.app.listen({ port: 0, host: '127.0.0.1' }) };
    }
    const chat = async (base: string, key: string) => {
      const res = await request(`${base}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Say a few words.' }] }),
      });
      expect(res.statusCode).toBe(200);
      await res.body.text();
    };
    const health = async (t: TallyApp, url = '/healthz') => {
      const r = await t.app.inject({ url });
      return { status: r.statusCode, body: r.json() };
    };
    const stored = async () => (await store.counts('default')).calls;

    it('keeps calls on disk while writes fail, reports it, and writes each once when the store is back', async () => {
      const { store: s, faults } = faulty(store);
      const { tally, base } = await start(s);
      const key = (
        await tally.app.inject({ method: 'POST', url: '/v1/keys', headers: auth, payload: { project: 'p' } })
      ).json().key;
      faults.writes = true;
      for (let i = 0; i < 6; i++) await chat(base, key);
      void tally.gateway.flush();
      // Three failed writes in a row (100 and 200 ms apart), then the batch waits on disk.
      await until(async () => (await health(tally)).body.checks.metering.spooled_calls === 6);
      const h = await health(tally);
      expect(h).toMatchObject({
        status: 200,
        body: {
          status: 'degraded',
          checks: { store: { ok: true }, metering: { ok: false, pending_calls: 0, dropped_calls: 0 } },
        },
      });
      expect(h.body.checks.metering.failed_writes).toBeGreaterThanOrEqual(3);
      expect((await health(tally, '/readyz')).status).toBe(200);
      const metrics = (await tally.app.inject({ url: '/metrics' })).body;
      expect(metrics).toContain('tally_metering_calls{state="spooled"} 6');
      expect(metrics).toContain('tally_metering_dropped_calls_total 0');

      // Two more, and a shutdown while the store is still down: they go to disk too.
      await chat(base, key);
      await chat(base, key);
      await tally.close();
      expect(readdirSync(spoolDir()).filter((f) => f.endsWith('.calls')).length).toBeGreaterThanOrEqual(2);
      expect(await stored()).toBe(0);

      // The next start, with the store back, writes what the spool holds.
      const next = await start(store);
      await until(async () => (await stored()) === 8);
      await until(async () => (await health(next.tally)).body.checks.metering.spooled_calls === 0);
      expect((await health(next.tally)).body).toMatchObject({
        status: 'ok',
        checks: { metering: { ok: true } },
      });
      expect(readdirSync(spoolDir())).toEqual([]);
      const calls = (await next.tally.app.inject({ url: '/v1/calls?limit=100', headers: auth })).json()
        .data as {
        id: string;
        cost_usd: string;
      }[];
      expect(new Set(calls.map((c) => c.id)).size).toBe(8);
      expect(calls.every((c) => Number(c.cost_usd) > 0)).toBe(true);
      await next.tally.close();
    });

    it('a batch that went in but was reported failed is written again from disk as duplicates, not twice', async () => {
      const before = await stored();
      const { store: s, faults } = faulty(store);
      const { tally, base } = await start(s);
      const key = (
        await tally.app.inject({ method: 'POST', url: '/v1/keys', headers: auth, payload: { project: 'q' } })
      ).json().key;
      faults.committedButFailed = true;
      for (let i = 0; i < 3; i++) await chat(base, key);
      void tally.gateway.flush();
      await until(async () => (await health(tally)).body.checks.metering.spooled_calls === 3);
      faults.committedButFailed = false;
      await until(async () => (await health(tally)).body.checks.metering.spooled_calls === 0);
      expect(await stored()).toBe(before + 3);
      await tally.close();
    });

    it('writes what a process of the version before left in the spool (its layout had no request_id)', async () => {
      const before = await stored();
      const calls = [sampleCall('spooled-before-1'), sampleCall('spooled-before-2', { project: 'a,\n"b"' })];
      // As that version wrote a chunk: its layout's name, then its lines (this layout's, less the
      // last six fields: no request_id, and none of the counts after it).
      const lines = calls
        .map((c) => {
          const line = callCsvLine(c);
          expect(line.endsWith(',,0,0,0,0,0\n')).toBe(true);
          return `${line.slice(0, -12)}\n`;
        })
        .join('');
      mkdirSync(spoolDir(), { recursive: true });
      writeFileSync(
        join(spoolDir(), '1764633600000-1-000001.calls'),
        `${JSON.stringify({ format: 'duckdb-csv-5f447b59d085' })}\n${lines}`,
      );
      const { tally } = await start(store);
      await until(async () => (await stored()) === before + 2);
      expect(await store.getCall('default', 'spooled-before-2')).toEqual(calls[1]);
      expect(readdirSync(spoolDir())).toEqual([]);
      await tally.close();
    });

    it('/readyz answers 503 while the store cannot be read; /healthz stays 200, degraded', async () => {
      const { store: s, faults } = faulty(store);
      const { tally } = await start(s);
      faults.reads = true;
      const ready = await health(tally, '/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body.checks.store).toMatchObject({ ok: false, error: 'store unreadable' });
      expect(await health(tally)).toMatchObject({ status: 200, body: { status: 'degraded' } });
      faults.reads = false;
      expect((await health(tally, '/readyz')).status).toBe(200);
      await tally.close();
    });
  },
);
