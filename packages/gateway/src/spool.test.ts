import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import type { CallRecord } from '@tally/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RecordChunk } from './sink.js';
import { ChunkSpool, type SpoolCodec } from './spool.js';

const codec: SpoolCodec<RecordChunk> = {
  format: 'ids-v1',
  bytes: (c) => Buffer.from(c.records.map((r) => r.id).join(',')),
  restore: (bytes, rows) => {
    const c = new RecordChunk();
    const ids = bytes.toString('utf8').split(',');
    if (ids.length !== rows) throw new Error(`expected ${rows} ids, read ${ids.length}`);
    for (const id of ids) c.add({ id } as CallRecord);
    return c;
  },
};
const chunk = (...ids: string[]) => {
  const c = new RecordChunk();
  for (const id of ids) c.add({ id } as CallRecord);
  return c;
};
const ids = (c: RecordChunk) => c.records.map((r) => r.id);
/** The pid of a process that has exited. */
const deadPid = () => spawnSync(process.execPath, ['-e', '0']).pid!;

describe('ChunkSpool', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(os.tmpdir(), 'tally-spool-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps chunks as files with a header, and gives them back oldest first, once', async () => {
    const spool = new ChunkSpool(dir, codec);
    await spool.save(chunk('a', 'b'));
    await spool.save(chunk('c'));
    expect(spool.rows).toBe(3);
    const [first] = readdirSync(dir).sort();
    expect(readFileSync(join(dir, first!), 'utf8')).toBe('{"format":"ids-v1","rows":2}\na,b');

    // Another process reading the directory finds both.
    const other = new ChunkSpool(dir, codec);
    await other.scan();
    expect(other.rows).toBe(3);

    const t1 = await spool.take();
    expect(ids(t1!.chunk)).toEqual(['a', 'b']);
    // While this process holds it, the other cannot take it: it gets the next one.
    const t2 = await other.take();
    expect(ids(t2!.chunk)).toEqual(['c']);
    await spool.done(t1!.name);
    await other.failed(t2!.name);
    expect(spool.rows).toBe(1); // this process still counts the file the other put back
    expect(readdirSync(dir)).toHaveLength(1);
    // A failed file is not due again for a second.
    expect(await other.take()).toBeNull();
  });

  it('takes back the claims of processes that died, leaves those of live ones, and clears half-written files', async () => {
    const dead = deadPid();
    writeFileSync(join(dir, `1-${dead}-000001.calls.${dead}.claim`), '{"format":"ids-v1","rows":1}\nx');
    writeFileSync(
      join(dir, `2-${process.ppid}-000001.calls.${process.ppid}.claim`),
      '{"format":"ids-v1","rows":1}\ny',
    );
    writeFileSync(join(dir, `3-${dead}-000002.calls.tmp`), '{"format":"ids-v1","rows":1}\n');
    writeFileSync(join(dir, '4-1-000001.calls'), '{"format":"other","rows":1}\nz');
    const spool = new ChunkSpool(dir, codec);
    await spool.scan();
    expect(spool.rows).toBe(1);
    expect(readdirSync(dir).sort()).toEqual([
      `1-${dead}-000001.calls`,
      `2-${process.ppid}-000001.calls.${process.ppid}.claim`,
      '4-1-000001.calls',
    ]);
    const t = await spool.take();
    expect(ids(t!.chunk)).toEqual(['x']);
    await spool.done(t!.name);
    // Nothing else is this spool's: the other format stays as it is.
    expect(await spool.take()).toBeNull();
    expect(readFileSync(join(dir, '4-1-000001.calls'), 'utf8')).toContain('"other"');
  });

  it('leaves a file it cannot read where it is, and does not offer it again', async () => {
    writeFileSync(join(dir, '1-1-000001.calls'), '{"format":"ids-v1","rows":5}\na,b');
    const spool = new ChunkSpool(dir, codec);
    await spool.scan();
    expect(await spool.take()).toBeNull();
    expect(await spool.take()).toBeNull();
    expect(readdirSync(dir)).toEqual(['1-1-000001.calls']);
    expect(spool.rows).toBe(5);
  });
});
