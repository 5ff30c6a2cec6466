import type { ServerResponse } from 'node:http';
import { type HostedToolCalls, type ImageCount, nanoToUsd, type Tokens } from '@tally/core';
import { metaOf, readAnswerMeta } from './answer-meta.js';
import { hasEnded } from './background.js';
import type { AttemptContext, AttemptOutcome } from './meter.js';
import {
  type Accumulated,
  type ContainerSessions,
  failure,
  type Metered,
  passHeaders,
  type Recorder,
} from './relay.js';
import { sendError, type Wire } from './replies.js';
import { isStoredId } from './stored.js';
import { countTokens, estimatePromptTokens } from './tokenizer.js';
import type { UpstreamResponse } from './upstream.js';
import {
  errorAnswer,
  opensObject,
  readWhole,
  type StandIn,
  standInFor,
  type Unusable,
  unusableError,
  upstreamErrorType,
} from './upstream-answer.js';

type Obj = Record<string, unknown>;

/** The text of a whole answer (chat, Responses or Anthropic's), for counting its tokens. */
function answerText(json: Obj | null): string {
  if (!json) return '';
  const parts: string[] = [];
  const add = (v: unknown) => {
    if (typeof v === 'string') parts.push(v);
  };
  for (const c of (json['choices'] as Obj[] | undefined) ?? []) {
    const m = c?.['message'] as Obj | undefined;
    add(m?.['content']);
    for (const t of (m?.['tool_calls'] as Obj[] | undefined) ?? [])
      add((t?.['function'] as Obj | undefined)?.['arguments']);
  }
  for (const o of (json['output'] as Obj[] | undefined) ?? []) {
    add(o?.['arguments']);
    for (const p of (o?.['content'] as Obj[] | undefined) ?? []) add(p?.['text']);
  }
  for (const b of Array.isArray(json['content']) ? (json['content'] as Obj[]) : []) {
    add(b?.['text']);
    if (b?.['type'] === 'tool_use') parts.push(JSON.stringify(b['input'] ?? {}));
  }
  return parts.join('');
}

/** How a whole answer is relayed. */
export interface RelayOptions {
  /** The client's API: an error the upstream's body cannot give is answered in its format. */
  wire: Wire;
  /** A translated call's: turns the upstream's JSON (an answer or an error) into the client's. */
  transform?: ((json: Obj, status: number) => Obj) | undefined;
  /** Whether another attempt follows: an answer that cannot be used is then not answered. */
  retryable: boolean;
  /** The upstream's id, for messages, and its key, kept out of what the client sees. */
  provider: { id: string; api_key?: string | undefined };
  /** The most the answer may hold (decompressed). */
  limit: number;
  /** Bills the container sessions of the answer's code interpreter calls. */
  sessions?: ContainerSessions | undefined;
  /** For a background Responses call: takes the id of a response answered queued or in progress,
   * before the answer leaves. Such an answer is passed on and not metered ('background'). */
  background?: ((id: string) => void) | undefined;
  /** A 2xx answer may be text, not JSON (a transcription as text or subtitles): passed on as it
   * came, and metered estimated, from the prompt and its text. */
  text?: boolean | undefined;
  /** The usage of an answer that gives none in `usage` (a verbose transcript's: its duration). */
  usageOf?: ((json: Obj) => Obj | null) | undefined;
  /** The text answered in place of the JSON the upstream gave (a transcript's subtitles, made
   * from its verbose JSON). */
  render?: ((json: Obj) => string) | undefined;
  /** The images an answer that gives no usage made, billed by the image (dall-e's: its `data`). */
  imagesOf?: ((json: Obj) => ImageCount | null) | undefined;
  /** Whether a route's stand-in model of a kind is left to try for an error answer that calls for
   * one (standInFor): then the answer is recorded and not passed on (the kind is returned). */
  standIn?: ((kind: StandIn) => boolean) | undefined;
}

/** What became of a relayed answer: passed on, unusable and answered with a 502, or unusable with
 * another attempt to go (nothing answered); or an error that calls for a stand-in model (the
 * prompt too long for the model, a content filter's refusal), with one to go (nothing answered). */
export type Relayed = 'answered' | 'unusable' | 'retry' | 'background' | StandIn;

/** Relays a whole (non-streamed) answer, then meters it from its usage object (or, when a 2xx
 * answer has none, from the tokenizer, marked estimated). An answer that cannot be used (cut off,
 * too large, a 2xx that is not a JSON object) is recorded as an error, and answered with a 502, or
 * left to the next attempt. An error's body reaches the client without the provider's key, and
 * in the client's format. */
export async function relay(
  record: Recorder,
  res: ServerResponse,
  up: UpstreamResponse,
  ctx: AttemptContext,
  a0: number,
  acc: Accumulated,
  body: Obj,
  opts: RelayOptions,
): Promise<Relayed> {
  const { transform, provider, wire } = opts;
  const unusable = (why: Unusable): Relayed => {
    record(ctx, failure(res.destroyed ? 'client_disconnected' : why, a0), acc);
    // A body too large would be as large again from the next upstream.
    if (opts.retryable && !res.destroyed && why !== 'upstream_response_too_large') return 'retry';
    if (!res.headersSent) sendError(res, wire, unusableError(why, provider.id, opts.limit));
    return 'unusable';
  };
  const read = await readWhole(up, opts.limit);
  if (read.buf === null) return unusable(read.unusable);
  const buf = read.buf;
  const latencyMs = performance.now() - a0;
  // Redirects are never followed (the key would go where the base URL did not say).
  if (up.statusCode < 400 && up.statusCode >= 300) return unusable('upstream_redirect');
  if (up.statusCode >= 300) {
    const type = up.headers['content-type'];
    const error = errorAnswer(buf, up.statusCode, type, wire, provider.id, provider.api_key);
    const out = transform && error.json ? JSON.stringify(transform(error.json, up.statusCode)) : error.text;
    const failed = failure(upstreamErrorType(up.statusCode, error.json), a0);
    failed.latencyMs = latencyMs;
    const kind = opts.standIn && !res.destroyed ? standInFor(up.statusCode, error.json) : null;
    if (kind && opts.standIn?.(kind)) {
      record(ctx, failed, acc);
      return kind;
    }
    return answer(record, res, up, ctx, acc, failed, Buffer.from(out), 'application/json');
  }
  let usage: Obj | null = null;
  let served: string | null = null;
  let serviceTier: string | null = null;
  let toolCalls: HostedToolCalls | null = null;
  let containers: string[] | null = null;
  let responseId: string | null = null;
  let json: Obj | null = null;
  if (opts.text && !opensObject(buf)) {
    const estimated = {
      input: await estimatePromptTokens(body),
      output: await countTokens(buf.toString('utf8')),
    };
    const outcome: AttemptOutcome = {
      status: 'ok',
      errorType: 'upstream_no_usage',
      usage: null,
      estimated,
      modelServed: null,
      latencyMs,
      ttftMs: null,
    };
    return answer(
      record,
      res,
      up,
      ctx,
      acc,
      outcome,
      buf,
      String(up.headers['content-type'] ?? 'text/plain'),
    );
  }
  try {
    if (!opensObject(buf)) throw new SyntaxError('not an object');
    if (transform || opts.background || opts.render) {
      // Parsed whole: a translated answer is rewritten, a background one read for its status, a
      // verbose transcript rendered in the format asked.
      json = JSON.parse(buf.toString('utf8')) as Obj;
      const meta = metaOf(json);
      ({ usage, model: served, serviceTier, toolCalls, containers } = meta);
      // A translated answer's id is the gateway's own: nothing upstream holds it.
      if (!transform) responseId = meta.id;
    } else {
      // Only usage and model are needed: a large answer is not parsed whole (answer-meta.ts).
      ({ usage, model: served, serviceTier, toolCalls, containers, id: responseId } = readAnswerMeta(buf));
    }
    if (usage === null && opts.usageOf) {
      json ??= JSON.parse(buf.toString('utf8')) as Obj;
      usage = opts.usageOf(json);
    }
  } catch {
    return unusable('upstream_invalid_response');
  }
  // A background response that has not ended: its usage comes later, to the watch.
  if (opts.background && responseId !== null && isStoredId(responseId) && !hasEnded(json)) {
    opts.background(responseId);
    send(res, up, ctx, acc, buf, String(up.headers['content-type'] ?? 'application/json'), null);
    return 'background';
  }
  // An image model billed by the image (dall-e) gives no usage: its images are counted.
  let images: ImageCount | null = null;
  if (usage === null && opts.imagesOf) {
    json ??= JSON.parse(buf.toString('utf8')) as Obj;
    images = opts.imagesOf(json);
  }
  // A 2xx answer without usage (some OpenAI-compatible servers) is not free: its tokens are
  // counted, the prompt's and the answer's, and the call marked estimated.
  let estimated: Partial<Tokens> | null = null;
  if (usage === null && images === null) {
    const whole = json ?? (JSON.parse(buf.toString('utf8')) as Obj);
    estimated = { input: await estimatePromptTokens(body), output: await countTokens(answerText(whole)) };
  }
  if (containers && opts.sessions) toolCalls = await opts.sessions(ctx, body, containers, toolCalls);
  // A translated call answers in the client's API: the upstream's body becomes OpenAI's shape.
  const out =
    transform && json
      ? Buffer.from(JSON.stringify(transform(json, up.statusCode)))
      : opts.render && json
        ? Buffer.from(opts.render(json))
        : buf;
  const outcome: AttemptOutcome = {
    status: 'ok',
    errorType: usage === null && images === null ? 'upstream_no_usage' : null,
    usage,
    estimated,
    images,
    modelServed: served,
    serviceTier,
    toolCalls,
    responseId,
    latencyMs,
    ttftMs: null,
  };
  const type = transform
    ? 'application/json'
    : opts.render
      ? 'text/plain; charset=utf-8'
      : String(up.headers['content-type'] ?? 'application/json');
  return answer(record, res, up, ctx, acc, outcome, out, type);
}

/** Meters an attempt and passes its answer on. */
function answer(
  record: Recorder,
  res: ServerResponse,
  up: UpstreamResponse,
  ctx: AttemptContext,
  acc: Accumulated,
  outcome: AttemptOutcome,
  out: Buffer,
  contentType: string,
): Relayed {
  // Priced before the answer leaves, so that the answer can say what it cost; handed to the sink
  // after it, so that encoding the record is not on the client's wait. If metering fails, the
  // answer still goes, and the failure is raised after it.
  let metered: Metered | null = null;
  let meterError: unknown = null;
  try {
    metered = record(ctx, outcome, acc, true);
  } catch (err) {
    meterError = err;
  }
  try {
    send(res, up, ctx, acc, out, contentType, metered ? metered.cost : null);
  } finally {
    // The upstream answered, so the call is recorded even if its answer could not be passed on.
    metered?.write();
  }
  if (meterError) throw meterError;
  return 'answered';
}

/** Writes a whole answer: the upstream's passed headers, the call's id and, when it could be
 * priced, the whole request's cost (earlier failed attempts cost nothing). */
function send(
  res: ServerResponse,
  up: UpstreamResponse,
  ctx: AttemptContext,
  acc: Accumulated,
  out: Buffer,
  contentType: string,
  cost: bigint | null,
): void {
  res.writeHead(up.statusCode, {
    ...passHeaders(up.headers),
    ...acc.headers,
    'x-tally-call-id': ctx.id,
    ...(cost !== null ? { 'x-tally-cost-usd': nanoToUsd(acc.spentNano) } : {}),
    'content-type': contentType,
    'content-length': out.length,
  });
  res.end(out);
}
