import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import type { CallRecord } from '@tally/core';
import { BatchingSink, ChunkPartlyWritten, ChunkSpool } from '@tally/gateway';
import { CALL_CSV_FORMAT, CsvCallBatch, callCsvLine, csvLineFields, csvLines } from '@tally/store';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ControlClient } from './replica.js';
import {
  CALLS_FORMAT_HEADER,
  CALLS_WITH_TASKS_HEADER,
  callsOfCsv,
  jsonBodyOfCsv,
  REPLICA_SPOOL_CODEC,
  wireOfCsvLine,
} from './replica-csv.js';
import { callFromWire, callToWire } from './replica-wire.js';
import { sampleCall } from './testing/calls.js';
import { type TestApp, testApp } from './testing/test-app.js';

// Most gateway calls carry no task.
const call = (id: string, over: Partial<CallRecord> = {}): CallRecord =>
  sampleCall(id, { use_case: null, task_id: null, ...over });
const csv = (...calls: CallRecord[]) => {
  const b = new CsvCallBatch();
  for (const c of calls) b.add(c);
  return Buffer.from(b.bytes);
};

/** Fields as CSV text, odd for one field or another: the values the JSON check is tried on, and
 * the text forms a CSV line can put them in. */
const ODD = [
  '',
  '""',
  '"x"',
  '-1',
  '"0"',
  '1.5',
  '1e3',
  '12345678901',
  '99999999999999999999999',
  'inf',
  '"{""a"":1}"',
  '"{""a"":""x""}"',
  `"${'x'.repeat(1025)}"`,
  `"${'é'.repeat(600)}"`,
  '"priced"',
  '"other"',
];

describe('metered calls as CSV, from a replica to its server', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await testApp();
  });
  afterAll(() => t.shutdown());

  const post = (body: string | Buffer, headers: Record<string, string> = {}) =>
    t.app.inject({
      method: 'POST',
      url: '/v1/gateway/calls',
      headers: {
        ...t.gatewayAuth,
        'content-type': 'text/csv',
        [CALLS_FORMAT_HEADER]: CALL_CSV_FORMAT,
        ...headers,
      },
      payload: body,
    });

  it('reads back every call it encodes: quotes, commas, newlines, other scripts, nulls, 64-bit amounts', () => {
    const calls = [
      call('a'),
      call('b', { project: 'é "q", \n next', tags: { 'k "x"': 'v,\n' }, user: '' }),
      call('c', { project: null, key_id: null, model_served: null, cost_list_nano: null, latency_ms: null }),
      call('d', { cost_effective_nano: -(2n ** 63n), saved_nano: 2n ** 63n - 1n, ttft_ms: 0.001 }),
      call('e', { error_type: '客服 🚀', status: 'error', pricing_status: 'unpriced' }),
      call('f', { request_id: 'req "1",\n' }),
    ];
    expect(callsOfCsv(csv(...calls))).toEqual(calls);
    // A line cut off by a crash is left out.
    const bytes = csv(...calls);
    expect(callsOfCsv(bytes.subarray(0, bytes.length - 3))).toEqual(calls.slice(0, 5));
  });

  it('stores a batch as it comes, and one sent again once', async () => {
    const calls = [call('csv-1'), call('csv-2', { project: 'a,"b"\nc', tags: {} })];
    // As it comes: not read call by call, as the JSON form and a batch with a bad line are.
    const byCall = vi.spyOn(t.store, 'appendCalls');
    const first = await post(csv(...calls), { [CALLS_WITH_TASKS_HEADER]: '0' });
    expect(first.statusCode).toBe(200);
    expect(first.json()).toEqual({ accepted: 2, duplicates: 0, rejected: [] });
    expect(byCall).not.toHaveBeenCalled();
    byCall.mockRestore();
    expect(await t.store.getCall('default', 'csv-2')).toEqual(calls[1]);
    const again = await post(csv(...calls, call('csv-3')));
    expect(again.json()).toEqual({ accepted: 3, duplicates: 2, rejected: [] });
    // A batch said to carry no task, with a call that does, is checked call by call, and stored.
    const tasked = call('csv-4', { use_case: 'triage', task_id: 'T-1' });
    const claimed = await post(csv(tasked), { [CALLS_WITH_TASKS_HEADER]: '0' });
    expect(claimed.json()).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
    expect(await t.store.getCall('default', 'csv-4')).toEqual(tasked);
    expect((await t.store.listCalls({ tenant: 'default', limit: 10 })).rows.map((c) => c.id).sort()).toEqual([
      'csv-1',
      'csv-2',
      'csv-3',
      'csv-4',
    ]);
  });

  it('keeps the good calls of a batch with bad ones, and names each bad one by its index', async () => {
    const good = callCsvLine(call('mixed-1'));
    const badStatus = callCsvLine(call('mixed-2')).replace('"ok"', '"fine"');
    const other = callCsvLine(call('mixed-3', { tenant: 'other' }));
    const short = '"default","mixed-4",1\n';
    const r = await post(good + badStatus + other + short + callCsvLine(call('mixed-6')));
    expect(r.statusCode).toBe(200);
    const body = r.json() as {
      accepted: number;
      rejected: { index: number; code: string; message: string }[];
    };
    expect(body.accepted).toBe(2);
    expect(body.rejected.map((x) => [x.index, x.code])).toEqual([
      [1, 'invalid_event'],
      [2, 'forbidden'],
      [3, 'invalid_event'],
    ]);
    expect(body.rejected[0]!.message).toContain('status');
    expect(body.rejected[2]!.message).toContain('42 fields');
    expect(await t.store.getCall('default', 'mixed-1')).not.toBeNull();
    expect(await t.store.getCall('default', 'mixed-6')).not.toBeNull();
    expect(await t.store.getCall('default', 'mixed-2')).toBeNull();
  });

  it('refuses another layout, a body that ends inside a call, too many calls, and a key that is not a gateway key', async () => {
    const other = await post(csv(call('layout-1')), { [CALLS_FORMAT_HEADER]: 'duckdb-csv-000000000000' });
    expect(other.statusCode).toBe(415);
    expect(other.json().error.code).toBe('unsupported_media_type');
    const none = await post(csv(call('layout-2')), { [CALLS_FORMAT_HEADER]: '' });
    expect(none.statusCode).toBe(415);
    const cut = await post(csv(call('cut-1')).subarray(0, 40));
    expect(cut.statusCode).toBe(400);
    expect(cut.json().error.code).toBe('invalid_request');
    // A quote that never closes takes the rest of the body into its field: the same.
    const open = await post(`"default","open-1,1\n${callCsvLine(call('open-2'))}`);
    expect(open.statusCode).toBe(400);
    expect(await t.store.getCall('default', 'open-2')).toBeNull();
    const many = await post(csv(...Array.from({ length: 5001 }, (_, i) => call(`many-${i}`))));
    expect(many.statusCode).toBe(413);
    expect(many.json().error.code).toBe('batch_too_large');
    const anonymous = await post(csv(call('anon-1')), { authorization: 'Bearer tk-nobody' });
    expect(anonymous.statusCode).toBe(401);
    const admin = await post(csv(call('admin-1')), t.auth);
    expect(admin.statusCode).toBe(403);
    expect(await t.store.getCall('default', 'admin-1')).toBeNull();
    expect(await t.store.getCall('default', 'layout-1')).toBeNull();
  });

  it('stores a line as it stands only when the JSON check takes the same call, and stores that call', async () => {
    const valid = callCsvLine(call('odd')).slice(0, -1);
    const fields = csvLineFields(valid).map((f, i) => {
      const raw = callCsvLine(call('odd')).slice(0, -1);
      return { f, raw: splitRaw(raw)[i]! };
    });
    expect(fields.length).toBe(42);
    let stored = 0;
    let checked = 0;
    let n = 0;
    for (let k = 0; k < fields.length; k++) {
      for (const odd of ODD) {
        const raws = fields.map((x) => x.raw);
        if (k !== 1) raws[1] = `"odd-${n++}"`;
        raws[k] = odd;
        const line = raws.join(',');
        const wire = wireOfCsvLine(line);
        const viaJson = typeof wire === 'string' ? wire : callFromWire(wire);
        const ok = typeof viaJson !== 'string' && viaJson.tenant === 'default';
        const batch = new CsvCallBatch(Buffer.from(`${line}\n`));
        const took = await t.store.appendCallBatch(batch, { tenant: 'default' }).then(
          (w) => w.inserted === 1,
          (err: { code?: string; message: string }) => {
            expect(err.code, err.message).toBe('invalid_event');
            return false;
          },
        );
        if (took) {
          stored++;
          expect(ok, `stored as CSV, refused as JSON: field ${k} = ${odd}`).toBe(true);
          const back = await t.store.getCall('default', (viaJson as CallRecord).id);
          expect(back, line).toEqual(viaJson);
        }
        if (ok) checked++;
      }
    }
    // Most odd values are refused; those the JSON check takes (null where a field may be null,
    // digits in quotes, and so on) are mostly taken as they stand.
    expect(stored).toBeGreaterThan(30);
    expect(stored).toBeGreaterThanOrEqual(checked * 0.7);
  });

  it('sends as JSON to a server without CSV: the same calls, without request_id (which it refuses) and the counts after it', () => {
    const calls = [
      call('j-1', { request_id: 'j-1' }),
      call('j-2', { project: 'x "y"', cost_list_nano: null }),
    ];
    const body = JSON.parse(jsonBodyOfCsv(csv(...calls)).toString()) as { calls: unknown[] };
    const { request_id: _, ...earlier } = callToWire(calls[0]!);
    const {
      file_searches: __,
      code_containers: ___,
      image_generations: ____,
      characters: _____,
      audio_seconds: ______,
      ...earlierTokens
    } = earlier.tokens;
    expect(body.calls[0]).toEqual(JSON.parse(JSON.stringify({ ...earlier, tokens: earlierTokens })));
    expect(body.calls.map((c) => callFromWire(c))).toEqual(calls.map((c) => ({ ...c, request_id: null })));
    // This version's server takes it with or without.
    expect(callFromWire(callToWire(calls[0]!))).toEqual(calls[0]);
    expect(callFromWire(callToWire(calls[0]!), true)).toEqual(calls[0]);
    expect(callFromWire({ ...callToWire(calls[0]!), request_id: '' })).toMatch(/request_id/);
  });

  // The layouts before request_id, before file_searches, before code_containers, before
  // image_generations and before characters and audio_seconds, as replicas of those versions send
  // and keep them: this version's line without its last six fields, five, four, three, or two.
  const BEFORE_REQUEST_ID = 'duckdb-csv-5f447b59d085';
  const BEFORE_FILE_SEARCHES = 'duckdb-csv-10ba32b3891f';
  const BEFORE_CODE_CONTAINERS = 'duckdb-csv-9a8f998f71ec';
  const BEFORE_IMAGE_GENERATIONS = 'duckdb-csv-a55725ae5367';
  const BEFORE_CHARACTERS = 'duckdb-csv-0bb5241572a5';
  const withoutLast = (c: CallRecord, dropped: number) => {
    const fields = splitRaw(callCsvLine(c).slice(0, -1));
    return `${fields.slice(0, -dropped).join(',')}\n`;
  };
  const earlierCsv = (...calls: CallRecord[]) => calls.map((c) => withoutLast(c, 6)).join('');

  it('stores the calls of a replica of the version before file_searches, with none counted', async () => {
    const calls = [call('prev-fs-1', { request_id: 'r-1' }), call('prev-fs-2')];
    const bytes = calls.map((c) => withoutLast(c, 5)).join('');
    const r = await post(bytes, { [CALLS_FORMAT_HEADER]: BEFORE_FILE_SEARCHES });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ accepted: 2, duplicates: 0, rejected: [] });
    expect(await t.store.getCall('default', 'prev-fs-1')).toEqual(calls[0]);
    expect((await t.store.getCall('default', 'prev-fs-2'))?.tokens.file_searches).toBe(0);
  });

  it('stores the calls of a replica of the version before code_containers, with none counted', async () => {
    const calls = [
      call('prev-cc-1', { request_id: 'r-1', tokens: { ...call('x').tokens, file_searches: 2 } }),
      call('prev-cc-2'),
    ];
    const bytes = calls.map((c) => withoutLast(c, 4)).join('');
    const r = await post(bytes, { [CALLS_FORMAT_HEADER]: BEFORE_CODE_CONTAINERS });
    expect(r.json()).toEqual({ accepted: 2, duplicates: 0, rejected: [] });
    expect(await t.store.getCall('default', 'prev-cc-1')).toEqual(calls[0]);
    expect((await t.store.getCall('default', 'prev-cc-1'))?.tokens.code_containers).toBe(0);
  });

  it('stores the calls of a replica of the version before characters and audio_seconds, with none counted', async () => {
    const calls = [
      call('prev-ch-1', { request_id: 'r-1', tokens: { ...call('x').tokens, image_generations: 2 } }),
      call('prev-ch-2'),
    ];
    const bytes = calls.map((c) => withoutLast(c, 2)).join('');
    const r = await post(bytes, { [CALLS_FORMAT_HEADER]: BEFORE_CHARACTERS });
    expect(r.json()).toEqual({ accepted: 2, duplicates: 0, rejected: [] });
    const back = await t.store.getCall('default', 'prev-ch-1');
    expect(back).toEqual(calls[0]);
    expect(back?.tokens).toMatchObject({ image_generations: 2, characters: 0, audio_seconds: 0 });
  });

  it('stores the calls of a replica of the version before, as they come', async () => {
    const calls = [call('prev-1'), call('prev-2', { project: 'two\nlines, "q"' })];
    const r = await post(earlierCsv(...calls), { [CALLS_FORMAT_HEADER]: BEFORE_REQUEST_ID });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ accepted: 2, duplicates: 0, rejected: [] });
    expect(await t.store.getCall('default', 'prev-2')).toEqual(calls[1]);
    // Cut off inside a call: refused, not stored short.
    const cut = await post(earlierCsv(call('prev-3')).slice(0, -5), {
      [CALLS_FORMAT_HEADER]: BEFORE_REQUEST_ID,
    });
    expect(cut.statusCode).toBe(400);
    expect(await t.store.getCall('default', 'prev-3')).toBeNull();
  });

  it('reads the chunks a replica of the version before kept, as this layout', async () => {
    const dir = mkdtempSync(join(os.tmpdir(), 'tally-replica-spool-'));
    try {
      const calls = [call('kept-1'), call('kept-2', { project: 'a\nb' })];
      writeFileSync(
        join(dir, '1764633600000-1-000002.calls'),
        `${JSON.stringify({ format: `replica-${BEFORE_REQUEST_ID}` })}\n${earlierCsv(...calls)}"default","cut`,
      );
      const spool = new ChunkSpool(dir, REPLICA_SPOOL_CODEC);
      await spool.scan();
      expect(spool.rows).toBe(2);
      const taken = await spool.take();
      expect(callsOfCsv(taken!.chunk.bytes)).toEqual(calls);
      const r = await post(taken!.chunk.bytes);
      expect(r.json()).toEqual({ accepted: 2, duplicates: 0, rejected: [] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a replica sends JSON to a server of an earlier version, and tries CSV again ten minutes on', async () => {
    const seen: string[] = [];
    const old = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        seen.push(String(req.headers['content-type']));
        const csvBody = req.headers['content-type'] === 'text/csv';
        res.writeHead(csvBody ? 415 : 200, { 'content-type': 'application/json' });
        const n = csvBody ? 0 : (JSON.parse(body) as { calls: unknown[] }).calls.length;
        res.end(
          JSON.stringify(
            csvBody
              ? { error: { code: 'unsupported_media_type' } }
              : { accepted: n, duplicates: 0, rejected: [] },
          ),
        );
      });
    });
    await new Promise<void>((r) => old.listen(0, '127.0.0.1', r));
    let now = 1_000_000;
    const client = new ControlClient(
      `http://127.0.0.1:${(old.address() as AddressInfo).port}`,
      'tk-gateway',
      () => now,
    );
    try {
      expect(await client.writeCalls(new CsvCallBatch(csv(call('v1-1'), call('v1-2'))))).toMatchObject({
        accepted: 2,
      });
      expect(await client.writeCalls(new CsvCallBatch(csv(call('v1-3'))))).toMatchObject({ accepted: 1 });
      now += 600_001;
      await client.writeCalls(new CsvCallBatch(csv(call('v1-4'))));
      expect(seen).toEqual([
        'text/csv',
        'application/json',
        'application/json',
        'text/csv',
        'application/json',
      ]);
    } finally {
      await client.close();
      old.close();
    }
  });

  it.each([
    // Two versions back: its 415 names its layout in the message only.
    { layout: BEFORE_FILE_SEARCHES, inDetails: false },
    // Later versions: in its details too.
    { layout: BEFORE_CODE_CONTAINERS, inDetails: true },
    { layout: BEFORE_IMAGE_GENERATIONS, inDetails: true },
    { layout: BEFORE_CHARACTERS, inDetails: true },
  ])(
    'a replica sends a server of an earlier version ($layout) its calls in that layout, request ids kept',
    async ({ layout, inDetails }) => {
      // The server of that version: it reads its own layout (and the earlier ones, as this server
      // does), and refuses any other with the 415 that version gave.
      const seen: string[] = [];
      const id = `v${layout.slice(-4)}`;
      const before = createServer((req, res) => {
        const parts: Buffer[] = [];
        req.on('data', (c: Buffer) => parts.push(c));
        req.on('end', () => {
          const format = String(req.headers[CALLS_FORMAT_HEADER]);
          seen.push(format);
          if (format !== layout) {
            res.writeHead(415, { 'content-type': 'application/json' });
            res.end(
              JSON.stringify({
                error: {
                  code: 'unsupported_media_type',
                  message: `Metered calls as CSV must be of layout ${layout} (${CALLS_FORMAT_HEADER}), not ${format}: the replica and the server run different versions.`,
                  ...(inDetails ? { details: { layout } } : {}),
                },
              }),
            );
            return;
          }
          void t.app
            .inject({
              method: 'POST',
              url: req.url!,
              headers: { ...(req.headers as Record<string, string>), ...t.gatewayAuth },
              payload: Buffer.concat(parts),
            })
            .then((r) => {
              res.writeHead(r.statusCode, { 'content-type': 'application/json' });
              res.end(r.rawPayload);
            });
        });
      });
      await new Promise<void>((r) => before.listen(0, '127.0.0.1', r));
      let now = 5_000_000;
      const client = new ControlClient(
        `http://127.0.0.1:${(before.address() as AddressInfo).port}`,
        'tk-x',
        () => now,
      );
      try {
        const searched = call(`${id}-1`, {
          request_id: 'req-b',
          project: 'a, "b"\nc',
          tokens: {
            ...call('x').tokens,
            file_searches: 2,
            code_containers: 1,
            image_generations: 3,
            characters: 5,
            audio_seconds: 7,
          },
        });
        expect(await client.writeCalls(new CsvCallBatch(csv(searched, call(`${id}-2`))))).toMatchObject({
          accepted: 2,
        });
        // The request id is kept; the counts that version cannot store are not.
        expect(await t.store.getCall('default', `${id}-1`)).toEqual({
          ...searched,
          tokens: {
            ...searched.tokens,
            file_searches: layout === BEFORE_FILE_SEARCHES ? 0 : 2,
            code_containers: layout === BEFORE_IMAGE_GENERATIONS || layout === BEFORE_CHARACTERS ? 1 : 0,
            image_generations: layout === BEFORE_CHARACTERS ? 3 : 0,
            characters: 0,
            audio_seconds: 0,
          },
        });
        await client.writeCalls(new CsvCallBatch(csv(call(`${id}-3`))));
        now += 600_001;
        await client.writeCalls(new CsvCallBatch(csv(call(`${id}-4`))));
        expect(seen).toEqual([CALL_CSV_FORMAT, layout, layout, CALL_CSV_FORMAT, layout]);
        expect(await t.store.getCall('default', `${id}-4`)).not.toBeNull();
      } finally {
        await client.close();
        before.close();
      }
      // This version's 415 names its layout in its details, for the versions after it.
      const refused = await post(csv(call('later-1')), { [CALLS_FORMAT_HEADER]: 'duckdb-csv-000000000000' });
      expect(refused.statusCode).toBe(415);
      expect(refused.json().error.details).toEqual({ layout: CALL_CSV_FORMAT });
    },
  );

  it('a replica keeps only the calls the server refused, on disk, and sends them again later', async () => {
    // The test app's routes, behind a real socket for the replica's client.
    const front = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        void t.app
          .inject({
            method: req.method as 'POST',
            url: req.url!,
            headers: req.headers as Record<string, string>,
            payload: Buffer.concat(parts),
          })
          .then((r) => {
            res.writeHead(r.statusCode, { 'content-type': String(r.headers['content-type']) });
            res.end(r.rawPayload);
          });
      });
    });
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
    const client = new ControlClient(
      `http://127.0.0.1:${(front.address() as AddressInfo).port}`,
      t.gatewayAuth.authorization.slice('Bearer '.length),
    );
    const dir = mkdtempSync(join(os.tmpdir(), 'tally-replica-refused-'));
    // The id of each line, whether this server can read the call or not.
    const idsOf = (bytes: Buffer) => csvLines(bytes).map((l) => csvLineFields(l)[1]);
    let sink: BatchingSink<CsvCallBatch> | null = null;
    try {
      // A status this server does not know, as a newer replica might send.
      const newer = call('part-2', { status: 'throttled' as CallRecord['status'] });
      const batch = new CsvCallBatch(csv(call('part-1'), newer, call('part-3')));
      const err = await client.writeCalls(batch).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ChunkPartlyWritten);
      const rest = (err as ChunkPartlyWritten<CsvCallBatch>).rest;
      expect(rest.rows).toBe(1);
      expect(csvLines(rest.bytes)).toEqual([callCsvLine(newer).slice(0, -1)]);
      expect((err as Error).message).toContain('refused 1 of 3');
      expect(await t.store.getCall('default', 'part-1')).not.toBeNull();
      expect(await t.store.getCall('default', 'part-3')).not.toBeNull();

      // Through the replica's sink: the good calls are written once, the refused one waits in
      // the spool (not sent again and again with the others), and is not lost.
      const sent: (string | null | undefined)[][] = [];
      const spool = new ChunkSpool(dir, REPLICA_SPOOL_CODEC);
      sink = new BatchingSink<CsvCallBatch>({
        newChunk: () => new CsvCallBatch(),
        spool,
        spoolAfter: 1,
        intervalMs: 5,
        replayMs: 20,
        write: async (chunk) => {
          sent.push(idsOf(chunk.bytes));
          await client.writeCalls(chunk);
        },
      });
      sink.write(call('part-4'));
      sink.write(call('part-5', { status: 'throttled' as CallRecord['status'] }));
      sink.write(call('part-6'));
      const end = Date.now() + 5000;
      while (spool.rows !== 1 || sent.length < 2) {
        if (Date.now() > end) throw new Error(`timed out: ${JSON.stringify(sent)}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      // Taken from the spool once (then 1 s of back-off), with only the refused call in it.
      expect(sent).toEqual([['part-4', 'part-5', 'part-6'], ['part-5']]);
      expect(await t.store.getCall('default', 'part-6')).not.toBeNull();
      await sink.close();
      // Refused twice: in the batch, then from the spool.
      expect(sink.refused).toBe(2);
      expect(sink.dropped).toBe(0);
      sink = null;
      const left = new ChunkSpool(dir, REPLICA_SPOOL_CODEC);
      await left.scan();
      expect(left.rows).toBe(1);
      expect(idsOf((await left.take())!.chunk.bytes)).toEqual(['part-5']);
    } finally {
      await sink?.close();
      await client.close();
      front.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads the chunks a replica of an earlier version kept as JSON, as CSV', async () => {
    const dir = mkdtempSync(join(os.tmpdir(), 'tally-replica-spool-'));
    try {
      const calls = [call('old-1'), call('old-2', { project: 'p' })];
      const lines = calls.map((c, i) => `${i === 0 ? '' : ','}${JSON.stringify(callToWire(c))}\n`).join('');
      // As an earlier replica left it: its header, and the JSON body without its end.
      writeFileSync(
        join(dir, '1764633600000-1-000001.calls'),
        `${JSON.stringify({ format: 'replica-json-v2' })}\n{"calls":[\n${lines}{"id":"cut`,
      );
      const spool = new ChunkSpool(dir, REPLICA_SPOOL_CODEC);
      await spool.scan();
      expect(spool.files).toBe(1);
      expect(spool.rows).toBe(2);
      const taken = await spool.take();
      expect(taken).not.toBeNull();
      expect(callsOfCsv(taken!.chunk.bytes)).toEqual(calls);
      // Sent as CSV, as a chunk of this version is.
      const r = await post(taken!.chunk.bytes);
      expect(r.json()).toEqual({ accepted: 2, duplicates: 0, rejected: [] });
      await spool.done(taken!.name);
      expect(spool.files).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A CSV line's fields as written (quotes kept), split on the commas between them. */
function splitRaw(line: string): string[] {
  const out: string[] = [];
  let quoted = false;
  let start = 0;
  for (let i = 0; i < line.length; i++) {
    if (line[i] === '"') quoted = !quoted;
    else if (line[i] === ',' && !quoted) {
      out.push(line.slice(start, i));
      start = i + 1;
    }
  }
  out.push(line.slice(start));
  return out;
}
