import type { ServerResponse } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import type { HostedToolCalls, Tokens } from '@tally/core';
import type { AttemptContext, AttemptOutcome } from './meter.js';
import type { Endpoint } from './providers.js';
import { eventData, SseSplitter } from './sse.js';
import { streamMeter } from './stream-meter.js';
import { countTokens, estimatePromptTokens } from './tokenizer.js';
import { type Cancel, ResponseTooLarge, type UpstreamCall, type UpstreamResponse } from './upstream.js';

type Obj = Record<string, unknown>;

/** Meters one attempt (and adds its cost to the request's total); returns the attempt's cost in
 * nano-USD, or null if it could not be priced. With `later`, the record is priced now and handed
 * to the sink by the returned function, once the answer has left. */
export type Recorder = {
  (ctx: AttemptContext, out: AttemptOutcome, acc: Accumulated): bigint | null;
  (ctx: AttemptContext, out: AttemptOutcome, acc: Accumulated, later: true): Metered;
};

/** `calls` with the container sessions billed for the containers an answer's code interpreter
 * calls used (containers.ts). */
export type ContainerSessions = (
  ctx: AttemptContext,
  body: Obj,
  ids: readonly string[],
  calls: HostedToolCalls | null,
) => Promise<HostedToolCalls | null>;

/** An attempt priced and not yet handed to the sink. */
export interface Metered {
  cost: bigint | null;
  write(): void;
}

/** What one request added up to, across its attempts. */
export interface Accumulated {
  spentNano: bigint;
  tokens: number;
  /** An attempt went upstream and came back with usage no price covers (or none could read): the
   * call's budgets are settled at what was reserved for it, not at nothing. */
  unpriced?: boolean;
  /** Headers for the client's response (x-tally-downgraded). */
  headers: Record<string, string>;
  /** The tokens a call's rate limits took for it (its prompt by the tokenizer, and the most output
   * it allows): what an upstream's quota takes too. */
  heldTokens?: number;
  /** A background Responses call answered queued: the attempt, still under way, that the
   * gateway watches until its response ends (background.ts), and whose budgets settle then. */
  background?: { ctx: AttemptContext; body: Obj; provider: string; id: string } | undefined;
}

/** Upstream response headers worth passing on: ids, and when to try again. Not those that name
 * the gateway's account with the provider (openai-organization, openai-project,
 * anthropic-organization-id), nor that account's rate limits (x-ratelimit-*,
 * anthropic-ratelimit-*): a key's own limits are its x-ratelimit-* headers, and the provider's
 * would mix with them and show every key holder the organisation's. */
const PASS_HEADERS = /^(x-request-id$|request-id$|openai-processing-ms$|openai-version$|retry-after$)/;

export function passHeaders(h: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k in h) if (PASS_HEADERS.test(k)) out[k] = h[k]!;
  return out;
}

export function failure(errorType: string, a0: number): AttemptOutcome {
  return {
    status: 'error',
    errorType,
    usage: null,
    estimated: null,
    modelServed: null,
    latencyMs: performance.now() - a0,
    ttftMs: null,
  };
}

/** A cut-off stream's tokens: the prompt as the upstream counted it where it said (with Anthropic's
 * cache reads and writes, which its message_start gives apart), else by the tokenizer; the output
 * by the tokenizer, from the text seen. */
async function estimateStream(
  endpoint: Endpoint,
  usage: Obj | null,
  body: Obj,
  text: string,
): Promise<Partial<Tokens>> {
  const output = await countTokens(text);
  const input = usage?.['input_tokens'];
  if (typeof input !== 'number') return { input: await estimatePromptTokens(body), output };
  if (endpoint !== 'messages') return { input, output };
  const read = Number(usage?.['cache_read_input_tokens'] ?? 0) || 0;
  const write = Number(usage?.['cache_creation_input_tokens'] ?? 0) || 0;
  // Of the writes, those kept for an hour cost more than the five-minute ones.
  const creation = usage?.['cache_creation'] as Obj | undefined;
  const write1h = Math.min(write, Number(creation?.['ephemeral_1h_input_tokens'] ?? 0) || 0);
  return {
    input: input + read + write,
    cache_read: read,
    cache_write: write,
    cache_write_1h: write1h,
    output,
  };
}

/** Holds an upstream's body back until the client's socket drains (or closes): for a reader that
 * wrote more than the socket took. Returns false, which holds the body back. */
export function holdBack(res: ServerResponse, body: UpstreamCall): false {
  const go = () => {
    res.off('drain', go);
    res.off('close', go);
    body.resume();
  };
  res.once('drain', go);
  res.once('close', go);
  return false;
}

/** Why a body relayed as it came stopped short: the client went, the upstream sent too much, took
 * too long, or broke off. */
export function streamFailure(err: unknown, signal: Cancel): string {
  return signal.aborted
    ? 'client_disconnected'
    : err instanceof ResponseTooLarge
      ? 'upstream_response_too_large'
      : (err as { code?: string }).code?.includes('TIMEOUT')
        ? 'upstream_timeout'
        : 'upstream_stream_error';
}

/** Why a stream was given up before anything of it reached the client: it opened with an error. */
class OpenedWithError extends Error {
  readonly code = 'TALLY_STREAM_OPENED_WITH_ERROR';
}

/** Errors another upstream, or the same one a moment later, may not meet: overloaded, rate-limited,
 * a server error. */
const TRANSIENT = /overloaded|rate_limit|server_error|api_error|unavailable|timeout|insufficient_quota/;

/**
 * The kind of an error event that opens a stream, when it is transient (TRANSIENT): Anthropic's
 * `error` event when it is overloaded (`overloaded_error`, which a whole answer gives as a 529), an
 * OpenAI chat chunk that carries an error (`server_error`), a Responses stream's `error` event or
 * `response.failed` (`rate_limit_exceeded`, as Azure's deployment at its TPM sends); null for any
 * other event or error.
 */
export function transientStreamError(ev: string): string | null {
  const data = eventData(ev);
  if (data === null || !data.includes('"error"')) return null;
  let d: Record<string, unknown>;
  try {
    d = JSON.parse(data) as Record<string, unknown>;
  } catch {
    return null;
  }
  const failed = d['type'] === 'response.failed' ? (d['response'] as Record<string, unknown> | null) : null;
  const error = failed ? failed['error'] : d['error'];
  const e = typeof error === 'object' && error !== null ? (error as Record<string, unknown>) : {};
  const kind = [e['code'], e['type'], d['type'] === 'error' ? d['code'] : undefined].find(
    (k): k is string => typeof k === 'string' && TRANSIENT.test(k),
  );
  return kind ?? null;
}

/** The events a stream opens with, before any output: held back (they say only that the response
 * was made) while an error may still follow them, as a Responses stream's rate limit does, and as
 * Anthropic's overloaded error may after its message_start. */
const PREAMBLE = /^event: ?(response\.(created|in_progress)|message_start|content_block_start|ping)\b/;

/** How a stream is relayed, beyond the call it belongs to. */
export interface StreamOptions {
  /** Hide the usage chunk the gateway asked for (stream_options.include_usage) from a client that
   * did not ask for it. */
  hideUsage: boolean;
  /** The most bytes the upstream may send (gateway.max_response_bytes): past it the stream is cut
   * off, as an upstream that broke off would be, and metered from what came. */
  limit: number;
  /** Tells each event in the client's API (a translated call). */
  translate?: ((ev: string) => string) | undefined;
  sessions?: ContainerSessions | undefined;
  /** For a background Responses call: takes the response's id as soon as the stream names it. A
   * stream that stops before the response has ended (the client gone) is then not metered: the
   * response runs on upstream, and the gateway watches it (background.ts). */
  background?: ((id: string) => void) | undefined;
  /** The plan has more to try: a stream that fails before anything of it has been passed on is
   * given up. */
  retryable?: boolean;
}

/** Relays a stream event by event (translated if asked), metering it as it passes. A stream that
 * opens with a transient error (transientStreamError), or times out, before anything of it has been
 * passed on, is given up when `retryable` (the plan has more to try): its error type is returned
 * (`upstream_stream_error:<kind>`, `upstream_timeout`), for the caller to record the attempt and try
 * the next, the client none the wiser. */
export async function relayStream(
  record: Recorder,
  res: ServerResponse,
  up: UpstreamResponse,
  ctx: AttemptContext,
  endpoint: Endpoint,
  body: Obj,
  a0: number,
  signal: Cancel,
  acc: Accumulated,
  opts: StreamOptions,
): Promise<string | undefined> {
  const { hideUsage, limit, translate, sessions, background, retryable = false } = opts;
  // The head is written with the first event, in one write (no flushHeaders()): until then, a
  // stream that opens with an error can be given up for the next attempt.
  let opened = false;
  const open = () => {
    opened = true;
    res.writeHead(200, {
      ...passHeaders(up.headers),
      ...acc.headers,
      'x-tally-call-id': ctx.id,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
    });
  };
  let gaveUp: string | null = null;
  // A Responses or Anthropic stream's preamble, held back until its first event past it (not a
  // background call's, whose client wants the response's id at once).
  const holding =
    retryable && background === undefined && (endpoint === 'responses' || endpoint === 'messages');
  let held = '';
  const splitter = new SseSplitter();
  const meter = streamMeter(endpoint, hideUsage);
  ctx.progress = meter;
  // Holds back a character cut across chunks; five times cheaper a chunk than TextDecoder's stream.
  const decoder = new StringDecoder('utf8');
  let ttft: number | null = null;
  let failed: string | null = null;
  let corked = false;
  try {
    // Each chunk straight from undici's parser: no stream object in between. A slow client holds
    // the upstream back until its socket drains.
    // The meter keeps what it may need for an estimate: without the limit, an upstream that never
    // ends would hold all it sent.
    let named = background === undefined;
    await up.body.read((chunk) => {
      if (gaveUp !== null) return false;
      ttft ??= performance.now() - a0;
      const wasEmpty = splitter.pending === 0;
      let out = '';
      let kept = true;
      for (const ev of splitter.push(decoder.write(chunk))) {
        const passed = meter.onEvent(ev);
        // Nothing passed on yet: an error that opens the stream gives it up, when the plan has more.
        if (!opened && retryable && out === '') {
          if (meter.error() !== null) {
            const kind = transientStreamError(ev);
            if (kind !== null) {
              gaveUp = `upstream_stream_error:${kind}`;
              up.body.abort(new OpenedWithError(kind));
              return false;
            }
          } else if (holding && passed && PREAMBLE.test(ev)) {
            held += translate ? translate(ev) : ev;
            kept = false;
            continue;
          }
        }
        if (passed) out += translate ? translate(ev) : ev;
        else kept = false;
      }
      if (!named && meter.responseId() !== null) {
        named = true;
        background!(meter.responseId()!);
      }
      // The opening events held back go out before the first event past them.
      if (held !== '' && out !== '') {
        out = held + out;
        held = '';
      }
      // A chunk of whole events, all passed on unchanged, goes out as the bytes that came in.
      const whole = !translate && kept && wasEmpty && splitter.pending === 0;
      const payload: Buffer | string = whole ? chunk : out;
      if (payload.length === 0) return true;
      if (!opened) open();
      // The last event and the end of the response leave in one write: corked here, the socket
      // is uncorked by res.end(), which follows in this turn of the loop (or by the next, if the
      // upstream holds its end back).
      if (meter.done && !corked) {
        corked = true;
        res.cork();
        setImmediate(() => {
          if (!res.writableEnded) res.uncork();
        });
      }
      return res.write(payload) || holdBack(res, up.body);
    }, limit);
    const rest = splitter.rest() + decoder.end();
    if (rest.trim() && meter.onEvent(rest)) held += translate ? translate(rest) : rest;
    if (held !== '' && gaveUp === null) {
      if (!opened) open();
      res.write(held);
    }
  } catch (err) {
    failed = streamFailure(err, signal);
    // A stream that sent nothing within its timeout (a stalled upstream) is given up too.
    if (failed === 'upstream_timeout' && !opened && retryable) gaveUp = failed;
  }
  // Given up (the read ends with the abort, or at once, the stream having come whole before it).
  if (gaveUp !== null) {
    ctx.progress = undefined;
    return gaveUp;
  }
  if (signal.aborted) failed = 'client_disconnected';
  // An upstream that broke off before its last event is not passed on as a finished answer: the
  // client's connection is cut as the upstream's was, so that it sees an error, not a short reply.
  if (failed !== null && failed !== 'client_disconnected' && !meter.done) res.destroy();
  else if (!res.destroyed) {
    if (!opened) open();
    res.end();
  }
  const usage = meter.usage();
  // Anthropic's message_start carries usage too: only a stream that reached its end has the final
  // output count.
  const complete = failed === null && usage !== null && (endpoint !== 'messages' || meter.done);
  if (acc.background?.ctx === ctx) {
    // A background response whose stream stopped before it ended is left to the watch.
    if (!(complete && meter.done)) {
      ctx.progress = undefined;
      return;
    }
    acc.background = undefined;
  }
  const estimated = complete ? null : await estimateStream(endpoint, usage, body, meter.text());
  const used = meter.containers();
  const toolCalls = used && sessions ? await sessions(ctx, body, used, meter.toolCalls()) : meter.toolCalls();
  record(
    ctx,
    {
      status: failed === null && meter.error() === null ? 'ok' : 'error',
      errorType: failed ?? meter.error() ?? (usage === null ? 'upstream_no_usage' : null),
      usage: complete ? usage : null,
      estimated,
      modelServed: meter.model(),
      serviceTier: meter.serviceTier(),
      toolCalls,
      responseId: meter.responseId(),
      latencyMs: performance.now() - a0,
      ttftMs: ttft,
    },
    acc,
  );
  ctx.progress = undefined;
}
