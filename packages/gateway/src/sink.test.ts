import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import type { CallRecord } from '@tally/core';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BatchingSink, ChunkPartlyWritten, RecordChunk, recordSink } from './sink.js';
import { ChunkSpool } from './spool.js';
import { idChunk, idLines } from './testing/id-lines.js';

const rec = (i: number) => ({ id: `c-${i}` }) as CallRecord;

describe('BatchingSink', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('writes full batches at once and partial ones after the interval, never back to back', async () => {
    const batches: string[][] = [];
    let release: (() => void) | null = null;
    const sink = recordSink({
      maxBatch: 4,
      intervalMs: 100,
      write: (calls) => {
        batches.push(calls.map((c) => c.id));
        return new Promise<void>((r) => {
          release = r;
        });
      },
    });
    for (let i = 0; i < 4; i++) sink.write(rec(i));
    await vi.advanceTimersByTimeAsync(0);
    expect(batches).toEqual([['c-0', 'c-1', 'c-2', 'c-3']]);
    // Two more arrive while the write is under way: they wait for the interval after it ends.
    sink.write(rec(4));
    sink.write(rec(5));
    release!();
    await vi.advanceTimersByTimeAsync(50);
    expect(batches).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(60);
    expect(batches[1]).toEqual(['c-4', 'c-5']);
    release!();
    await vi.advanceTimersByTimeAsync(0);
    // A full batch that built up during a write goes as soon as the write ends.
    for (let i = 6; i < 10; i++) sink.write(rec(i));
    await vi.advanceTimersByTimeAsync(0);
    expect(batches[2]).toEqual(['c-6', 'c-7', 'c-8', 'c-9']);
    for (let i = 10; i < 14; i++) sink.write(rec(i));
    release!();
    await vi.advanceTimersByTimeAsync(0);
    expect(batches[3]).toEqual(['c-10', 'c-11', 'c-12', 'c-13']);
    release!();
    await sink.close();
  });

  it('keeps a failed batch in order and retries it with backoff; close writes what is left', async () => {
    const written: string[] = [];
    let fail = 2;
    const errors: number[] = [];
    const sink = recordSink({
      maxBatch: 3,
      intervalMs: 10,
      write: async (calls) => {
        if (fail-- > 0) throw new Error('store down');
        written.push(...calls.map((c) => c.id));
      },
      onError: (_err, pending) => errors.push(pending),
    });
    for (let i = 0; i < 5; i++) sink.write(rec(i));
    await vi.advanceTimersByTimeAsync(0); // first try fails
    await vi.advanceTimersByTimeAsync(100); // second try, 100 ms later, fails
    expect(written).toEqual([]);
    expect(errors).toEqual([5, 5]);
    await vi.advanceTimersByTimeAsync(200); // third try, 200 ms later, succeeds
    expect(written).toEqual(['c-0', 'c-1', 'c-2']);
    await sink.close();
    expect(written).toEqual(['c-0', 'c-1', 'c-2', 'c-3', 'c-4']);
    expect(sink.pending).toBe(0);
  });

  it('after a write that stored part of a chunk, tries again with only the rest, first in line', async () => {
    const tries: string[][] = [];
    const errors: number[] = [];
    const sink = new BatchingSink({
      newChunk: () => new RecordChunk(),
      maxBatch: 3,
      intervalMs: 10,
      write: async (c) => {
        tries.push(c.records.map((r) => r.id));
        const refused = c.records.filter((r) => r.id === 'c-1' && tries.length === 1);
        if (refused.length > 0) {
          const rest = new RecordChunk();
          for (const r of refused) rest.add(r);
          throw new ChunkPartlyWritten(rest, 'refused c-1');
        }
      },
      onError: (_err, pending) => errors.push(pending),
    });
    for (let i = 0; i < 4; i++) sink.write(rec(i));
    await vi.advanceTimersByTimeAsync(0);
    // One call left of the chunk, and the one waiting behind it.
    expect(errors).toEqual([2]);
    await vi.advanceTimersByTimeAsync(100);
    expect(tries).toEqual([['c-0', 'c-1', 'c-2'], ['c-1']]);
    await sink.close();
    expect(tries).toEqual([['c-0', 'c-1', 'c-2'], ['c-1'], ['c-3']]);
    expect(sink.pending).toBe(0);
    expect(sink.dropped).toBe(0);
    expect(sink.refused).toBe(1);
  });

  it('past maxBuffered drops the oldest chunks and counts their records', async () => {
    const written: string[] = [];
    const sink = new BatchingSink({
      newChunk: () => new RecordChunk(),
      maxBatch: 2,
      maxBuffered: 3,
      write: async (c) => {
        written.push(...c.records.map((r) => r.id));
      },
    });
    for (let i = 0; i < 5; i++) sink.write(rec(i));
    expect(sink.pending).toBe(3);
    expect(sink.dropped).toBe(2);
    await sink.close();
    expect(written).toEqual(['c-2', 'c-3', 'c-4']);
  });

  it('hands each chunk to the writer as the chunk made it, records encoded as they came', async () => {
    class Lines {
      text = '';
      rows = 0;
      add(r: CallRecord) {
        this.text += `${r.id}\n`;
        this.rows++;
      }
    }
    const texts: string[] = [];
    const sink = new BatchingSink({
      newChunk: () => new Lines(),
      maxBatch: 2,
      intervalMs: 10,
      write: async (c) => {
        texts.push(c.text);
      },
    });
    for (let i = 0; i < 5; i++) sink.write(rec(i));
    await sink.close();
    expect(texts).toEqual(['c-0\nc-1\n', 'c-2\nc-3\n', 'c-4\n']);
    expect(sink.pending).toBe(0);
  });
});

describe('BatchingSink with a spool', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(os.tmpdir(), 'tally-spool-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const until = async (ok: () => boolean, ms = 5000) => {
    const end = Date.now() + ms;
    while (!ok()) {
      if (Date.now() > end) throw new Error('timed out');
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  it('keeps a chunk that keeps failing on disk, lets the next one by, and writes it once the store is back', async () => {
    const written: string[] = [];
    let down = true;
    const spool = new ChunkSpool(dir, idLines);
    const sink = new BatchingSink({
      newChunk: () => new RecordChunk(),
      maxBatch: 2,
      intervalMs: 5,
      spool,
      spoolAfter: 2,
      replayMs: 20,
      write: async (c) => {
        if (down) throw new Error('store down');
        written.push(...c.records.map((r) => r.id));
      },
    });
    sink.write(rec(0));
    sink.write(rec(1));
    // Two failed tries (the second 100 ms after the first), then the chunk is on disk.
    await until(() => sink.spooled === 2);
    expect(sink.pending).toBe(0);
    expect(sink.failing).toBe(2);
    // One file, which the replay may hold claimed (renamed) while it tries to write it.
    expect(readdirSync(dir).filter((f) => /\.calls(\.\d+\.[0-9a-f]+\.claim)?$/.test(f))).toHaveLength(1);
    down = false;
    sink.write(rec(2));
    await until(() => written.length === 3 && sink.spooled === 0);
    // The live call and the spooled ones, each once (a look at the spool comes between live
    // writes, so either may go first); the file is gone.
    expect(written.sort()).toEqual(['c-0', 'c-1', 'c-2']);
    expect(sink.spooled).toBe(0);
    expect(readdirSync(dir)).toEqual([]);
    await sink.close();
    expect(sink.dropped).toBe(0);
  });

  it('past the spool bound, a chunk waits in memory, and is written once the store is back', async () => {
    const written: string[] = [];
    const errors: string[] = [];
    let down = true;
    // Room for one file: a header (20 bytes) and two ids (8).
    const spool = new ChunkSpool(dir, idLines, { maxBytes: 40 });
    const sink = new BatchingSink({
      newChunk: () => new RecordChunk(),
      maxBatch: 2,
      intervalMs: 5,
      spool,
      spoolAfter: 1,
      replayMs: 20,
      onError: (err) => errors.push((err as { code?: string }).code ?? (err as Error).message),
      write: async (c) => {
        if (down) throw new Error('store down');
        written.push(...c.records.map((r) => r.id));
      },
    });
    for (let i = 0; i < 4; i++) sink.write(rec(i));
    await until(() => sink.spooled === 2 && errors.includes('spool_full'));
    expect(spool.bytes).toBe(28);
    expect(sink.pending).toBe(2);
    expect(sink.spooledBytes).toBe(28);
    expect(sink.spoolLimitBytes).toBe(40);
    expect(sink.dropped).toBe(0);
    // Through more failed tries and more calls, the chunks past the bound stay off the disk: no
    // journal of theirs takes the spool's files past it.
    for (let i = 4; i < 6; i++) sink.write(rec(i));
    const sizes: number[] = [];
    for (let t = 0; t < 15; t++) {
      await new Promise((r) => setTimeout(r, 10));
      sizes.push(readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0));
    }
    expect(Math.max(...sizes)).toBeLessThanOrEqual(40);
    expect(sink.pending).toBe(4);
    down = false;
    await until(() => written.length === 6 && sink.spooled === 0 && sink.pending === 0);
    expect(written.sort()).toEqual(['c-0', 'c-1', 'c-2', 'c-3', 'c-4', 'c-5']);
    expect(spool.bytes).toBe(0);
    await sink.close();
    expect(sink.dropped).toBe(0);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('spools past maxBuffered and at a shutdown with the store down; the next process writes it all', async () => {
    const sink = new BatchingSink({
      newChunk: () => new RecordChunk(),
      maxBatch: 2,
      maxBuffered: 3,
      intervalMs: 1000,
      spool: new ChunkSpool(dir, idLines),
      write: async () => {
        throw new Error('store down');
      },
    });
    for (let i = 0; i < 5; i++) sink.write(rec(i));
    await sink.close();
    expect(sink.dropped).toBe(0);
    expect(sink.pending).toBe(0);
    expect(sink.spooled).toBe(5);

    // A new process (a new spool on the same directory) finds the files and writes them.
    const written: string[] = [];
    const next = new BatchingSink({
      newChunk: () => new RecordChunk(),
      spool: new ChunkSpool(dir, idLines),
      replayMs: 10,
      write: async (c) => {
        written.push(...c.records.map((r) => r.id));
      },
    });
    await until(() => written.length === 5 && next.spooled === 0);
    expect(written.sort()).toEqual(['c-0', 'c-1', 'c-2', 'c-3', 'c-4']);
    await next.close();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a file the store refuses waits its turn again later, and the others go by it', async () => {
    const spool = new ChunkSpool(dir, idLines);
    await spool.save(idChunk('bad'));
    await spool.save(idChunk('c-1', 'c-2'));
    const written: string[] = [];
    let refused = 0;
    const sink = new BatchingSink({
      newChunk: () => new RecordChunk(),
      spool,
      replayMs: 10,
      write: async (c) => {
        if (c.records.some((r) => r.id === 'bad')) {
          refused++;
          throw new Error('refused');
        }
        written.push(...c.records.map((r) => r.id));
      },
    });
    // Written, and its file gone once the write is through.
    await until(() => written.length === 2 && sink.spooled === 1);
    expect(refused).toBe(1);
    // Still on disk, not lost, and not tried again at once (1 s back-off).
    await new Promise((r) => setTimeout(r, 200));
    expect(refused).toBe(1);
    expect(readdirSync(dir).filter((f) => f.endsWith('.calls'))).toHaveLength(1);
    await sink.close();
  });
  it('keeps the calls under way on disk while there are any, and looks no more while there are none', async () => {
    const spool = new ChunkSpool(dir, idLines);
    const sink = new BatchingSink({
      newChunk: () => new RecordChunk(),
      spool,
      journalMs: 5,
      write: async () => undefined,
    });
    let underway: CallRecord[] = [];
    let looks = 0;
    sink.trackInflight(
      async () => {
        looks++;
        return underway;
      },
      () => underway.length > 0,
    );
    const inflightFile = () => readdirSync(dir).filter((f) => f.startsWith('~inflight-'));
    // A call goes under way: its record is kept in the file while it lasts.
    const underwayRec = (i: number) => ({ ...rec(i), tokens: { output: 0 } }) as CallRecord;
    underway = [underwayRec(1)];
    sink.inflightStarted();
    await until(() => inflightFile().length === 1);
    // It ends: the file goes, and then the tracker stops looking.
    underway = [];
    await until(() => inflightFile().length === 0);
    await new Promise((r) => setTimeout(r, 30));
    const idle = looks;
    await new Promise((r) => setTimeout(r, 100));
    expect(looks).toBe(idle);
    // The next call wakes it.
    underway = [underwayRec(2)];
    sink.inflightStarted();
    await until(() => inflightFile().length === 1);
    expect(looks).toBeGreaterThan(idle);
    await sink.close();
    // At close nothing is under way, and the file goes.
    expect(inflightFile()).toEqual([]);
  });
});
