import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ImageCount } from '@tally/core';
import type { Breakers } from './breaker.js';
import { durationUsage, PLAIN_TRANSCRIPTS, plainTranscript, withAddedField, withField } from './form.js';
import { editTopLevel } from './json-edit.js';
import type { AttemptContext, Attribution } from './meter.js';
import {
  ENDPOINT_API,
  type Endpoint,
  isForm,
  priceProviderOf,
  translatedFromMessages,
  translatedToMessages,
  upstreamFor,
} from './providers.js';
import { type Accumulated, type ContainerSessions, failure, type Recorder, relayStream } from './relay.js';
import { relaySpeech } from './relay-speech.js';
import { relay } from './relay-whole.js';
import { badRequest, type GatewayError, sendError, wireOf } from './replies.js';
import { type Attempt, isStandIn } from './router.js';
import type { RateBucket, RateResult } from './state/shared-state.js';
import { estimatePromptTokens } from './tokenizer.js';
import { AnthropicToOpenAiStream } from './translate/anthropic-stream.js';
import { toAnthropicError, toAnthropicMessage, toChatRequest } from './translate/anthropic-to-openai.js';
import {
  answerTool,
  TranslationError,
  toAnthropicRequest,
  toOpenAiError,
  toOpenAiResponse,
} from './translate/openai-to-anthropic.js';
import { OpenAiToAnthropicStream } from './translate/openai-to-anthropic-stream.js';
import { AnthropicToResponsesStream } from './translate/responses-stream.js';
import { responsesToAnthropicRequest, toResponsesResponse } from './translate/responses-to-anthropic.js';
import type { GatewayConfig, GatewayDeps, VirtualKey } from './types.js';
import { Cancel, type UpstreamResponse, type Upstreams } from './upstream.js';
import {
  DEFAULT_MAX_RESPONSE_BYTES,
  parseObject,
  readWhole,
  type StandIn,
  upstreamErrorType,
} from './upstream-answer.js';

type Obj = Record<string, unknown>;

/** What is read of an error answer that another attempt follows, for its code; past it, the code
 * is left out (an HTML page from a proxy in front of the upstream, say). */
const ERROR_BODY_LIMIT = 64 * 1024;

const RETRYABLE = (status: number) => status === 429 || status >= 500;

/** What forwarding needs from the gateway: its dependencies, pools, breakers and meter. */
export interface ForwardEnv {
  deps: GatewayDeps;
  upstreams: Upstreams;
  breakers: Breakers;
  recorder: Recorder;
  sessions: ContainerSessions;
  /** An attempt is about to go upstream (it is under way until it is recorded)... */
  started(ctx: AttemptContext, body: Obj): void;
  /** ...and is over. */
  ended(ctx: AttemptContext): void;
  /** A stored response's id is known: its follow-ups can reach it (stored.ts). */
  stored(ctx: AttemptContext, id: string): void;
}

/** Whether the model an attempt sends to is billed by the second of audio (whisper-1), as the
 * catalog prices it: one whose plain transcripts give no usage, and whose verbose JSON does. */
function billedBySecond(deps: GatewayDeps, attempt: Attempt, tenant: string): boolean {
  const priced = deps.price({
    provider: priceProviderOf(attempt.provider),
    api: ENDPOINT_API.transcriptions,
    model: attempt.model,
    usage: { type: 'duration', seconds: 1 },
    tenant,
  });
  return priced.status === 'priced';
}

/** `count` images at the quality and size a request asks (null: the model's default). */
export function imagesAsked(body: Obj, count: number): ImageCount {
  const text = (v: unknown) => (typeof v === 'string' ? v : null);
  return { count, quality: text(body['quality']), size: text(body['size']) };
}

/** The images an answer lists (`data`), at the quality and size the request asked; null for an
 * answer that lists none. */
function imagesMade(json: Obj, body: Obj): ImageCount | null {
  const data = json['data'];
  return Array.isArray(data) && data.length > 0 ? imagesAsked(body, data.length) : null;
}

/**
 * Tries the planned attempts in order: each is sent (translated for an Anthropic upstream), and a
 * retryable failure (429, 5xx, timeout, connection error) tries it again (its route's `retries`)
 * or moves on to the next, every attempt metered; an answer that the prompt is too long for the
 * model moves on to the route's models for longer prompts (its `context_fallback` attempts), in
 * place of the attempts left; an upstream at its quota is passed over. The answer is relayed as
 * JSON or event by event. A request the first attempt cannot be translated for, or whose upstreams
 * are all at their quota, is not answered here: its refusal is returned, for the gateway to answer.
 */
export async function forwardAttempts(
  env: ForwardEnv,
  req: IncomingMessage,
  res: ServerResponse,
  endpoint: Endpoint,
  raw: Buffer,
  body: Obj,
  model: string,
  attempts: Attempt[],
  key: VirtualKey,
  attribution: Attribution,
  time: number,
  acc: Accumulated,
): Promise<GatewayError | undefined> {
  const wire = wireOf(endpoint);
  const stream = body['stream'] === true;
  const clientWantsUsage = stream && (body['stream_options'] as Obj | undefined)?.['include_usage'] === true;

  // A client that goes away mid-stream (or mid-speech: its audio comes as it is made) aborts the
  // upstream call. A plain call runs to its end: the provider bills it either way, so it is
  // metered in full.
  const abort = stream || endpoint === 'speech' ? new Cancel() : null;
  if (abort) {
    res.once('close', () => {
      if (!res.writableFinished) abort.abort();
    });
  }

  // Translated calls (OpenAI's for Claude, Anthropic's for any other model) are translated before
  // anything goes: a request the first attempt cannot take is refused at once, and a fallback that
  // could not take it is left out, so that it never hides the error of the upstream before it.
  let translations: ReadonlyMap<Attempt, string> = NO_TRANSLATIONS;
  let planned = attempts;
  const translated = (a: Attempt) =>
    translatedToMessages(a.provider, endpoint) || translatedFromMessages(a.provider, endpoint);
  if (attempts.some(translated)) {
    const maxOut = env.deps.config.default_max_output ?? 4096;
    const made = new Map<Attempt, string>();
    translations = made;
    planned = [];
    for (const attempt of attempts) {
      if (!translated(attempt)) {
        planned.push(attempt);
        continue;
      }
      try {
        const request =
          endpoint === 'messages'
            ? // The model as the upstream's body names it (an Azure v1 deployment's name).
              toChatRequest(
                body,
                upstreamFor(attempt.provider, 'chat', attempt.model, req.headers).bodyModel,
                attempt.provider.kind,
                attempt.provider.api_version,
              )
            : endpoint === 'responses'
              ? responsesToAnthropicRequest(body, attempt.model, maxOut)
              : toAnthropicRequest(body, attempt.model, maxOut);
        made.set(attempt, JSON.stringify(request));
        planned.push(attempt);
      } catch (err) {
        if (!(err instanceof TranslationError)) throw err;
        if (attempt === attempts[0]) return badRequest(err.message, err.code);
      }
    }
  }

  // A route's stand-ins wait apart: those of a kind take the place of the attempts left only once
  // an upstream's answer calls for them (the prompt too long for its model, a content filter's
  // refusal). They are last in a plan: one without them, the common case, is taken as it is.
  const lastPlanned = planned.at(-1);
  const standIns = lastPlanned && isStandIn(lastPlanned) ? new Map<StandIn, Attempt[]>() : null;
  let queue = planned;
  if (standIns) {
    queue = planned.filter((a) => !isStandIn(a));
    for (const a of planned) {
      if (!isStandIn(a)) continue;
      const of = standIns.get(a.tier);
      if (of) of.push(a);
      else standIns.set(a.tier, [a]);
    }
  }
  // The request's id is its first attempt's: every attempt carries it, and so does the answer.
  let requestId: string | null = null;
  // An attempt tried again (its route's `retries`) comes again right after itself, after a wait.
  let retried: Map<Attempt, number> | null = null;
  let wait = 0;
  for (let i = 0; i < queue.length; i++) {
    if (wait > 0) {
      await sleep(wait);
      wait = 0;
    }
    // A client that has gone (during the wait, or the attempt before) is not answered: nothing more
    // is sent upstream, where it would be billed for nobody.
    if (i > 0 && (abort?.aborted || res.destroyed)) return;
    const attempt = queue[i]!;
    const tries = retried?.get(attempt) ?? 0;
    const again = tries < (attempt.retries ?? env.deps.config.retries ?? 0);
    const last = i === queue.length - 1 && !again;
    // An upstream at its quota is passed over; when the last one is, the call is answered 429 (a
    // refusal, recorded as such, if nothing went upstream before it).
    let held = 0;
    if (attempt.quota) {
      held = acc.heldTokens ?? (await estimatePromptTokens(body));
      const full = await takeQuota(env, attempt, held);
      if (full) {
        if (i < queue.length - 1) continue;
        const err = upstreamQuotaExceeded(full, attempt);
        if (requestId === null) return err;
        sendError(res, wire, { ...err, headers: { ...acc.headers, ...err.headers } });
        return;
      }
    }
    const id = env.deps.newId();
    if (requestId === null) {
      requestId = id;
      acc.headers['x-tally-request-id'] = id;
    }
    const ctx: AttemptContext = {
      id,
      requestId,
      time,
      key,
      attribution,
      priceProvider: priceProviderOf(attempt.provider),
      upstreamApi: ENDPOINT_API[endpoint],
      modelRequested: model,
      modelSent: attempt.model,
      fallbackHops: i,
      routeTier: attempt.tier === 'primary' ? null : attempt.tier,
      upstream: attempt.provider.id,
    };
    // An OpenAI chat or Responses call to an Anthropic provider is translated both ways, and so is
    // an Anthropic messages call to any other provider (as a chat completion).
    const toClaude = translatedToMessages(attempt.provider, endpoint);
    const fromClaude = translatedFromMessages(attempt.provider, endpoint);
    const target = upstreamFor(
      attempt.provider,
      toClaude ? 'messages' : fromClaude ? 'chat' : endpoint,
      attempt.model,
      req.headers,
    );
    let payload: Buffer | string;
    let headers = target.headers;
    // A translation's JSON gives no usage, nor does the text or the subtitles of a transcript or a
    // translation: a model billed by the second (whisper-1) is asked for its verbose JSON, whose
    // duration is what it bills, and the client is answered in the format it asked: the JSON's
    // text, or the text and the subtitles made from the verbose JSON's segments.
    const format = body['response_format'] ?? 'json';
    const plain =
      (endpoint === 'translations' || endpoint === 'transcriptions') &&
      typeof format === 'string' &&
      PLAIN_TRANSCRIPTS.has(format) &&
      billedBySecond(env.deps, attempt, key.tenant);
    const verbose = plain || (endpoint === 'translations' && format === 'json');
    if (toClaude || fromClaude) {
      ctx.upstreamApi = toClaude ? 'anthropic-messages' : ENDPOINT_API.chat;
      payload = translations.get(attempt)!;
    } else if (isForm(endpoint)) {
      // A multipart form, sent as it came but for the model a route or deployment names.
      const type = String(req.headers['content-type']);
      headers = { ...target.headers, 'content-type': type };
      payload =
        target.bodyModel === body['model'] ? raw : (withField(raw, type, 'model', target.bodyModel) ?? raw);
      if (verbose) payload = withAddedField(payload, type, 'response_format', 'verbose_json');
    } else {
      payload = bodyFor(raw, body, endpoint, stream && !clientWantsUsage, target.bodyModel);
    }
    // An answer the provider stores can be followed up: a Responses answer unless store: false, a
    // chat completion when store: true.
    if (
      !toClaude &&
      !fromClaude &&
      ((endpoint === 'responses' && body['store'] !== false) ||
        (endpoint === 'chat' && body['store'] === true))
    )
      ctx.storedWith = attempt.provider.id;
    env.started(ctx, body);
    env.breakers.claim(attempt.provider.id);
    const tokensBefore = acc.tokens;
    try {
      const a0 = performance.now();
      let up: UpstreamResponse;
      try {
        up = await env.upstreams.request(target.origin, {
          path: target.path,
          method: 'POST',
          headers,
          body: payload,
          ...(abort ? { cancel: abort } : {}),
          timeoutMs: attempt.timeoutMs ?? attempt.provider.timeout_ms ?? env.deps.config.timeout_ms,
        });
      } catch (err) {
        if (abort?.aborted) {
          env.breakers.release(attempt.provider.id);
          // The prompt went upstream and may be billed: it is counted, and the call marked
          // estimated, as a stream cut off later is.
          const cut = failure('client_disconnected', a0);
          cut.estimated = { input: await estimatePromptTokens(body), output: 0 };
          env.recorder(ctx, cut, acc);
          return;
        }
        env.breakers.failure(attempt.provider.id);
        const timeout = (err as { code?: string }).code?.includes('TIMEOUT') ?? false;
        const errorType = timeout ? 'upstream_timeout' : 'upstream_connection_error';
        env.recorder(ctx, failure(errorType, a0), acc);
        if (again) ({ queue, wait, retried } = tryAgain(queue, i, retried, env.deps.config));
        if (!last) continue;
        sendError(res, wire, {
          status: timeout ? 504 : 502,
          type: 'api_error',
          code: errorType,
          message: `The upstream ${attempt.provider.id} did not answer (${errorType}).`,
          headers: acc.headers,
        });
        return;
      }
      if (RETRYABLE(up.statusCode)) env.breakers.failure(attempt.provider.id);
      else env.breakers.success(attempt.provider.id);
      if (RETRYABLE(up.statusCode) && !last) {
        // Read (a little of it) for the code that says what failed: a 429 for want of quota is not
        // one for speed.
        const read = await readWhole(up, ERROR_BODY_LIMIT);
        const json = read.buf === null ? null : parseObject(read.buf.toString('utf8'));
        env.recorder(ctx, failure(upstreamErrorType(up.statusCode, json), a0), acc);
        if (again) ({ queue, wait, retried } = tryAgain(queue, i, retried, env.deps.config, up.headers));
        continue;
      }
      const limit = env.deps.config.max_response_bytes ?? DEFAULT_MAX_RESPONSE_BYTES;
      // A background response answered before it has ended is watched until it does: metered then.
      const background =
        !toClaude && endpoint === 'responses' && body['background'] === true
          ? (id: string) => {
              env.stored(ctx, id);
              acc.background = { ctx, body, provider: attempt.provider.id, id };
            }
          : undefined;
      const isStream =
        stream && up.statusCode === 200 && String(up.headers['content-type'] ?? '').includes('event-stream');
      if (endpoint === 'speech' && up.statusCode === 200 && abort) {
        await relaySpeech(env.recorder, res, up, ctx, body, a0, abort, acc, limit);
      } else if (isStream && abort) {
        // A stream that opens with a transient error (an overloaded Anthropic), or stalls past its
        // timeout, is given up before anything of it reaches the client, when the plan has more.
        let gaveUp: string | undefined;
        if (fromClaude || toClaude) {
          // Translated: the upstream's stream is read as its own API's, and told as the client's.
          const created = Math.floor(time / 1000);
          const t = fromClaude
            ? new OpenAiToAnthropicStream(await estimatePromptTokens(body))
            : endpoint === 'responses'
              ? new AnthropicToResponsesStream(body, created)
              : new AnthropicToOpenAiStream(created, clientWantsUsage, answerTool(body)?.name ?? null);
          gaveUp = await relayStream(
            env.recorder,
            res,
            up,
            ctx,
            fromClaude ? 'chat' : 'messages',
            body,
            a0,
            abort,
            acc,
            { hideUsage: false, limit, translate: (ev) => t.translate(ev), retryable: !last },
          );
        } else {
          gaveUp = await relayStream(env.recorder, res, up, ctx, endpoint, body, a0, abort, acc, {
            hideUsage: !clientWantsUsage,
            limit,
            sessions: env.sessions,
            background,
            retryable: !last,
          });
        }
        if (gaveUp !== undefined) {
          env.breakers.failure(attempt.provider.id);
          env.recorder(ctx, failure(gaveUp, a0), acc);
          if (again) ({ queue, wait, retried } = tryAgain(queue, i, retried, env.deps.config));
          continue;
        }
      } else {
        const created = Math.floor(time / 1000);
        const transform = fromClaude
          ? (json: Obj, status: number) =>
              status >= 300 ? toAnthropicError(json, status) : toAnthropicMessage(json)
          : toClaude
            ? (json: Obj, status: number) =>
                status >= 300
                  ? toOpenAiError(json, status)
                  : endpoint === 'responses'
                    ? toResponsesResponse(json, body, created)
                    : toOpenAiResponse(json, created, answerTool(body)?.name ?? null)
            : verbose && !plain
              ? (json: Obj, status: number) => (status >= 300 ? json : { text: json['text'] })
              : undefined;
        // An answer that cannot be used (cut off, not JSON, a redirect) is an upstream failure:
        // the next attempt, if any, is tried.
        const relayed = await relay(env.recorder, res, up, ctx, a0, acc, body, {
          wire,
          transform,
          retryable: !last,
          provider: attempt.provider,
          limit,
          sessions: env.sessions,
          background: transform ? undefined : background,
          // A transcription asked as text (or subtitles) is answered as such, with no usage.
          text: endpoint === 'transcriptions' || endpoint === 'translations',
          // A verbose transcript's usage is its duration.
          usageOf: endpoint === 'translations' || plain ? durationUsage : undefined,
          render: plain ? (json: Obj) => plainTranscript(json, format as string) : undefined,
          // dall-e's answer gives no usage: it is billed by the image.
          imagesOf:
            endpoint === 'images' || endpoint === 'image_edits'
              ? (json: Obj) => imagesMade(json, body)
              : undefined,
          // A stand-in of the kind the answer calls for is left: those not yet tried, or the next
          // of the same kind as this one.
          standIn: standIns
            ? (kind: StandIn) => standIns.has(kind) || (attempt.tier === kind && queue[i + 1]?.tier === kind)
            : undefined,
        });
        if (relayed === 'context_fallback' || relayed === 'policy_fallback') {
          // The stand-ins the answer called for take the place of the attempts left (or, already
          // under way, the next of them is tried).
          const more = standIns?.get(relayed);
          if (more) {
            queue = [...queue.slice(0, i + 1), ...more];
            standIns?.delete(relayed);
          }
          continue;
        }
        // A background response answered queued is an answer: only an unusable one is a failure.
        if (relayed === 'unusable' || relayed === 'retry') env.breakers.failure(attempt.provider.id);
        if (relayed === 'retry') {
          if (again) ({ queue, wait, retried } = tryAgain(queue, i, retried, env.deps.config));
          continue;
        }
      }
      return;
    } finally {
      // Recorded by now, unless something threw: either way no longer under way. A background
      // call stays under way while it is watched.
      if (acc.background?.ctx !== ctx) {
        env.ended(ctx);
        // The quota's tokens are corrected to what the attempt was billed (none, for a failure).
        if (attempt.quota?.tpm) await settleQuota(env, attempt, acc.tokens - tokensBefore - held);
      }
    }
  }
}

/** The shared-state bucket of an upstream's quota (an attempt with one): its provider (a tenant's
 * own, apart) and model, and its limits. */
export const quotaBucket = (a: Attempt): RateBucket => ({
  key: `upstream:${a.provider.tenant ?? ''}:${a.provider.id}:${a.model}`,
  rpm: a.quota!.rpm,
  tpm: a.quota!.tpm,
});

/** Takes a call from an upstream's quota; its standing when the quota refuses it, else null. A
 * state out of reach refuses nothing: the upstream's own limits still hold. */
async function takeQuota(env: ForwardEnv, attempt: Attempt, tokens: number): Promise<RateResult | null> {
  try {
    const r = await env.deps.state.rateLimit({ ...quotaBucket(attempt), tokens, now: env.deps.clock.now() });
    return r.ok ? null : r;
  } catch (err) {
    env.deps.onError?.(err, 'taking from an upstream quota');
    return null;
  }
}

/** Corrects an upstream's quota by `delta` tokens (negative: given back). */
async function settleQuota(env: ForwardEnv, attempt: Attempt, delta: number): Promise<void> {
  if (delta === 0) return;
  try {
    const { key, tpm } = quotaBucket(attempt);
    await env.deps.state.adjustTokens(key, tpm!, delta, env.deps.clock.now());
  } catch (err) {
    env.deps.onError?.(err, 'settling an upstream quota');
  }
}

/** The 429 of a call whose upstreams are all at their quota, with when to try again. */
export function upstreamQuotaExceeded(r: RateResult, a: Attempt): GatewayError {
  const what = r.limited === 'tokens' ? 'tokens' : 'requests';
  const limit = what === 'tokens' ? a.quota?.tpm : a.quota?.rpm;
  const seconds = Math.max(1, Math.ceil(r.retryAfterMs / 1000));
  return {
    status: 429,
    type: what,
    code: 'upstream_quota_exceeded',
    message: `Every upstream of this call is at its quota: ${a.provider.id} (${a.model}) on ${what} per min, limit ${limit}. Please try again in ${seconds}s.`,
    headers: { 'retry-after': String(seconds) },
  };
}

const NO_TRANSLATIONS: ReadonlyMap<Attempt, string> = new Map();

/** The plan with the attempt at `i` coming again right after itself, the tries made again of each
 * attempt (`retried`, counting this one), and how long to wait before it: the backoff
 * (`retry_backoff_ms`, doubled for each try before, from half of it to the whole, at random), or
 * longer if the upstream's `retry-after` (or Azure's `retry-after-ms`) asks it, never past
 * `retry_max_wait_ms`. */
export function tryAgain(
  queue: Attempt[],
  i: number,
  retried: Map<Attempt, number> | null,
  config: GatewayConfig,
  headers?: Record<string, string>,
  random: () => number = Math.random,
): { queue: Attempt[]; wait: number; retried: Map<Attempt, number> } {
  const attempt = queue[i]!;
  const tries = retried?.get(attempt) ?? 0;
  const counts = retried ?? new Map<Attempt, number>();
  counts.set(attempt, tries + 1);
  const base = (config.retry_backoff_ms ?? 500) * 2 ** tries;
  const backoff = base / 2 + (random() * base) / 2;
  const asked = headers ? retryAfterMs(headers) : null;
  return {
    queue: [...queue.slice(0, i + 1), attempt, ...queue.slice(i + 1)],
    wait: Math.min(config.retry_max_wait_ms ?? 10_000, Math.max(backoff, asked ?? 0)),
    retried: counts,
  };
}

/** The wait an upstream's answer asks for, in ms: `retry-after-ms`, else `retry-after` (seconds, or
 * an HTTP date); null when it asks none. */
function retryAfterMs(headers: Record<string, string>): number | null {
  const ms = Number.parseFloat(headers['retry-after-ms'] ?? '');
  if (Number.isFinite(ms) && ms >= 0) return ms;
  const after = headers['retry-after'];
  if (after === undefined) return null;
  const seconds = Number.parseFloat(after);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(after);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : null;
}

const INCLUDE_USAGE = Buffer.from(',"stream_options":{"include_usage":true}}');

/** The body to send: the client's bytes, with only the documented edits made in them (the model
 * a route or deployment sends, and `include_usage` on a streamed chat or completion). */
function bodyFor(
  raw: Buffer,
  body: Obj,
  endpoint: Endpoint,
  addUsage: boolean,
  bodyModel: string,
): Buffer | string {
  const rename = bodyModel !== body['model'];
  const usage = addUsage && (endpoint === 'chat' || endpoint === 'completions');
  if (!rename && !usage) return raw;
  if (!rename && body['stream_options'] === undefined) {
    // The one edit a streamed chat needs, spliced in before the closing brace: the hot path's
    // only edit, and cheaper than reading the body's members for it.
    let end = raw.length - 1;
    while (end > 0 && (raw[end] === 0x20 || raw[end] === 0x0a || raw[end] === 0x0d || raw[end] === 0x09))
      end--;
    if (raw[end] === 0x7d) return Buffer.concat([raw.subarray(0, end), INCLUDE_USAGE]);
  }
  const edits = new Map<string, string>();
  if (rename) edits.set('model', JSON.stringify(bodyModel));
  if (usage) {
    const options = body['stream_options'];
    const kept = options !== null && typeof options === 'object' ? (options as Obj) : {};
    edits.set('stream_options', JSON.stringify({ ...kept, include_usage: true }));
  }
  const edited = editTopLevel(raw, edits);
  if (edited) return edited;
  // Not reached for a body JSON.parse took as an object; kept so that an edit is never lost.
  const b: Obj = { ...body };
  for (const [k, v] of edits) b[k] = JSON.parse(v);
  return JSON.stringify(b);
}
