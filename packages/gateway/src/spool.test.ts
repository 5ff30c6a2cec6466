import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import type { CallRecord } from '@tally/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RecordChunk } from './sink.js';
import { ChunkSpool } from './spool.js';
import { idChunk, idLines } from './testing/id-lines.js';

const codec = idLines;
const chunk = idChunk;
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
    expect(readFileSync(join(dir, first!), 'utf8')).toBe('{"format":"ids-v1"}\na\nb\n');

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

  it('refuses a file past its bound with spool_full, and has room again once one is written', async () => {
    const spool = new ChunkSpool(dir, codec, { maxBytes: 30 });
    await spool.save(chunk('a', 'b'));
    expect(spool.bytes).toBe(24);
    await expect(spool.save(chunk('c'))).rejects.toMatchObject({ code: 'spool_full' });
    expect(spool.rows).toBe(2);
    expect(readdirSync(dir)).toHaveLength(1);
    const t = await spool.take();
    await spool.done(t!.name);
    expect(spool.bytes).toBe(0);
    await spool.save(chunk('c'));
    expect(spool.rows).toBe(1);
    // Another process counts the files it finds.
    const other = new ChunkSpool(dir, codec);
    await other.scan();
    expect(other.bytes).toBe(22);
  });

  it('takes back the claims of processes that died, leaves those of live ones, and clears half-written files', async () => {
    const dead = deadPid();
    // A journal of a process that died in the middle of a write: its whole lines count.
    writeFileSync(join(dir, `1-${dead}-000001.calls.${dead}.aa.claim`), '{"format":"ids-v1"}\nx\nx2\nx3-cut');
    writeFileSync(
      join(dir, `2-${process.ppid}-000001.calls.${process.ppid}.bb.claim`),
      '{"format":"ids-v1"}\ny\n',
    );
    writeFileSync(join(dir, `3-${dead}-000002.calls.tmp`), '{"format":"ids-v1"}\n');
    writeFileSync(join(dir, '4-1-000001.calls'), '{"format":"other"}\nz\n');
    // A journal made just before a crash, with no call in it yet.
    writeFileSync(join(dir, `5-${dead}-000003.calls.${dead}.aa.claim`), '{"format":"ids-v1"}\n');
    // A process that had this process's pid before it (a container's pid 1, restarted).
    writeFileSync(
      join(dir, `6-${process.pid}-000001.calls.${process.pid}.cc.claim`),
      '{"format":"ids-v1"}\nw\n',
    );
    const spool = new ChunkSpool(dir, codec);
    await spool.scan();
    expect(spool.rows).toBe(3);
    expect(readdirSync(dir).sort()).toEqual([
      `1-${dead}-000001.calls`,
      `2-${process.ppid}-000001.calls.${process.ppid}.bb.claim`,
      '4-1-000001.calls',
      `6-${process.pid}-000001.calls`,
    ]);
    const t = await spool.take();
    expect(ids(t!.chunk)).toEqual(['x', 'x2']);
    await spool.done(t!.name);
    expect(ids((await spool.take())!.chunk)).toEqual(['w']);
    // Nothing else is this spool's: the other format stays as it is.
    expect(await spool.take()).toBeNull();
    expect(readFileSync(join(dir, '4-1-000001.calls'), 'utf8')).toContain('"other"');
  });

  it('leaves a file it cannot read where it is', async () => {
    writeFileSync(join(dir, '1-1-000001.calls'), 'not a header');
    const spool = new ChunkSpool(dir, codec);
    await spool.scan();
    expect(await spool.take()).toBeNull();
    expect(readdirSync(dir)).toEqual(['1-1-000001.calls']);
    expect(spool.rows).toBe(0);
  });

  it('mirrors a chunk as it fills to a file it holds, which goes when written and joins the spool when not', async () => {
    const spool = new ChunkSpool(dir, codec);
    const c = chunk('a');
    const j = spool.mirror(null, c)!;
    c.add({ id: 'b' } as CallRecord);
    expect(spool.mirror(j, c)).toBe(j);
    await j.settled();
    expect(j.path).toMatch(new RegExp(`\\.calls\\.${process.pid}\\.[0-9a-f]+\\.claim$`));
    expect(readFileSync(j.path, 'utf8')).toBe('{"format":"ids-v1"}\na\nb\n');
    // Another process does not take a live process's journal.
    const other = new ChunkSpool(dir, codec);
    await other.scan();
    expect(other.rows).toBe(0);
    await spool.discard(j);
    expect(readdirSync(dir)).toEqual([]);

    const d = chunk('c');
    const k = spool.mirror(null, d)!;
    d.add({ id: 'd' } as CallRecord);
    expect(await spool.release(k, d)).toBe(true);
    expect(spool.rows).toBe(2);
    expect(readdirSync(dir)).toEqual([k.name]);
    const t = await spool.take();
    expect(ids(t!.chunk)).toEqual(['c', 'd']);
  });

  it('counts journals against its bound: a chunk past it is not mirrored until there is room', async () => {
    // A file of two ids is 20 bytes of header and 6 of ids: room for two of them.
    const spool = new ChunkSpool(dir, codec, { maxBytes: 54 });
    const a = chunk('a1', 'a2');
    const b = chunk('b1', 'b2');
    const c = chunk('c1', 'c2');
    const ja = spool.mirror(null, a)!;
    const jb = spool.mirror(null, b)!;
    await Promise.all([ja.settled(), jb.settled()]);
    expect(spool.journaled).toBe(52);
    // No room for a third: no file is made for it.
    expect(spool.mirror(null, c)).toBeNull();
    expect(readdirSync(dir).sort()).toEqual([ja.path, jb.path].map((p) => p.split('/').at(-1)).sort());
    // A journal that would grow past the bound goes too.
    a.add({ id: 'a3' } as CallRecord);
    expect(spool.mirror(ja, a)).toBeNull();
    expect(spool.journaled).toBe(26);
    // A journal whose chunk cannot be written joins the spool in its own place.
    expect(await spool.release(jb, b)).toBe(true);
    expect([spool.bytes, spool.journaled]).toEqual([26, 0]);
    const jd = spool.mirror(null, c)!;
    await jd.settled();
    expect(spool.journaled).toBe(26);
    await expect(spool.save(chunk('e1', 'e2'))).rejects.toMatchObject({ code: 'spool_full' });
    await spool.discard(jd);
    expect(spool.journaled).toBe(0);
    await spool.save(chunk('e1', 'e2'));
    expect(spool.bytes).toBe(52);
  });
});
