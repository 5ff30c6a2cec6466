import type { Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate, createInflateRaw } from 'node:zlib';
import type { Dispatcher } from 'undici';
import { Pool } from 'undici';
import { type Inflater, inflaterFor } from './content-coding.js';

/** Why a call was cut off: the client went away. */
export class CallAborted extends Error {
  readonly code = 'TALLY_CALL_ABORTED';
}

/** Why a call was cut off: no answer came within its timeout (timed by the gateway's own timer). */
export class HeadersTimedOut extends Error {
  readonly code = 'TALLY_HEADERS_TIMEOUT';
}

/** Why a call was cut off: its answer's head came, and then nothing of its body within its timeout. */
export class FirstChunkTimedOut extends Error {
  readonly code = 'TALLY_BODY_TIMEOUT';
}

/** Timeouts up to this long are kept to the millisecond for the wait for an answer's head and for
 * the first part of its body: undici checks its own about once a second, up to a second late, which
 * a short timeout (a request's own x-tally-timeout-ms, say) cannot take. Longer ones, and the gaps
 * after the first part, are left to undici. */
export const PRECISE_TIMEOUT_UP_TO = 30_000;

/** Why a whole answer was not read: it grew past the gateway's limit, and the call was aborted. */
export class ResponseTooLarge extends Error {
  readonly code = 'TALLY_RESPONSE_TOO_LARGE';
}

/** Why an answer could not be read: a content coding the gateway cannot undo, or a compressed
 * body that does not decompress. */
export class UndecodableBody extends Error {
  readonly code = 'TALLY_UNDECODABLE_BODY';
}

type Decoder = ReturnType<typeof createGunzip>;

const DECODERS: Record<Inflater, () => Decoder> = {
  gunzip: createGunzip,
  brotli: createBrotliDecompress,
  inflate: createInflate,
  'inflate-raw': createInflateRaw,
};

/** A decoder for a content coding, given the body's first bytes; null for a coding it cannot undo. */
function decoderFor(coding: string, first: Buffer): Decoder | null {
  const inflater = inflaterFor(coding, first[0]);
  return inflater ? DECODERS[inflater]() : null;
}

/**
 * Cancels an upstream call when the client goes away: the call under way, if any, is aborted, and
 * one started afterwards is aborted as soon as it connects.
 */
export class Cancel {
  aborted = false;
  /** The call this cancel applies to now. */
  current: UpstreamCall | null = null;

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.current?.abort(new CallAborted('the client went away'));
  }
}

/** An upstream's answer: its status and headers (names in lower case), and a body to read once.
 * A compressed body is read decompressed, and its headers have no content-encoding then. */
export interface UpstreamResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: UpstreamCall;
}

/**
 * One upstream call, as undici's dispatch handler: its body is handed to one reader chunk by
 * chunk, with no stream object between the socket and the reader. Chunks that come before the
 * reader does (the head and the first chunk are often parsed in one go) wait in a list.
 */
export class UpstreamCall implements Dispatcher.DispatchHandler {
  private abortFn: ((err: Error) => void) | null = null;
  private resumeFn: (() => void) | null = null;
  private early: Buffer[] = [];
  private reader: ((chunk: Buffer) => boolean | undefined) | null = null;
  private ended = false;
  private failed: Error | null = null;
  private settle: ((err: Error | null) => void) | null = null;
  private head: { resolve(r: UpstreamResponse): void; reject(err: Error): void } | null;
  /** The answer's content coding, when it is not identity (the gateway asks for identity, but a
   * provider or a proxy before it may compress all the same), and what undoes it. */
  private coding: string | null = null;
  private decoder: Decoder | null = null;
  /** undici has handed over the whole body (a decoder may still be at work on it). */
  private received = false;
  /** The gateway's own timer on the wait for the answer's head and its body's first part, where it
   * keeps one (timeOpening). */
  private deadline: NodeJS.Timeout | null = null;

  constructor(
    head: { resolve(r: UpstreamResponse): void; reject(err: Error): void },
    private readonly cancel: Cancel | null,
  ) {
    this.head = head;
    if (cancel) cancel.current = this;
  }

  /** Fails the call if its answer's head has not come within `ms`, or the first part of its body
   * within `ms` after the head (a stream that stalls before its first event). */
  timeOpening(ms: number): void {
    this.deadline = setTimeout(() => {
      this.deadline = null;
      const head = this.head;
      if (!head) {
        if (!this.received)
          this.fail(new FirstChunkTimedOut(`The upstream sent nothing within ${ms} ms of its head.`));
        return;
      }
      const err = new HeadersTimedOut(`The upstream did not answer within ${ms} ms.`);
      this.abort(err);
      // Not connected yet (every connection busy), the call is refused when it would be: its
      // caller hears of it now.
      this.head = null;
      head.reject(err);
    }, ms);
    this.deadline.unref();
  }

  private stopDeadline(): void {
    if (this.deadline === null) return;
    clearTimeout(this.deadline);
    this.deadline = null;
  }

  /** Aborts the call, if it has not ended. */
  abort(err: Error): void {
    if (this.ended || this.failed) return;
    if (this.decoder) this.fail(err);
    else if (this.abortFn) this.abortFn(err);
    else this.failed = err;
  }

  /** Ends the call with `err`: the upstream is cut off if it is still sending, the reader rejected. */
  private fail(err: Error): void {
    if (this.ended || this.failed) return;
    this.failed = err;
    this.decoder?.destroy();
    if (!this.received) this.abortFn?.(err);
    this.done(err);
  }

  /** Lets a reader that held back (its callback returned false) have the next chunks. */
  resume(): void {
    if (this.decoder) this.decoder.resume();
    else this.resumeFn?.();
  }

  /**
   * Hands each chunk of the body to `onChunk` (false holds the upstream back until resume()), and
   * resolves when the body has ended, or rejects with the error that cut it off. Past `limit`
   * bytes (decompressed), the call is aborted and this rejects with ResponseTooLarge.
   */
  read(onChunk: (chunk: Buffer) => boolean | undefined, limit = Number.POSITIVE_INFINITY): Promise<void> {
    // Past the limit in what had come before the read (a body that has ended, too), as after it.
    let over: ResponseTooLarge | null = null;
    if (limit !== Number.POSITIVE_INFINITY) {
      const deliver = onChunk;
      let size = 0;
      onChunk = (c) => {
        size += c.length;
        if (size <= limit) return deliver(c);
        over ??= new ResponseTooLarge(`The upstream's answer is larger than ${limit} bytes.`);
        this.fail(over);
        return false;
      };
    }
    return new Promise<void>((resolve, reject) => {
      const early = this.early;
      this.early = [];
      for (const c of early) if (!this.failed && !over) onChunk(c);
      if (over) return reject(over);
      if (this.failed) return reject(this.failed);
      if (this.ended) return resolve();
      this.reader = onChunk;
      this.settle = (err) => (err ? reject(err) : resolve());
    });
  }

  /** The whole body; past `limit` bytes (decompressed), the call is aborted and this rejects with
   * ResponseTooLarge. */
  async bytes(limit = Number.POSITIVE_INFINITY): Promise<Buffer> {
    const parts: Buffer[] = [];
    await this.read((c) => {
      parts.push(c);
      return true;
    }, limit);
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** Reads the body to its end and drops it. */
  async dump(): Promise<void> {
    await this.read(() => true);
  }

  // undici's handler callbacks.

  onConnect(abort: (err?: Error) => void): void {
    if (this.failed) {
      abort(this.failed);
      return;
    }
    this.abortFn = abort;
    if (this.cancel?.aborted) this.abort(new CallAborted('the client went away'));
  }

  onHeaders(statusCode: number, raw: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true;
    // The wait for the body's first part starts now.
    this.deadline?.refresh();
    this.resumeFn = resume;
    const h: Record<string, string> = {};
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i]!.toString('latin1').toLowerCase();
      const value = raw[i + 1]!.toString('latin1');
      const prior = h[name];
      h[name] = prior === undefined ? value : `${prior}, ${value}`;
    }
    const coding = h['content-encoding']?.trim().toLowerCase();
    if (coding && coding !== 'identity') {
      // Passed on decoded: the length and the coding no longer describe it.
      this.coding = coding;
      delete h['content-encoding'];
      delete h['content-length'];
    }
    const head = this.head;
    this.head = null;
    head?.resolve({ statusCode, headers: h, body: this });
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.deadline !== null) this.stopDeadline();
    if (this.coding !== null) return this.decode(chunk);
    return this.deliver(chunk);
  }

  private deliver(chunk: Buffer): boolean {
    if (this.reader) return this.reader(chunk) !== false;
    this.early.push(chunk);
    return true;
  }

  /** Feeds a compressed chunk to the decoder, which hands what it decodes to the reader. A reader
   * that holds back pauses the decoder; a decoder that is full holds undici back until it drains. */
  private decode(chunk: Buffer): boolean {
    if (this.failed) return false;
    if (!this.decoder) {
      const decoder = decoderFor(this.coding!, chunk);
      if (!decoder) {
        this.fail(
          new UndecodableBody(
            `The upstream's answer is in a content coding (${this.coding}) the gateway cannot read.`,
          ),
        );
        return false;
      }
      this.decoder = decoder;
      decoder.on('data', (c: Buffer) => {
        if (!this.deliver(c)) decoder.pause();
      });
      decoder.on('drain', () => this.resumeFn?.());
      decoder.once('end', () => this.finish());
      decoder.once('error', (err) =>
        this.fail(
          new UndecodableBody(`The upstream's ${this.coding} answer does not decompress: ${err.message}`),
        ),
      );
    }
    return this.decoder.write(chunk);
  }

  private finish(): void {
    if (this.failed) return;
    this.ended = true;
    this.done(null);
  }

  onComplete(): void {
    this.stopDeadline();
    this.received = true;
    if (this.decoder) this.decoder.end();
    else this.finish();
  }

  onError(err: Error): void {
    this.stopDeadline();
    this.received = true;
    if (this.failed === null) this.failed = err;
    this.decoder?.destroy();
    const head = this.head;
    this.head = null;
    head?.reject(err);
    this.done(err);
  }

  private done(err: Error | null): void {
    if (this.cancel?.current === this) this.cancel.current = null;
    this.reader = null;
    const settle = this.settle;
    this.settle = null;
    settle?.(err);
  }
}

/** One keep-alive pool per upstream origin. */
export class Upstreams {
  private readonly pools = new Map<string, Pool>();

  constructor(private readonly connections = 128) {}

  pool(origin: string): Pool {
    let p = this.pools.get(origin);
    if (!p) {
      p = new Pool(origin, { connections: this.connections, pipelining: 1, keepAliveTimeout: 30_000 });
      this.pools.set(origin, p);
    }
    return p;
  }

  /** Sends a request; resolves with the answer's head once it has come, its body still to read. */
  request(
    origin: string,
    opts: {
      path: string;
      method: 'GET' | 'POST' | 'DELETE';
      headers: Record<string, string>;
      /** A stream (a file upload) goes as it is read, not retried. */
      body?: Buffer | string | Readable;
      cancel?: Cancel;
      timeoutMs: number;
    },
  ): Promise<UpstreamResponse> {
    return new Promise<UpstreamResponse>((resolve, reject) => {
      const call = new UpstreamCall({ resolve, reject }, opts.cancel ?? null);
      if (opts.timeoutMs <= PRECISE_TIMEOUT_UP_TO) call.timeOpening(opts.timeoutMs);
      this.pool(origin).dispatch(
        {
          path: opts.path,
          method: opts.method,
          headers: opts.headers,
          body: opts.body ?? null,
          headersTimeout: opts.timeoutMs,
          bodyTimeout: opts.timeoutMs,
        },
        call,
      );
    });
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close()));
    this.pools.clear();
  }
}
