import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import type { CallRecord } from '@tally/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CALL_CSV_COLUMNS, callCsvLine, EARLIER_CALL_CSV } from '../call-csv.js';
import { makeBareCall, makeCall, makeTask, newTenant, T0 } from '../contract/fixtures.js';
import { runStoreContract } from '../contract.js';
import { checkpointThresholdFor, parseSize } from '../memory-limit.js';
import { DUCKDB_DIALECT, MIGRATIONS, MIGRATIONS_TABLE_SQL, migrationSql } from '../schema.js';
import type { Store } from '../store.js';
import { DuckDbDatabase } from './duckdb-database.js';
import { DuckDbIngestWriter } from './duckdb-ingest.js';
import { createDuckDbStore } from './duckdb-store.js';

runStoreContract('duckdb', () => createDuckDbStore({ path: ':memory:' }));

/** A database at `path` as schema `version` left it, open. */
async function databaseAt(path: string, version: number) {
  const instance = await DuckDBInstance.create(path);
  const conn = await instance.connect();
  await conn.run(MIGRATIONS_TABLE_SQL);
  for (const m of MIGRATIONS.filter((m) => m.version <= version)) {
    for (const sql of migrationSql(m, DUCKDB_DIALECT)) await conn.run(sql);
    await conn.run(`INSERT INTO schema_migrations VALUES (${m.version}, '${m.name}', now())`);
  }
  return { instance, conn };
}

describe('DuckDB store on a file', () => {
  let dir: string;
  const open: Store[] = [];
  const openStore = async (path: string): Promise<Store> => {
    const store = await createDuckDbStore({ path });
    open.push(store);
    await store.migrate();
    return store;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tally-duckdb-'));
  });
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates the folder, and keeps ingested rows after close and reopen', async () => {
    const path = join(dir, 'nested', 'deeper', 'tally.duckdb');
    const tenant = newTenant();
    const first = await openStore(path);
    expect(first.info).toMatchObject({ kind: 'duckdb', location: path });
    const calls = Array.from({ length: 700 }, (_, i) => makeCall(tenant, `c-${i}`, { time: T0 + i }));
    expect(await first.ingest({ calls, tasks: [makeTask(tenant, 'e1')] })).toEqual({
      inserted: 701,
      duplicates: 0,
    });
    await first.close();

    const second = await openStore(path);
    expect(await second.counts(tenant)).toEqual({ calls: 700, task_events: 1 });
    expect(await second.getCall(tenant, 'c-42')).toEqual(calls[42]);
    // Idempotency holds across restarts.
    expect(await second.ingest({ calls: calls.slice(0, 10), tasks: [] })).toEqual({
      inserted: 0,
      duplicates: 10,
    });
  });

  it('has every acknowledged row in its files before close (a crash loses nothing)', async () => {
    const path = join(dir, 'tally.duckdb');
    const tenant = newTenant();
    const store = await openStore(path);
    await store.ingest({ calls: [makeCall(tenant, 'c1'), makeCall(tenant, 'c2')], tasks: [] });
    // Copy the database and its write-ahead log as a crash would leave them: never closed.
    const crashed = join(dir, 'crashed.duckdb');
    copyFileSync(path, crashed);
    if (existsSync(`${path}.wal`)) copyFileSync(`${path}.wal`, `${crashed}.wal`);
    const recovered = await openStore(crashed);
    expect(await recovered.counts(tenant)).toEqual({ calls: 2, task_events: 0 });
  });

  it('reopens a database DuckDB has invalidated, keeping what was committed', async () => {
    const path = join(dir, 'tally.duckdb');
    const tenant = newTenant();
    await (await openStore(path)).close();
    open.length = 0;
    const db = await DuckDbDatabase.open(path);
    try {
      const writer = new DuckDbIngestWriter(db);
      db.onReopen = () => writer.reset();
      const count = () =>
        db.read(async (c) => Number((await c.runAndReadAll('SELECT count(*) FROM calls')).getRows()[0]![0]));
      expect(await writer.ingest({ calls: [makeCall(tenant, 'a')], tasks: [] })).toEqual({
        inserted: 1,
        duplicates: 0,
      });
      // The error DuckDB gives for every statement once it has invalidated the database (after a
      // commit that ran out of memory, for one). The write fails; the database is reopened.
      const invalidated =
        'FATAL Error: Failed: database has been invalidated because of a previous fatal error.';
      const read = count();
      await expect(
        db.write(async () => {
          throw new Error(invalidated);
        }),
      ).rejects.toThrow(/invalidated/);
      expect(db.reopened).toBe(1);
      expect(await read).toBe(1);
      // Writes work again, the ingest writer's appenders made anew on the new connection.
      expect(
        await writer.ingest({ calls: [makeCall(tenant, 'a'), makeCall(tenant, 'b')], tasks: [] }),
      ).toEqual({
        inserted: 1,
        duplicates: 1,
      });
      expect(await count()).toBe(2);
      // Any other error leaves the database as it is.
      await expect(
        db.write(async () => {
          throw new Error('Constraint Error: something else');
        }),
      ).rejects.toThrow(/something else/);
      expect(db.reopened).toBe(1);
      // A connection stuck in a transaction its ROLLBACK did not end is reopened too.
      await expect(
        db.write(async () => {
          throw new Error('TransactionContext Error: Current transaction is aborted (please ROLLBACK)');
        }),
      ).rejects.toThrow(/aborted/);
      expect(db.reopened).toBe(2);
      // And a caller that saw a stale index asks for it.
      await db.recover();
      expect(db.reopened).toBe(3);
      expect(await count()).toBe(2);
    } finally {
      await db.close(() => undefined);
    }
  });

  it('refuses to open a file that is already open in this process', async () => {
    const path = join(dir, 'tally.duckdb');
    await openStore(path);
    await expect(createDuckDbStore({ path })).rejects.toMatchObject({ code: 'store_unavailable' });
  });
});

describe('DuckDB store under a memory limit', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tally-duckdb-limit-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  // With the checkpoint threshold far above the limit, the rows not yet checkpointed outgrow the
  // 64 MB, and DuckDB must spill them to temporary files while each write still finds room.
  const limited = (name: string) =>
    createDuckDbStore({ path: join(dir, name), memoryLimit: '64MB', checkpointThreshold: '1GB' });
  const BATCHES = 30;
  const ROWS = 5000;
  const callsOf = (tenant: string, b: number) =>
    Array.from({ length: ROWS }, (_, i) =>
      makeCall(tenant, `c-${b}-${i}`, { time: T0 + b * ROWS + i, use_case: null, task_id: null }),
    );

  it('keeps taking metered batches past the limit, each call stored once', async () => {
    const store = await limited('metering.duckdb');
    await store.migrate();
    try {
      const tenant = newTenant();
      for (let b = 0; b < BATCHES; b++) {
        const batch = store.newCallBatch();
        for (const c of callsOf(tenant, b)) batch.add(c);
        expect(await store.appendCallBatch(batch)).toEqual({ inserted: ROWS, duplicates: 0 });
      }
      expect(await store.counts(tenant)).toEqual({ calls: BATCHES * ROWS, task_events: 0 });
      expect(await store.getCall(tenant, 'c-29-4999')).toEqual(callsOf(tenant, 29)[4999]);
      // The rows past the limit went to temporary files, and what stays in memory is under it.
      const memory = await store.memory();
      expect(memory.limitBytes).toBeGreaterThan(60e6);
      expect(memory.limitBytes).toBeLessThanOrEqual(64e6);
      expect(memory.spilledBytes).toBeGreaterThan(0);
      expect(memory.usedBytes).toBeLessThanOrEqual(memory.limitBytes!);
      // A batch sent again is still recognised as stored.
      const again = store.newCallBatch();
      for (const c of callsOf(tenant, 3)) again.add(c);
      expect(await store.appendCallBatch(again)).toEqual({ inserted: 0, duplicates: ROWS });
    } finally {
      await store.close();
    }
  });

  it('keeps taking ingested batches past the limit, each event stored once', async () => {
    const store = await limited('ingest.duckdb');
    await store.migrate();
    try {
      const tenant = newTenant();
      for (let b = 0; b < BATCHES; b++) {
        expect(await store.ingest({ calls: callsOf(tenant, b), tasks: [] })).toEqual({
          inserted: ROWS,
          duplicates: 0,
        });
      }
      expect(await store.counts(tenant)).toEqual({ calls: BATCHES * ROWS, task_events: 0 });
      expect(await store.ingest({ calls: callsOf(tenant, 7), tasks: [] })).toEqual({
        inserted: 0,
        duplicates: ROWS,
      });
    } finally {
      await store.close();
    }
  });

  it('refuses a limit too small to write under', async () => {
    for (const memoryLimit of ['32MB', 'lots']) {
      await expect(createDuckDbStore({ path: join(dir, 'small.duckdb'), memoryLimit })).rejects.toMatchObject(
        {
          code: 'config_invalid',
        },
      );
    }
  });

  it('checkpoints at a quarter of the limit, within 4 MB and 256 MB', () => {
    expect(parseSize('512MB')).toBe(512e6);
    expect(parseSize('1 GiB')).toBe(2 ** 30);
    expect(parseSize('64mb')).toBe(64e6);
    expect(parseSize('lots')).toBeNull();
    expect(checkpointThresholdFor('1GiB')).toBe('256MB');
    expect(checkpointThresholdFor('200MB')).toBe('47MB');
    expect(checkpointThresholdFor('8MB')).toBe('4MB');
    expect(checkpointThresholdFor('64GB')).toBe('256MB');
    expect(checkpointThresholdFor(undefined)).toBe('64MB');
    expect(checkpointThresholdFor('lots')).toBe('64MB');
  });
});

describe('DuckDB metering append', () => {
  it('writes batches of text that CSV could take for its own syntax, and counts a retried batch once', async () => {
    const store = await createDuckDbStore({ path: ':memory:' });
    await store.migrate();
    const tenant = newTenant();
    const calls = [
      makeCall(tenant, 'a,"1"\n', {
        project: '',
        team: ' a, b ',
        user: 'line one\nline "two"\r\n',
        key_id: '""',
        tags: { 'a,b': 'x\ny', q: '"', u: 'sü😀' },
        error_type: '\\N',
        latency_ms: 0.000123,
        cost_list_nano: 2n ** 62n,
        request_id: 'r "1",\n',
      }),
      makeBareCall(tenant, 'b'),
    ];
    // Through a batch, as the metering sink writes them.
    const batch = store.newCallBatch();
    for (const c of calls) batch.add(c);
    expect(await store.appendCallBatch(batch)).toEqual({ inserted: 2, duplicates: 0 });
    expect(await store.getCall(tenant, 'a,"1"\n')).toEqual(calls[0]);
    expect(await store.getCall(tenant, 'b')).toEqual(calls[1]);
    // A batch written again (its first write committed, its answer lost), and one with an id
    // twice: only the new ids are stored, once each.
    expect(await store.appendCallBatch(batch)).toEqual({ inserted: 0, duplicates: 2 });
    const again = store.newCallBatch();
    for (const c of [makeCall(tenant, 'c'), calls[1]!, makeCall(tenant, 'd'), makeCall(tenant, 'd')])
      again.add(c);
    expect(await store.appendCallBatch(again)).toEqual({ inserted: 2, duplicates: 2 });
    expect((await store.counts(tenant)).calls).toBe(4);
    expect(await store.getCall(tenant, 'd')).toEqual(makeCall(tenant, 'd'));
    await expect(
      store.appendCallBatch({ format: 'x', rows: 0, bytes: Buffer.alloc(0), add: () => undefined }),
    ).rejects.toMatchObject({ code: 'invalid_request' });
    // A batch read back from its bytes (as the metering's spool keeps it) goes in like the first,
    // counting what is already stored as duplicates; it marks the rollups of its tasks.
    const kept = store.newCallBatch();
    for (const c of [makeCall(tenant, 'e', { use_case: 'uc', task_id: 't1' }), calls[0]!]) kept.add(c);
    // A copy cut off in the middle of a third call (a crash during a write) holds the first two.
    const cut = store.newCallBatch();
    cut.add(makeCall(tenant, 'f', { project: 'a "quoted"\nline' }));
    const torn = Buffer.concat([kept.bytes, cut.bytes.subarray(0, cut.bytes.indexOf(10) - 3)]);
    const back = store.restoreCallBatch(kept.format, torn);
    expect(back.rows).toBe(2);
    expect(await store.appendCallBatch(back)).toEqual({ inserted: 1, duplicates: 1 });
    expect(await store.getCall(tenant, 'e')).toEqual(
      makeCall(tenant, 'e', { use_case: 'uc', task_id: 't1' }),
    );
    expect(await store.getCall(tenant, 'f')).toBeNull();
    // Whole, the quoted newline is the field's own.
    const whole = store.restoreCallBatch(cut.format, cut.bytes);
    expect(whole.rows).toBe(1);
    expect(await store.appendCallBatch(whole)).toEqual({ inserted: 1, duplicates: 0 });
    expect((await store.getCall(tenant, 'f'))?.project).toBe('a "quoted"\nline');
    expect(() => store.restoreCallBatch('duckdb-csv-000000000000', kept.bytes)).toThrow(
      expect.objectContaining({ code: 'invalid_request' }),
    );
    await store.close();
  });
});

describe('DuckDB calls of an earlier version', () => {
  // The layouts of metered calls before request_id, before file_searches (after request_id),
  // before code_containers, before image_generations and before characters and audio_seconds: a
  // spool or a replica of those versions.
  const BEFORE_REQUEST_ID = 'duckdb-csv-5f447b59d085';
  const BEFORE_FILE_SEARCHES = 'duckdb-csv-10ba32b3891f';
  const BEFORE_CODE_CONTAINERS = 'duckdb-csv-9a8f998f71ec';
  const BEFORE_IMAGE_GENERATIONS = 'duckdb-csv-a55725ae5367';
  const BEFORE_CHARACTERS = 'duckdb-csv-0bb5241572a5';
  /** A call as a version `dropped` fields ago wrote it: this version's line without them. */
  const earlierLine = (c: CallRecord, dropped = 6) => {
    const line = callCsvLine(c);
    const fields = line.slice(0, -1).split(',');
    return `${fields.slice(0, -dropped).join(',')}\n`;
  };
  const earlier = (c: CallRecord, dropped: number): CallRecord => ({
    ...c,
    request_id: dropped === 6 ? null : c.request_id,
    tokens: {
      ...c.tokens,
      file_searches: dropped >= 5 ? 0 : c.tokens.file_searches,
      code_containers: dropped >= 4 ? 0 : c.tokens.code_containers,
      image_generations: dropped >= 3 ? 0 : c.tokens.image_generations,
      characters: 0,
      audio_seconds: 0,
    },
  });

  it('reads metering batches of the layouts before request_id, file_searches, code_containers, image_generations and characters', async () => {
    const store = await createDuckDbStore({ path: ':memory:' });
    await store.migrate();
    try {
      expect(Object.keys(EARLIER_CALL_CSV)).toEqual([
        BEFORE_REQUEST_ID,
        BEFORE_FILE_SEARCHES,
        BEFORE_CODE_CONTAINERS,
        BEFORE_IMAGE_GENERATIONS,
        BEFORE_CHARACTERS,
      ]);
      for (const [format, dropped, checked] of [
        [BEFORE_REQUEST_ID, 6, false],
        [BEFORE_FILE_SEARCHES, 5, false],
        [BEFORE_CODE_CONTAINERS, 4, false],
        [BEFORE_IMAGE_GENERATIONS, 3, false],
        [BEFORE_CHARACTERS, 2, false],
        // A replica's batch, read as text and checked field by field.
        [BEFORE_REQUEST_ID, 6, true],
        [BEFORE_FILE_SEARCHES, 5, true],
        [BEFORE_CODE_CONTAINERS, 4, true],
        [BEFORE_IMAGE_GENERATIONS, 3, true],
        [BEFORE_CHARACTERS, 2, true],
      ] as const) {
        const tenant = newTenant();
        const calls = [
          makeCall(tenant, 'old-1', {
            project: 'two\nlines, "quoted"',
            request_id: 'req-9',
            tokens: {
              ...makeCall(tenant, 'x').tokens,
              file_searches: 3,
              code_containers: 2,
              image_generations: 1,
              characters: 40,
              audio_seconds: 9,
            },
          }),
          makeBareCall(tenant, 'old-2'),
        ];
        const bytes = Buffer.from(calls.map((c) => earlierLine(c, dropped)).join(''), 'utf8');
        const batch = store.restoreCallBatch(format, bytes);
        expect(batch.rows).toBe(2);
        expect(await store.appendCallBatch(batch, checked ? { tenant } : undefined)).toEqual({
          inserted: 2,
          duplicates: 0,
        });
        expect(await store.getCall(tenant, 'old-1')).toEqual(earlier(calls[0]!, dropped));
        expect(await store.getCall(tenant, 'old-2')).toEqual(earlier(calls[1]!, dropped));
      }
    } finally {
      await store.close();
    }
  });

  it('upgrades a database of schema 6: its keys read with no tags and its budgets count every model', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tally-duckdb-v6-'));
    const path = join(dir, 'tally.duckdb');
    try {
      const { instance, conn } = await databaseAt(path, 6);
      await conn.run(
        `INSERT INTO api_keys (tenant, id, hash, prefix, role, models, created_at)
         VALUES ('acme', 'k-old', '${'a'.repeat(64)}', 'tk-old', 'virtual', '[]', now())`,
      );
      await conn.run(
        `INSERT INTO budgets (tenant, id, scope, subject, limit_nano, period, time_zone, thresholds, action, created_at)
         VALUES ('acme', 'b-old', 'tenant', 'acme', 1000, 'month', 'UTC', '[1]', 'block', now())`,
      );
      conn.closeSync();
      instance.closeSync();
      const store = await createDuckDbStore({ path });
      try {
        await store.migrate();
        expect(await store.findKeyByHash('a'.repeat(64))).toMatchObject({ id: 'k-old', tags: {} });
        expect(await store.updateKey('acme', 'k-old', { tags: { app: 'checkout' } })).toMatchObject({
          tags: { app: 'checkout' },
        });
        // And its budgets, made before schema 8, count every model.
        expect(await store.listBudgets('acme')).toMatchObject([{ id: 'b-old', models: [] }]);
      } finally {
        await store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('upgrades a database of schema 4: its calls read without a request id, new ones with it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tally-duckdb-v4-'));
    const path = join(dir, 'tally.duckdb');
    try {
      // The database as version 4 left it, with one call in it.
      const { instance, conn } = await databaseAt(path, 4);
      const tenant = newTenant();
      const before = makeCall(tenant, 'v4-call', { request_id: null });
      const old = join(dir, 'v4.csv');
      writeFileSync(old, earlierLine(before));
      const columns = CALL_CSV_COLUMNS.slice(0, -6);
      const types = columns.map(([n, t]) => `"${n}": '${t}'`).join(', ');
      const select = columns
        .map(([n]) =>
          n === 'time' ? 'epoch_ms(time)' : n === 'user' ? '"user"' : n === 'tags' ? 'tags::JSON' : n,
        )
        .join(', ');
      await conn.run(
        `INSERT INTO calls SELECT ${select} FROM read_csv('${old}', header = false, quote = '"', escape = '"', columns = {${types}})`,
      );
      conn.closeSync();
      instance.closeSync();

      const store = await createDuckDbStore({ path });
      try {
        await store.migrate();
        expect(await store.getCall(tenant, 'v4-call')).toEqual(before);
        // Both write paths take the new column: ingest (the appender) and a metering batch.
        const ingested = makeCall(tenant, 'v5-ingest', { request_id: 'req-1' });
        expect(await store.ingest({ calls: [ingested], tasks: [] })).toEqual({ inserted: 1, duplicates: 0 });
        const batch = store.newCallBatch();
        const metered = makeCall(tenant, 'v5-metered', { request_id: 'req-1' });
        batch.add(metered);
        expect(await store.appendCallBatch(batch)).toEqual({ inserted: 1, duplicates: 0 });
        const page = await store.listCalls({ tenant, request_id: 'req-1', limit: 10 });
        expect(page.rows.map((c) => c.id).sort()).toEqual(['v5-ingest', 'v5-metered']);
        expect(await store.getCall(tenant, 'v5-metered')).toEqual(metered);
      } finally {
        await store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('DuckDB metering append of values no column takes', () => {
  it('stores a batch holding a lone surrogate in its tags and counts out of range, with the rest of it', async () => {
    const store = await createDuckDbStore({ path: ':memory:' });
    await store.migrate();
    const tenant = newTenant();
    const odd = makeCall(tenant, 'odd', { tags: { a: '\ud800', '\udc00b': 'fine 😀' } });
    odd.tokens = { ...odd.tokens, input: 1e300, output: 10.6, cache_read: -3 };
    const batch = store.newCallBatch();
    for (const c of [makeCall(tenant, 'before'), odd, makeCall(tenant, 'after')]) batch.add(c);
    expect(await store.appendCallBatch(batch)).toEqual({ inserted: 3, duplicates: 0 });
    const back = await store.getCall(tenant, 'odd');
    expect(back?.tags).toEqual({ a: '\ufffd', '\ufffdb': 'fine 😀' });
    expect(back?.tokens).toMatchObject({ input: 2_147_483_647, output: 11, cache_read: 0 });
    expect((await store.counts(tenant)).calls).toBe(3);
    await store.close();
  });
});

describe('DuckDB group commit', () => {
  it('fails only the bad batch among batches written together', async () => {
    const store = await createDuckDbStore({ path: ':memory:' });
    await store.migrate();
    try {
      const tenant = newTenant();
      const good = (id: string) => store.ingest({ calls: [makeCall(tenant, id)], tasks: [] });
      const bad = store.ingest({ calls: [makeCall(tenant, 'bad', { time: Number.NaN })], tasks: [] });
      const results = await Promise.allSettled([good('a'), bad, good('b'), good('c')]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
      expect(await store.counts(tenant)).toEqual({ calls: 3, task_events: 0 });
    } finally {
      await store.close();
    }
  });
});

describe('DuckDB freed memory', () => {
  const threshold = async (db: DuckDbDatabase) =>
    db.read(async (conn) => {
      const r = await conn.runAndReadAll(
        "SELECT current_setting('allocator_bulk_deallocation_flush_threshold') AS v",
      );
      return String(r.getRowObjects()[0]?.['v']);
    });

  it('is handed back after work, at most every few seconds, and the threshold is set back', async () => {
    const db = await DuckDbDatabase.open(':memory:');
    try {
      expect(db.released).toBe(0);
      await db.write((conn) => conn.run('CREATE TABLE t AS SELECT range AS x FROM range(100000)'));
      // The first release follows the first work at once.
      await expect.poll(() => db.released, { timeout: 2000 }).toBe(1);
      expect(await threshold(db)).toBe('512.0 MiB');
      // More work within RELEASE_EVERY_MS waits for it; the reads and writes meanwhile are served.
      await db.write((conn) => conn.run('INSERT INTO t SELECT range FROM range(1000)'));
      const rows = await db.read(async (conn) =>
        (await conn.runAndReadAll('SELECT count(*) AS n FROM t')).getRowObjects(),
      );
      expect(Number(rows[0]?.['n'])).toBe(101000);
      await new Promise((r) => setTimeout(r, 300));
      expect(db.released).toBe(1);
      // Released by hand, after the writes queued before it.
      const write = db.write((conn) => conn.run('INSERT INTO t SELECT range FROM range(10)'));
      await db.releaseFreedMemory();
      await write;
      expect(db.released).toBe(2);
      expect(await threshold(db)).toBe('512.0 MiB');
    } finally {
      await db.close(() => undefined);
    }
    // Closed, it neither releases nor keeps a timer.
    await db.releaseFreedMemory();
    expect(db.released).toBe(2);
  });
});
