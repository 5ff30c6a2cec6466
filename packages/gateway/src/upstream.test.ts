import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createGzip } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CallAborted,
  Cancel,
  FirstChunkTimedOut,
  HeadersTimedOut,
  ResponseTooLarge,
  Upstreams,
} from './upstream.js';

let server: Server;
let origin: string;
let open = 0;
const upstreams = new Upstreams(4);

beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.url === '/chunks') {
      res.writeHead(200, { 'content-type': 'text/plain', 'X-Request-Id': 'r1' });
      let i = 0;
      const t = setInterval(() => {
        res.write(`part${i}\n`);
        if (++i === 5) {
          clearInterval(t);
          res.end();
        }
      }, 5);
      return;
    }
    if (req.url === '/hang') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first\n');
      return; // never ends: the client must cut it off
    }
    if (req.url === '/slow-head') return; // no answer at all
    if (req.url === '/silent') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.flushHeaders();
      return; // a head, then nothing
    }
    if (req.url === '/gzip') {
      // A compressed stream, flushed event by event, as a proxy that compresses SSE sends it.
      res.writeHead(200, { 'content-type': 'text/event-stream', 'content-encoding': 'gzip' });
      const gzip = createGzip();
      gzip.pipe(res);
      let i = 0;
      const t = setInterval(() => {
        gzip.write(`data: ${i}${'.'.repeat(40_000)}\n\n`);
        gzip.flush();
        if (++i === 5) {
          clearInterval(t);
          gzip.end();
        }
      }, 5);
      return;
    }
    if (req.url === '/endless') {
      res.writeHead(200, { 'content-type': 'application/json' });
      const more = () => {
        while (!res.destroyed && res.write('x'.repeat(16_384)));
        if (!res.destroyed) res.once('drain', more);
      };
      more();
      return;
    }
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end('{"error":{"message":"boom"}}');
  });
  server.on('connection', (s) => {
    open++;
    s.on('close', () => open--);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await upstreams.close();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const get = (path: string, timeoutMs = 2000) =>
  upstreams.request(origin, { path, method: 'GET', headers: {}, timeoutMs });

describe('Upstreams', () => {
  it('keeps the chunks that come before the reader, and hands over the rest as they come', async () => {
    const up = await get('/chunks');
    expect(up.statusCode).toBe(200);
    expect(up.headers['x-request-id']).toBe('r1');
    expect(up.headers['content-type']).toBe('text/plain');
    await new Promise((r) => setTimeout(r, 30)); // some chunks arrive with no reader yet
    const body = await up.body.bytes();
    expect(body.toString()).toBe('part0\npart1\npart2\npart3\npart4\n');
  });

  it('reads an error answer whole, and can drop one', async () => {
    const up = await upstreams.request(origin, {
      path: '/x',
      method: 'POST',
      headers: {},
      body: '{}',
      timeoutMs: 2000,
    });
    expect(up.statusCode).toBe(500);
    expect(JSON.parse((await up.body.bytes()).toString())).toEqual({ error: { message: 'boom' } });
    const again = await upstreams.request(origin, {
      path: '/x',
      method: 'POST',
      headers: {},
      timeoutMs: 2000,
    });
    await expect(again.body.dump()).resolves.toBeUndefined();
  });

  it('a cancel mid-body stops the reader with CallAborted and closes the connection', async () => {
    const cancel = new Cancel();
    const before = open;
    const up = await upstreams.request(origin, {
      path: '/hang',
      method: 'GET',
      headers: {},
      cancel,
      timeoutMs: 5000,
    });
    const seen: string[] = [];
    const reading = up.body.read((c) => {
      seen.push(c.toString());
      return true;
    });
    await new Promise((r) => setTimeout(r, 20));
    cancel.abort();
    await expect(reading).rejects.toBeInstanceOf(CallAborted);
    expect(seen).toEqual(['first\n']);
    await new Promise((r) => setTimeout(r, 50));
    expect(open).toBeLessThan(before + 1);
    expect(cancel.current).toBeNull();
  });

  it('a call cancelled before it is answered rejects, and one made after the cancel is aborted as it connects', async () => {
    const cancel = new Cancel();
    const pending = upstreams.request(origin, {
      path: '/slow-head',
      method: 'GET',
      headers: {},
      cancel,
      timeoutMs: 5000,
    });
    await new Promise((r) => setTimeout(r, 20));
    cancel.abort();
    await expect(pending).rejects.toBeInstanceOf(CallAborted);
    await expect(
      upstreams.request(origin, { path: '/chunks', method: 'GET', headers: {}, cancel, timeoutMs: 5000 }),
    ).rejects.toBeInstanceOf(CallAborted);
  });

  it('a head that does not come in time fails at its timeout, to the millisecond rather than the second', async () => {
    const t0 = performance.now();
    const err = await upstreams
      .request(origin, { path: '/slow-head', method: 'GET', headers: {}, timeoutMs: 100 })
      .catch((e: unknown) => e);
    const took = performance.now() - t0;
    expect(err).toBeInstanceOf(HeadersTimedOut);
    expect((err as { code?: string }).code).toContain('TIMEOUT');
    // undici's own timer, checked about once a second, fired 0.5 to 1 s late.
    expect(took).toBeGreaterThanOrEqual(99);
    expect(took).toBeLessThan(400);
  });

  it('fails a body whose first part does not come within the timeout after its head', async () => {
    const up = await get('/silent', 100);
    expect(up.statusCode).toBe(200);
    const t0 = performance.now();
    const err = await up.body.bytes().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FirstChunkTimedOut);
    expect((err as { code?: string }).code).toContain('TIMEOUT');
    expect(performance.now() - t0).toBeLessThan(400);
  });

  it('times a call that waits for a connection too, and leaves an answered one alone', async () => {
    // Every connection of the pool (4) is held by an answer that does not end.
    const holders = Array.from({ length: 4 }, () => new Cancel());
    const held = await Promise.all(
      holders.map((cancel) =>
        upstreams.request(origin, { path: '/hang', method: 'GET', headers: {}, cancel, timeoutMs: 5000 }),
      ),
    );
    const reads = held.map((up) => up.body.dump().catch(() => undefined));
    const t0 = performance.now();
    const queued = await upstreams
      .request(origin, { path: '/chunks', method: 'GET', headers: {}, timeoutMs: 100 })
      .catch((e: unknown) => e);
    expect(queued).toBeInstanceOf(HeadersTimedOut);
    expect(performance.now() - t0).toBeLessThan(400);
    for (const c of holders) c.abort();
    await Promise.all(reads);
    // An answer whose head came in time is read to its end, past its timeout.
    const up = await get('/chunks', 200);
    await new Promise((r) => setTimeout(r, 300));
    expect((await up.body.bytes()).toString()).toBe('part0\npart1\npart2\npart3\npart4\n');
  });

  it('reads a compressed answer decompressed, chunk by chunk, a reader that holds back included', async () => {
    const up = await get('/gzip');
    expect(up.headers['content-encoding']).toBeUndefined();
    let text = '';
    let held = false;
    await up.body.read((c) => {
      text += c.toString();
      if (held) return true;
      held = true;
      setTimeout(() => up.body.resume(), 20);
      return false;
    });
    expect(
      text
        .split('\n\n')
        .filter(Boolean)
        .map((e) => e.slice(0, 7)),
    ).toEqual(['data: 0', 'data: 1', 'data: 2', 'data: 3', 'data: 4']);
    expect(text.length).toBe(5 * 40_009);
  });

  it('stops reading a whole answer past its limit, and closes the connection', async () => {
    const before = open;
    const up = await get('/endless');
    await expect(up.body.bytes(100_000)).rejects.toBeInstanceOf(ResponseTooLarge);
    await new Promise((r) => setTimeout(r, 50));
    expect(open).toBeLessThan(before + 1);
  });

  it('refuses a whole answer past its limit that came before the read, rather than cutting it short', async () => {
    // The error answer (28 bytes) has come, and the body ended, before anything reads it.
    const up = await get('/error');
    await new Promise((r) => setTimeout(r, 50));
    await expect(up.body.bytes(10)).rejects.toBeInstanceOf(ResponseTooLarge);
    const again = await get('/error');
    await new Promise((r) => setTimeout(r, 50));
    expect((await again.body.bytes(28)).toString()).toBe('{"error":{"message":"boom"}}');
  });
});
