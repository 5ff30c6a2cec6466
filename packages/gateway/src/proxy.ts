import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  type CallRecord,
  type HostedToolCalls,
  type ImageCount,
  MAX_TOKEN_COUNT,
  type Tokens,
} from '@tally/core';
import { attribute } from './attribution.js';
import { BackgroundCalls } from './background.js';
import { Batches, type BatchHold } from './batches.js';
import { Breakers } from './breaker.js';
import {
  type Hold,
  holdAgain,
  KEPT_SETTLEMENT_MS,
  reserveBudgets,
  settleBudgets,
  type Unpriceable,
} from './budget-guard.js';
import { containerHeld, withContainerSessions } from './containers.js';
import { audioTokensHeld, editImageTokensHeld, FILE_BYTES, FILE_COUNT, readForm } from './form.js';
import { type ForwardEnv, forwardAttempts, imagesAsked, quotaBucket } from './forward.js';
import { checkTopLevel, editTopLevel } from './json-edit.js';
import {
  type AttemptContext,
  type AttemptOutcome,
  type Attribution,
  meterAttempt,
  type Refusal,
  refusalRecord,
  type Underway,
} from './meter.js';
import { modelAllowed } from './model-allow.js';
import {
  type BudgetRule,
  choicesOf,
  countsModel,
  DEFAULT_MAX_TOOL_CALLS,
  hostedToolCallsAllowed,
  imageOutputTokens,
  maxOutputTokens,
  type RateLimitRule,
  rateLimitBucket,
  rateLimited,
  rateLimitHeaders,
  searchModelCalls,
  tightest,
  tooManyInFlight,
} from './policy.js';
import {
  ENDPOINT_API,
  type Endpoint,
  isForm,
  modelsPath,
  priceProviderOf,
  serves,
  translatedToMessages,
  upstreamFor,
} from './providers.js';
import { RealtimeSessions } from './realtime.js';
import type { Accumulated, Metered, Recorder } from './relay.js';
import { speechCharacters, speechTokensHeld } from './relay-speech.js';
import {
  badRequest,
  type GatewayError,
  headerValue,
  invalidKey,
  noRoute,
  notAllowed,
  sendError,
  stateUnavailable,
  type Wire,
  wireOf,
} from './replies.js';
import { readBody } from './request-body.js';
import { requestOptions, withFallbacks, withTries } from './request-options.js';
import { type Attempt, isStandIn, Router } from './router.js';
import { Slots } from './slots.js';
import type { AcquireResult, ParallelSlot, RateBucket, RateResult } from './state/shared-state.js';
import {
  createConversation,
  encodeOwner,
  type FollowUpEnv,
  followUpOf,
  heldToRpm,
  isError,
  isStoredId,
  ownerKey,
  ownerOf,
  RESPONSE_KEPT_MS,
  reaches,
  type StoredOwner,
  serveFollowUp,
} from './stored.js';
import { countTokens, estimatePromptTokens } from './tokenizer.js';
import { TranslationError } from './translate/anthropic-blocks.js';
import { toChatRequest } from './translate/anthropic-to-openai.js';
import { toOpenAiError } from './translate/openai-to-anthropic.js';
import { responsesToAnthropicRequest } from './translate/responses-to-anthropic.js';
import type { GatewayDeps, ProviderConfig, VirtualKey } from './types.js';
import { Upstreams } from './upstream.js';
import {
  DEFAULT_MAX_RESPONSE_BYTES,
  errorAnswer,
  parseObject,
  readWhole,
  type Unusable,
  unusableError,
} from './upstream-answer.js';

type Obj = Record<string, unknown>;

/** The budgets of a call's owner that count its model: most count every model, and the list is
 * kept as it is. */
function budgetsFor(rules: BudgetRule[], model: string): BudgetRule[] {
  for (const r of rules) if (!countsModel(r, model)) return rules.filter((x) => countsModel(x, model));
  return rules;
}

const NO_LIMITS: RateLimitRule[] = [];

type Held<T> = { rule: RateLimitRule | null } & T;
export type Limits = { buckets: Held<{ bucket: RateBucket }>[]; slots: Held<{ slot: ParallelSlot }>[] };

/** What holds a call: the token buckets and the caps on calls in flight of its key's own limits,
 * then of its scopes' rate limits that count its model. */
export function limitsOf(key: VirtualKey, scoped: RateLimitRule[], model: string): Limits {
  const out: Limits = { buckets: [], slots: [] };
  addLimits(out, key.id, key, null);
  for (const rule of scoped) if (countsModel(rule, model)) addLimits(out, rateLimitBucket(rule), rule, rule);
  return out;
}

/** The limits one owner (a key, or a scope's rate limit) sets, kept in its state under `id`. */
function addLimits(
  out: Limits,
  id: string,
  owner: VirtualKey | RateLimitRule,
  rule: RateLimitRule | null,
): void {
  if (owner.rpm !== null || owner.tpm !== null)
    out.buckets.push({ bucket: { key: id, rpm: owner.rpm, tpm: owner.tpm }, rule });
  if (owner.maxParallel) out.slots.push({ slot: { key: id, limit: owner.maxParallel }, rule });
}

/** What the gateway serves: a model call's endpoint, the model list, the token counts, a follow-up
 * on a stored response or a conversation (stored.ts), or a new conversation. */
export type GatewayRoute =
  | Endpoint
  | 'models'
  | 'count_tokens'
  | 'input_tokens'
  | 'moderations'
  | 'follow_up'
  | 'conversations'
  | 'files'
  | 'file_list'
  | 'batches'
  | 'batch_list'
  | 'message_batches'
  | 'message_batch_list'
  | 'realtime_calls';

const ROUTES = new Map<string, Endpoint>([
  ['/v1/chat/completions', 'chat'],
  ['/v1/completions', 'completions'],
  ['/v1/responses', 'responses'],
  ['/v1/responses/compact', 'compact'],
  ['/v1/embeddings', 'embeddings'],
  ['/v1/images/generations', 'images'],
  ['/v1/images/edits', 'image_edits'],
  ['/v1/audio/transcriptions', 'transcriptions'],
  ['/v1/audio/translations', 'translations'],
  ['/v1/audio/speech', 'speech'],
  ['/v1/messages', 'messages'],
]);

/** What a call's largest cost is priced from (heldUsage). */
type PricedAs = { api: string; usage: Obj } | { tokens: Partial<Tokens>; images?: ImageCount };

/** The token counts, which cost nothing and are not metered. */
const FREE_ROUTES = new Map<string, GatewayRoute>([
  ['/v1/messages/count_tokens', 'count_tokens'],
  ['/v1/responses/input_tokens', 'input_tokens'],
  ['/v1/moderations', 'moderations'],
]);

/** The deepest a request body may nest objects and arrays: far more than any API's schema needs,
 * and far from where walking it again would overflow the stack (about 4,000). */
const MAX_NESTING = 512;

/** C0 controls and DEL: any character outside the printable ASCII and above it. */
const CONTROL = /[^\x20-\x7e\u0080-\uffff]/;

/** Whether a string may name a model: no provider names one with control characters, and such a
 * name would also break the headers it is echoed in. */
const isModelName = (model: string): boolean => model.length <= 256 && !CONTROL.test(model);
const MODEL_NAME_RULE = 'at most 256 characters, none of them control characters';

function keyFrom(req: IncomingMessage): string | null {
  const auth = req.headers.authorization;
  // The scheme's name is case-insensitive (RFC 9110).
  if (auth !== undefined && (auth.startsWith('Bearer ') || /^bearer /i.test(auth)))
    return auth.slice(7).trim();
  const x = req.headers['x-api-key'] ?? req.headers['api-key'];
  return typeof x === 'string' ? x : null;
}

/**
 * The gateway: authenticates a virtual key, routes the call, passes the body upstream unchanged
 * (apart from the documented edits: the routed model name, and stream_options.include_usage on
 * streamed chat), relays the answer (SSE chunk by chunk), and meters every attempt into the sink.
 */
export class Gateway {
  private routerRef: Router;
  private readonly upstreams = new Upstreams();
  private readonly breakers: Breakers;
  /** Each provider's model list, and until when it is kept (keyed by the config object, so a
   * provider replaced through the API is asked afresh). */
  private readonly modelLists = new WeakMap<ProviderConfig, { ids: string[]; until: number }>();

  private readonly env: ForwardEnv;

  constructor(private readonly deps: GatewayDeps) {
    this.routerRef = new Router(deps.config);
    this.breakers = new Breakers(() => deps.clock.now());
    this.env = {
      deps,
      upstreams: this.upstreams,
      breakers: this.breakers,
      recorder: ((ctx: AttemptContext, out: AttemptOutcome, acc: Accumulated, later?: true) =>
        this.record(ctx, out, acc, later)) as Recorder,
      sessions: (ctx, body, ids, calls) =>
        withContainerSessions(deps.state, ctx.key.tenant, body, ids, calls, deps.clock.now(), (err) =>
          deps.onError?.(err, 'code container sessions'),
        ),
      started: (ctx, body) => {
        const u: Underway = {
          ctx,
          body,
          since: performance.now(),
          tokens: null,
          output: 0,
          countedAt: 0,
          slot: 0,
        };
        u.slot = this.underway.add(u);
        ctx.underway = u;
        deps.sink.inflightStarted?.();
      },
      ended: (ctx) => this.release(ctx),
      stored: (ctx, id) => this.rememberResponse(ctx, id),
    };
    this.background = new BackgroundCalls(
      {
        deps,
        upstreams: this.upstreams,
        provider: (id, tenant) => this.routerRef.provider(id, tenant),
        record: (ctx, out, acc) => this.record(ctx, out, acc) as bigint | null,
        sessions: this.env.sessions,
        settle: (key, hold, spent, time) => settleBudgets(deps, key, hold, spent, time, KEPT_SETTLEMENT_MS),
        holdAgain: (hold) => holdAgain(deps, hold),
      },
      deps.backgroundDir,
    );
    this.followUps = {
      deps,
      upstreams: this.upstreams,
      provider: (id, tenant) => this.routerRef.provider(id, tenant),
      defaultProvider: (tenant) => this.routes('', 'responses', tenant)[0]?.provider,
      // Read only for a response being watched: most follow-ups are not of one.
      observed: (on, tenant, id, answer) => {
        if (on !== 'response') this.batches.observe(tenant, id, parseObject(answer.toString('utf8')));
        else if (this.background.has(tenant, id))
          this.background.observe(tenant, id, parseObject(answer.toString('utf8')));
      },
    };
    this.batches = new Batches(
      {
        ...this.followUps,
        anthropicProvider: (model, tenant) =>
          this.routes(model, 'messages', tenant).find((a) => a.provider.kind === 'anthropic')?.provider,
        estimate: async (provider, endpoint, body, tenant, time) =>
          this.largestCost(
            [{ provider, model: String(body['model']), tier: 'primary' }],
            body,
            endpoint,
            await estimatePromptTokens(body),
            tenant,
            time,
            true,
          ),
        reserve: (key, attribution, costs, time) => this.reserveBatch(key, attribution, costs, time),
        record: (ctx, out, acc) => this.record(ctx, out, acc) as bigint | null,
        settle: (key, hold, spent, time) => settleBudgets(deps, key, hold, spent, time, KEPT_SETTLEMENT_MS),
        holdAgain: (hold) => holdAgain(deps, hold),
      },
      deps.backgroundDir,
    );
    this.realtime = new RealtimeSessions({
      deps,
      authenticate: (req) => this.authenticate(req),
      plan: (model, tenant) => this.plan(model, 'realtime', tenant),
      record: (ctx, out, acc) => this.record(ctx, out, acc) as bigint | null,
      provider: (id, tenant) => this.routerRef.provider(id, tenant),
      rateBuckets: async (key, attribution, model) => {
        const found = deps.rateLimits ? deps.rateLimits(key, attribution) : NO_LIMITS;
        return limitsOf(key, found instanceof Promise ? await found : found, model).buckets;
      },
    });
    deps.sink.trackInflight?.(
      () => this.underwayRecords(),
      () => this.underway.size > 0,
    );
  }

  /**
   * Reserves a batch's largest cost on the key's budgets: on each, the cost of the batch's requests
   * for the models it counts (most count every model: one reservation). The budgets are taken a
   * set of models at a time; when one refuses, what was reserved before it goes back.
   */
  private async reserveBatch(
    key: VirtualKey,
    attribution: Attribution,
    costs: Map<string, bigint | Unpriceable>,
    time: number,
  ): Promise<BatchHold[] | GatewayError> {
    const models = [...costs.keys()];
    const groups = new Map<string, { models: string[]; rules: BudgetRule[] }>();
    for (const rule of await this.deps.budgets(key, attribution)) {
      const counted = models.filter((m) => budgetsFor([rule], m).length > 0);
      if (counted.length === 0) continue;
      const name = counted.join('\n');
      const g = groups.get(name);
      if (g) g.rules.push(rule);
      else groups.set(name, { models: counted, rules: [rule] });
    }
    const holds: BatchHold[] = [];
    try {
      for (const g of groups.values()) {
        let cost: bigint | Unpriceable = 0n;
        for (const m of g.models) {
          const one = costs.get(m)!;
          if (typeof one !== 'bigint') {
            cost = one;
            break;
          }
          cost += one;
        }
        const admission = await reserveBudgets(this.deps, g.rules, key, g.models[0]!, () => cost, time);
        if (!admission.ok) {
          for (const h of holds) await settleBudgets(this.deps, key, h.hold, 0n, time, KEPT_SETTLEMENT_MS);
          return admission.error;
        }
        holds.push({ models: g.models.length === models.length ? null : g.models, hold: admission.hold });
      }
    } catch (err) {
      for (const h of holds) await settleBudgets(this.deps, key, h.hold, 0n, time, KEPT_SETTLEMENT_MS);
      return stateUnavailable(err);
    }
    return holds;
  }

  /** Attempts sent upstream and not yet recorded (slots, not a Map: see Slots). */
  private readonly underway = new Slots<Underway>();

  private release(ctx: AttemptContext): void {
    const u = ctx.underway;
    if (!u) return;
    this.underway.remove(u.slot, u);
    ctx.underway = undefined;
  }

  /** The calls under way for more than 100 ms, metered as cut off now: their prompt, and what a
   * stream has relayed (as of the last second), estimated by the tokenizer; marked
   * `gateway_interrupted`. Kept on disk as they change, and
   * written only if the process dies before they end (their real record, written first, wins over
   * these). Shorter calls are left out: they would make the file change on every look, and a
   * crash loses at most one such call a connection. */
  private async underwayRecords(): Promise<CallRecord[]> {
    const out: CallRecord[] = [];
    const now = performance.now();
    for (const u of this.underway.values()) {
      // A background call kept on disk is the next process's to watch, not to meter as cut off.
      if (now - u.since < 100 || u.ctx.kept) continue;
      u.tokens ??= await estimatePromptTokens(u.body);
      if (u.ctx.progress && now - u.countedAt >= 1000) {
        u.countedAt = now;
        u.output = await countTokens(u.ctx.progress.text());
      }
      if (!this.underway.has(u.slot, u)) continue;
      out.push(
        meterAttempt(this.deps, u.ctx, {
          status: 'error',
          errorType: 'gateway_interrupted',
          usage: null,
          estimated: { input: u.tokens, output: u.output },
          modelServed: null,
          latencyMs: performance.now() - u.since,
          ttftMs: null,
        }),
      );
    }
    return out;
  }

  private readonly hashes = new Map<string, string>();

  async authenticate(req: IncomingMessage): Promise<VirtualKey | null> {
    const key = keyFrom(req);
    if (!key) return null;
    // Hash each distinct key once; the resolver caches what the hash maps to.
    let hash = this.hashes.get(key);
    if (!hash) {
      hash = createHash('sha256').update(key).digest('hex');
      if (this.hashes.size > 10_000) this.hashes.clear();
      this.hashes.set(key, hash);
    }
    return this.deps.resolveKey(hash);
  }

  get router(): Router {
    return this.routerRef;
  }

  /** Replaces the upstreams (config plus those added through the API); routes stay. */
  setProviders(providers: ProviderConfig[]): void {
    this.routerRef = new Router({ ...this.deps.config, providers });
  }

  /** The endpoint a request is for, or null when it is not the gateway's. */
  static route(method: string | undefined, url: string | undefined): GatewayRoute | null {
    if (!url) return null;
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    if (
      (path.startsWith('/v1/responses/') ||
        path.startsWith('/v1/conversations/') ||
        path.startsWith('/v1/chat/completions/') ||
        path.startsWith('/v1/files/') ||
        path.startsWith('/v1/batches/') ||
        path.startsWith('/v1/messages/batches/')) &&
      followUpOf(method, path)
    )
      return 'follow_up';
    if (path === '/v1/conversations') return method === 'POST' ? 'conversations' : null;
    if (path === '/v1/files') return method === 'POST' ? 'files' : method === 'GET' ? 'file_list' : null;
    if (path === '/v1/batches') return method === 'POST' ? 'batches' : method === 'GET' ? 'batch_list' : null;
    if (path === '/v1/messages/batches')
      return method === 'POST' ? 'message_batches' : method === 'GET' ? 'message_batch_list' : null;
    if (method === 'GET') return path === '/v1/models' ? 'models' : null;
    if (method !== 'POST') return null;
    // A WebRTC call's paths are looked at last: a model call's are found first.
    return (
      ROUTES.get(path) ??
      FREE_ROUTES.get(path) ??
      (RealtimeSessions.callRoute(method, path) ? 'realtime_calls' : null)
    );
  }

  /**
   * The whole request, straight off node's HTTP server: the server hands gateway paths here before
   * its router, so a model call pays for no framework work it does not need.
   */
  private readonly inflight = new Slots<Promise<void>>();

  async serve(req: IncomingMessage, res: ServerResponse, endpoint: GatewayRoute): Promise<void> {
    const p = this.serveOne(req, res, endpoint);
    const slot = this.inflight.add(p);
    try {
      await p;
    } finally {
      this.inflight.remove(slot, p);
    }
  }

  private async serveOne(req: IncomingMessage, res: ServerResponse, endpoint: GatewayRoute): Promise<void> {
    // A message batch's follow-ups are Anthropic's.
    const wire =
      endpoint === 'follow_up' && req.url?.startsWith('/v1/messages/') ? 'anthropic' : wireOf(endpoint);
    try {
      if (endpoint === 'models') return await this.models(req, res);
      // The key first, from the headers: a caller without one is answered before its body is
      // read, so that it cannot make the gateway hold bodies in memory.
      const key = await this.authenticate(req);
      if (!key) {
        req.resume();
        return sendError(res, wire, invalidKey());
      }
      if (endpoint === 'follow_up') {
        const ask = followUpOf(req.method, req.url);
        return ask ? await serveFollowUp(this.followUps, req, res, key, ask) : undefined;
      }
      if (endpoint === 'conversations') return await createConversation(this.followUps, req, res, key);
      if (endpoint === 'realtime_calls') return await this.realtime.call(req, res, key);
      if (endpoint === 'files') return await this.batches.upload(req, res, key);
      if (endpoint === 'batches') return await this.batches.create(req, res, key);
      if (endpoint === 'message_batches') return await this.batches.createMessageBatch(req, res, key);
      if (endpoint === 'file_list' || endpoint === 'batch_list' || endpoint === 'message_batch_list') {
        const on = endpoint === 'file_list' ? 'file' : endpoint === 'batch_list' ? 'batch' : 'message_batch';
        return await this.batches.list(req, res, key, on);
      }
      const limit = this.deps.config.body_limit_bytes ?? 32 * 1024 * 1024;
      const raw = await readBody(req, limit);
      if (!Buffer.isBuffer(raw)) {
        if (endpoint === 'count_tokens' || endpoint === 'input_tokens' || endpoint === 'moderations')
          return sendError(res, wire, raw);
        return this.refuseUnread(req, res, endpoint, key, raw, this.deps.clock.now(), '');
      }
      if (endpoint === 'count_tokens') await this.countTokens(req, res, raw, key);
      else if (endpoint === 'input_tokens') await this.inputTokens(req, res, raw, key);
      else if (endpoint === 'moderations') await this.moderations(req, res, raw, key);
      else await this.handle(req, res, endpoint, raw, key);
    } catch (err) {
      if (!res.headersSent && !res.destroyed) {
        sendError(res, wire, {
          status: 500,
          type: 'api_error',
          code: 'internal',
          message: (err as Error).message,
        });
      } else if (!res.writableEnded) res.destroy();
    }
  }

  /** A model call's body and model; or null, the refusal answered: a body that is not a JSON object
   * or names no model (400). `refused` answers it instead, with the model the body names if it
   * names one that can be recorded (else ''). */
  private admit(
    res: ServerResponse,
    wire: Wire,
    raw: Buffer,
    refused?: (err: GatewayError, model: string) => void,
    /** A form's content-type (a transcription's, an image edit's): its body is a multipart form,
     * not JSON. */
    form?: string,
  ): { body: Obj; model: string } | null {
    const refuse = (err: GatewayError, model: unknown = '') => {
      const named = typeof model === 'string' && isModelName(model) ? model : '';
      if (refused) refused(err, named);
      else sendError(res, wire, err);
      return null;
    };
    if (form !== undefined) {
      const read = readForm(raw, form);
      if (!read)
        return refuse(
          badRequest('This endpoint takes multipart/form-data, with its model and its file.', 'invalid_form'),
        );
      const model = read.fields['model'];
      if (typeof model !== 'string' || model === '')
        return refuse(badRequest('model is required.', 'missing_model'));
      if (!isModelName(model))
        return refuse(badRequest(`model must be a model name: ${MODEL_NAME_RULE}.`, 'invalid_model'));
      FILE_BYTES.set(read.fields, read.fileBytes);
      FILE_COUNT.set(read.fields, read.files);
      return { body: read.fields, model };
    }
    const body = parseObject(raw.toString('utf8'));
    if (!body) return refuse(notJsonObject());
    const problem = checkTopLevel(raw, MAX_NESTING);
    if (problem) {
      const name = JSON.stringify(problem.key.slice(0, 100));
      const message =
        problem.code === 'duplicate_key'
          ? `The request body gives ${name} more than once: send each field once.`
          : `The request body nests objects and arrays more than ${MAX_NESTING} deep (in ${name}).`;
      return refuse(badRequest(message, problem.code), body['model']);
    }
    const model = body['model'];
    if (typeof model !== 'string' || model === '')
      return refuse(badRequest('model is required.', 'missing_model'));
    if (!isModelName(model))
      return refuse(badRequest(`model must be a model name: ${MODEL_NAME_RULE}.`, 'invalid_model'));
    return { body, model };
  }

  /** Anthropic's token count (`messages.countTokens`): passed to the Anthropic provider the model
   * routes to, and its answer back as it came; for a model another provider serves (the call
   * would be translated), counted here, as that provider would see the prompt. It costs nothing,
   * so nothing is metered. */
  private async countTokens(
    req: IncomingMessage,
    res: ServerResponse,
    raw: Buffer,
    key: VirtualKey,
  ): Promise<void> {
    const admitted = this.admit(res, 'anthropic', raw);
    if (!admitted) return;
    const { model } = admitted;
    if (!modelAllowed(key.models, model)) return sendError(res, 'anthropic', notAllowed(key, model));
    const attempt = this.plan(model, 'messages', key.tenant)[0];
    if (!attempt) return sendError(res, 'anthropic', noRoute(model, []));
    if (attempt.provider.kind !== 'anthropic') {
      let chat: Obj;
      try {
        chat = toChatRequest(
          admitted.body,
          attempt.model,
          attempt.provider.kind,
          attempt.provider.api_version,
        );
      } catch (err) {
        if (!(err instanceof TranslationError)) throw err;
        return sendError(res, 'anthropic', badRequest(err.message, err.code));
      }
      const out = Buffer.from(JSON.stringify({ input_tokens: await estimatePromptTokens(chat) }));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': out.length });
      res.end(out);
      return;
    }
    const target = upstreamFor(attempt.provider, 'messages', attempt.model, req.headers);
    const body = naming(raw, model, attempt.model);
    await this.passFree(res, 'anthropic', target, `${target.path}/count_tokens`, body, attempt.provider);
  }

  /** OpenAI's count of a Responses request's input tokens (`responses.inputTokens.count`): passed to
   * the provider the model routes to (the one that holds its previous response first), and its
   * answer back as it came; for a model an Anthropic provider serves, the request is translated and
   * counted by Anthropic's token count. It costs nothing, so nothing is metered. */
  private async inputTokens(
    req: IncomingMessage,
    res: ServerResponse,
    raw: Buffer,
    key: VirtualKey,
  ): Promise<void> {
    // The model is optional here: without one, the call goes where an OpenAI model's would.
    const asked = freeRequest(raw, key, '');
    if (isError(asked)) return sendError(res, 'openai', asked);
    const { body, model } = asked;
    const toPrevious = await this.towardPrevious(body, key, this.plan(model, 'responses', key.tenant));
    if (!Array.isArray(toPrevious)) return sendError(res, 'openai', toPrevious);
    const attempt = toPrevious[0];
    if (!attempt) return sendError(res, 'openai', noRoute(model, []));
    const { provider } = attempt;
    if (provider.kind === 'anthropic') {
      let request: Obj;
      try {
        request = responsesToAnthropicRequest(
          body,
          attempt.model,
          this.deps.config.default_max_output ?? 4096,
        );
      } catch (err) {
        if (!(err instanceof TranslationError)) throw err;
        return sendError(res, 'openai', badRequest(err.message, err.code));
      }
      // What Anthropic's token count takes of a messages request.
      const count: Obj = {};
      for (const k of ['model', 'system', 'messages', 'tools', 'tool_choice', 'thinking'])
        if (request[k] !== undefined) count[k] = request[k];
      const target = upstreamFor(provider, 'messages', attempt.model, req.headers);
      await this.passFree(
        res,
        'openai',
        target,
        `${target.path}/count_tokens`,
        JSON.stringify(count),
        provider,
        (json, status) =>
          status >= 300
            ? toOpenAiError(json, status)
            : { object: 'response.input_tokens', input_tokens: json['input_tokens'] },
      );
      return;
    }
    const target = upstreamFor(provider, 'responses', attempt.model, req.headers);
    const sent = naming(raw, model, target.bodyModel);
    await this.passFree(res, 'openai', target, `${target.path}/input_tokens`, sent, provider);
  }

  /** OpenAI's moderation (`moderations.create`), which costs nothing: held to the key's requests a
   * minute and its models, and passed to the provider the model routes to (an OpenAI-style one), or
   * to the default one; its answer back as it came. Not metered. */
  private async moderations(
    req: IncomingMessage,
    res: ServerResponse,
    raw: Buffer,
    key: VirtualKey,
  ): Promise<void> {
    const asked = freeRequest(raw, key, 'omni-moderation-latest');
    if (isError(asked)) return sendError(res, 'openai', asked);
    const { body, model } = asked;
    const held = await heldToRpm(this.followUps, key);
    if (isError(held)) return sendError(res, 'openai', held);
    const routed = this.plan(model, 'chat', key.tenant).find((a) => a.provider.kind !== 'anthropic');
    const provider = routed?.provider ?? this.followUps.defaultProvider(key.tenant);
    if (!provider || provider.kind === 'anthropic') return sendError(res, 'openai', noRoute(model, []));
    const target = upstreamFor(provider, 'chat', routed?.model ?? model, req.headers);
    const sent = body['model'] === undefined ? raw : naming(raw, model, target.bodyModel);
    const path = target.path.replace(/\/chat\/completions(\?|$)/, '/moderations$1');
    await this.passFree(res, 'openai', target, path, sent, provider);
  }

  /** The attempts of a call that goes on from a previous response (previous_response_id), the
   * provider that holds it first; or the refusal of one that is another tenant's or project's (or
   * of a state out of reach). A call without one, or with one the gateway does not know, keeps
   * its attempts. */
  private async towardPrevious(
    body: Obj,
    key: VirtualKey,
    attempts: Attempt[],
  ): Promise<Attempt[] | GatewayError> {
    const previous = body['previous_response_id'];
    const conversation = body['conversation'];
    // A conversation is named by its id, or by an object that holds it.
    const conv =
      typeof conversation === 'string'
        ? conversation
        : typeof (conversation as Obj | null)?.['id'] === 'string'
          ? ((conversation as Obj)['id'] as string)
          : null;
    let planned = attempts;
    for (const [on, id] of [
      ['conversation', conv],
      ['response', typeof previous === 'string' ? previous : null],
    ] as const) {
      if (id === null) continue;
      let owner: StoredOwner | null;
      try {
        owner = await ownerOf(this.deps, on, id);
      } catch (err) {
        return stateUnavailable(err);
      }
      if (!owner) continue;
      if (!reaches(key, owner)) return on === 'response' ? previousNotFound(id) : conversationNotFound(id);
      planned = holderFirst(planned, owner.provider);
    }
    return planned;
  }

  /** Sends a call that costs nothing (a token count) to `provider`, and passes its answer on
   * (through `transform`, for a client of another API): an error without the provider's key, an
   * answer that is not JSON as a 502. Nothing is metered. */
  private async passFree(
    res: ServerResponse,
    wire: Wire,
    target: { origin: string; headers: Record<string, string> },
    path: string,
    body: Buffer | string,
    provider: ProviderConfig,
    transform?: (json: Obj, status: number) => Obj,
  ): Promise<void> {
    let up: Awaited<ReturnType<Upstreams['request']>>;
    try {
      up = await this.upstreams.request(target.origin, {
        path,
        method: 'POST',
        headers: target.headers,
        body,
        timeoutMs: provider.timeout_ms ?? this.deps.config.timeout_ms,
      });
    } catch {
      return sendError(res, wire, {
        status: 502,
        type: 'api_error',
        code: 'upstream_connection_error',
        message: `The upstream ${provider.id} did not answer.`,
      });
    }
    const limit = this.deps.config.max_response_bytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    const read = await readWhole(up, limit);
    if (read.buf === null) return sendError(res, wire, unusableError(read.unusable, provider.id, limit));
    let answer = read.buf;
    let json: Obj | null = null;
    let why: Unusable | null = null;
    if (up.statusCode >= 400) {
      const error = errorAnswer(
        answer,
        up.statusCode,
        up.headers['content-type'],
        wire,
        provider.id,
        provider.api_key,
      );
      answer = Buffer.from(error.text);
      json = error.json;
    } else if (up.statusCode >= 300) why = 'upstream_redirect';
    else {
      json = parseObject(answer.toString('utf8'));
      if (!json) why = 'upstream_invalid_response';
    }
    if (why) return sendError(res, wire, unusableError(why, provider.id, limit));
    if (transform && json) answer = Buffer.from(JSON.stringify(transform(json, up.statusCode)));
    res.writeHead(up.statusCode, { 'content-type': 'application/json', 'content-length': answer.length });
    res.end(answer);
  }

  async handle(
    req: IncomingMessage,
    res: ServerResponse,
    endpoint: Endpoint,
    raw: Buffer,
    key: VirtualKey,
  ): Promise<void> {
    const wire = wireOf(endpoint);
    const time = this.deps.clock.now();
    // A body the gateway cannot take is a refused call of the key's too (with the model it names,
    // when it names one).
    const admitted = this.admit(
      res,
      wire,
      raw,
      (err, model) => this.refuseUnread(req, res, endpoint, key, err, time, model),
      isForm(endpoint) ? String(req.headers['content-type'] ?? '') : undefined,
    );
    if (!admitted) return;
    const { body, model } = admitted;
    const attribution = attribute(key, req.headers, body);
    let attempts = this.plan(model, endpoint, key.tenant);
    // What a refusal records: the call as far as it got.
    const refusal = {
      time,
      key,
      attribution,
      provider: attempts[0] ? priceProviderOf(attempts[0].provider) : '',
      api: ENDPOINT_API[endpoint],
      model,
    };
    if (!modelAllowed(key.models, model)) return this.refuse(res, wire, notAllowed(key, model), refusal);
    if (attempts.length === 0) {
      const missing = this.router.missingProviders(model, key.tenant);
      return this.refuse(res, wire, noRoute(model, missing), refusal);
    }
    // The request's own routing (x-tally-retries, -timeout-ms, -fallbacks), over its route's. Its
    // fallbacks are held to the key's models, and reserved on its budgets as the route's are.
    const options = requestOptions(req.headers, isModelName);
    if (options !== null) {
      if (isError(options)) return this.refuse(res, wire, options, refusal);
      if (options.fallbacks) {
        const plans: Attempt[][] = [];
        for (const m of options.fallbacks) {
          if (!modelAllowed(key.models, m)) return this.refuse(res, wire, notAllowed(key, m), refusal);
          const plan = this.plan(m, endpoint, key.tenant);
          if (plan.length === 0)
            return this.refuse(res, wire, noRoute(m, this.router.missingProviders(m, key.tenant)), refusal);
          plans.push(plan);
        }
        attempts = withFallbacks(attempts, plans);
      }
    }
    // A conversation goes on from its previous response: one of another tenant's (or project's) is
    // not reached through the gateway, and the provider that holds it is tried first (one
    // deployment of a balanced route cannot continue another's).
    if (endpoint === 'responses' || endpoint === 'compact') {
      const toPrevious = await this.towardPrevious(body, key, attempts);
      if (!Array.isArray(toPrevious)) return this.refuse(res, wire, toPrevious, refusal);
      attempts = toPrevious;
    }

    // Policy: rate limits, then budgets. Both need the call's size: the prompt's tokens (by the
    // tokenizer) and the most output it allows.
    const rules = budgetsFor(await this.deps.budgets(key, attribution), model);
    const found = this.deps.rateLimits ? this.deps.rateLimits(key, attribution) : NO_LIMITS;
    const scoped = found instanceof Promise ? await found : found;
    const { buckets, slots } = limitsOf(key, scoped, model);
    const limited = buckets.length > 0;
    const maxOut = outputHeld(body, endpoint, this.deps.config.default_max_output ?? 4096);
    // A transcription's audio, by its file's size (audioTokensHeld), on top of its prompt.
    const audio =
      endpoint === 'transcriptions' || endpoint === 'translations'
        ? audioTokensHeld(FILE_BYTES.get(body) ?? 0)
        : 0;
    // An upstream's quota takes the call's tokens too.
    const quoted = attempts.some(hasQuota);
    const promptTokens =
      limited || rules.length > 0 || quoted ? (await estimatePromptTokens(body)) + audio : 0;
    const acc: Accumulated = { spentNano: 0n, tokens: 0, headers: {} };
    if (quoted) acc.heldTokens = promptTokens + maxOut;
    if (limited) {
      let results: RateResult[];
      try {
        const tokens = promptTokens + maxOut;
        // One pair of buckets, the common case (a key's own limits), goes the shorter way.
        const only = buckets.length === 1 ? (buckets[0] as (typeof buckets)[0]).bucket : null;
        results = only
          ? [
              await this.deps.state.rateLimit({
                key: only.key,
                rpm: only.rpm,
                tpm: only.tpm,
                tokens,
                now: time,
              }),
            ]
          : await this.deps.state.rateLimitAll(
              buckets.map((b) => b.bucket),
              tokens,
              time,
            );
      } catch (err) {
        return this.refuse(res, wire, stateUnavailable(err), refusal);
      }
      const at = results.findIndex((r) => !r.ok);
      if (at >= 0) {
        const refused = results[at] as RateResult;
        return this.refuse(res, wire, rateLimited(refused, key, buckets[at]?.rule ?? null), refusal);
      }
      // Like OpenAI, every answer says where the key stands (the tightest of its limits, when its
      // team's or its tags' hold it too); these replace the upstream's own.
      Object.assign(
        acc.headers,
        rateLimitHeaders(results.length === 1 ? (results[0] as RateResult) : tightest(results)),
      );
    }
    let hold: Hold | null = null;
    if (rules.length > 0) {
      let admission: Awaited<ReturnType<typeof reserveBudgets>>;
      try {
        admission = await reserveBudgets(
          this.deps,
          rules,
          key,
          model,
          (m) =>
            this.largestCost(
              m === model ? attempts : this.plan(m, endpoint, key.tenant),
              body,
              endpoint,
              promptTokens,
              key.tenant,
              time,
            ),
          time,
          toolCallsHeld(body, endpoint, model, this.deps.config.default_max_tool_calls),
        );
      } catch (err) {
        return this.refuse(res, wire, stateUnavailable(err), refusal);
      }
      if (!admission.ok) {
        // The tokens the rate limits took for a call that does not go are given back.
        await this.adjustRate(buckets, -(promptTokens + maxOut), time);
        return this.refuse(res, wire, admission.error, refusal);
      }
      hold = admission.hold;
      const cheaper = admission.downgradeTo ? this.plan(admission.downgradeTo, endpoint, key.tenant) : [];
      if (cheaper.length > 0) {
        attempts = cheaper.map((a) => (a.tier === 'primary' ? { ...a, tier: 'downgrade' as const } : a));
        acc.headers['x-tally-downgraded'] = headerValue(`${model} -> ${admission.downgradeTo}`);
      }
    }
    // Last, a place among the calls in flight its key and its scopes allow: a call refused before
    // holds none. Given back once the call ends, the answer sent.
    let held = false;
    try {
      if (slots.length > 0) {
        let got: AcquireResult;
        try {
          got = await this.deps.state.acquireSlots(slots.map((s) => s.slot));
        } catch (err) {
          return this.refuse(res, wire, stateUnavailable(err), refusal);
        }
        if (!got.ok) {
          const full = slots[got.at];
          return this.refuse(
            res,
            wire,
            tooManyInFlight(got.inFlight, key, full?.slot.limit ?? 0, full?.rule ?? null),
            refusal,
          );
        }
        held = true;
      }
      if (options !== null) attempts = withTries(attempts, options);
      const untranslatable = await forwardAttempts(
        this.env,
        req,
        res,
        endpoint,
        raw,
        body,
        model,
        attempts,
        key,
        attribution,
        time,
        acc,
      );
      if (untranslatable) this.refuse(res, wire, untranslatable, refusal);
    } finally {
      // The place first: it must go back even when the state fails the settlement below.
      if (held) await this.releaseSlots(slots);
      if (acc.background) {
        // Answered queued: metered, and its budgets settled, once its response has ended.
        this.background.watch({ ...acc.background, key, time, hold });
      } else if (hold) {
        const spent = acc.unpriced && hold.reserved > acc.spentNano ? hold.reserved : acc.spentNano;
        await settleBudgets(this.deps, key, hold, spent, time);
      }
      // A background call's tokens come when its response ends, minutes later: the bucket keeps
      // what it took for the call, as a call's tokens count in the minute it was made.
      if (!acc.background) await this.adjustRate(buckets, acc.tokens - (promptTokens + maxOut), time);
    }
  }

  /** Gives back the places a call held among the calls in flight. A failure is reported, not
   * thrown: the answer is sent, and a process seen dead gives its places back anyway (Redis). */
  private async releaseSlots(slots: { slot: ParallelSlot }[]): Promise<void> {
    try {
      await this.deps.state.releaseSlots(slots.map((s) => s.slot.key));
    } catch (err) {
      this.deps.onError?.(err, 'releasing calls in flight');
    }
  }

  /** Corrects the token buckets that hold a call by `delta` tokens (negative: given back). */
  private async adjustRate(buckets: { bucket: RateBucket }[], delta: number, time: number): Promise<void> {
    for (const { bucket } of buckets) {
      if (bucket.tpm !== null) await this.deps.state.adjustTokens(bucket.key, bucket.tpm, delta, time);
    }
  }

  /** Answers a call with a refusal, and records it as a refused call (see refusalRecord): the
   * answer's `x-tally-call-id` (and `x-tally-request-id`) names the record. */
  private refuse(
    res: ServerResponse,
    wire: Wire,
    err: GatewayError,
    call: Omit<Refusal, 'id' | 'code'>,
  ): void {
    const id = this.deps.newId();
    const headers = { ...err.headers, 'x-tally-request-id': id, 'x-tally-call-id': id };
    sendError(res, wire, { ...err, headers });
    this.deps.sink.write(refusalRecord(this.deps, { ...call, id, code: err.code }));
  }

  /** Refuses a call whose body could not be taken (too large, not JSON, no model), and records it
   * under what the key and the headers say of it. */
  private refuseUnread(
    req: IncomingMessage,
    res: ServerResponse,
    endpoint: Endpoint,
    key: VirtualKey,
    err: GatewayError,
    time: number,
    model: string,
  ): void {
    const call = {
      time,
      key,
      attribution: attribute(key, req.headers),
      provider: '',
      api: ENDPOINT_API[endpoint],
      model,
    };
    this.refuse(res, wireOf(endpoint), err, call);
  }

  /** What a call can cost at most: the prompt, and the output the request allows, on the
   * dearest of the upstreams it may reach (a fallback may cost more than the first). A request that
   * sets no limit may have the model's whole output (the catalog's figure), except one translated
   * for Claude, which is sent with `default_max_output`. Why not, when the first upstream's model
   * has no price (in the mode asked for); a fallback without one adds nothing. */
  private largestCost(
    attempts: Attempt[],
    body: Obj,
    endpoint: Endpoint,
    promptTokens: number,
    tenant: string,
    time: number,
    /** Priced at the provider's batch rates (a Batch API request). */
    batch = false,
  ): bigint | Unpriceable {
    const fallback = this.deps.config.default_max_output ?? 4096;
    const asked = outputHeld(body, endpoint, 0);
    // What the request asks for that costs more a token: OpenAI's priority tier, Anthropic's fast
    // mode and US-only inference (a flex or batch tier costs less, so the standard prices hold).
    const dearer = {
      ...(body['service_tier'] === 'priority' ? { service_tier: 'priority' } : {}),
      ...(body['speed'] !== undefined || body['inference_geo'] !== undefined
        ? { modes: { speed: body['speed'], inference_geo: body['inference_geo'] } }
        : {}),
    };
    let most: bigint | null = null;
    for (let i = 0; i < attempts.length; i++) {
      const a = attempts[i]!;
      const provider = priceProviderOf(a.provider);
      // `asked` already counts each of the choices; the model's own limit is for one of them.
      const output =
        asked > 0
          ? asked
          : translatedToMessages(a.provider, endpoint)
            ? fallback
            : Math.min(
                MAX_TOKEN_COUNT,
                (this.deps.maxOutput?.(provider, a.model, tenant) ?? fallback) * choicesOf(body),
              );
      let est: ReturnType<GatewayDeps['price']>;
      try {
        // A model call's prompt and output as tokens (on the hot path: nothing more is made for it).
        const special = this.heldUsage(body, endpoint, promptTokens, output);
        est = this.deps.price({
          provider,
          model: a.model,
          ...(special ? special[0] : { tokens: { input: promptTokens, output } }),
          time,
          tenant,
          // Hosted searches are billed per call, on top of the tokens.
          tool_calls: toolCallsHeld(body, endpoint, a.model, this.deps.config.default_max_tool_calls),
          ...(batch ? { batch: true } : dearer),
        });
        if (est.status !== 'priced' && special?.[1])
          est = this.deps.price({ provider, model: a.model, ...special[1], time, tenant });
      } catch {
        // Counts past what any usage may hold (a prompt and an output of billions of tokens): a
        // cost no budget can hold.
        return 2n ** 62n;
      }
      if (est.status !== 'priced') {
        if (i === 0) return { unpriced: est.reason };
        continue;
      }
      if (most === null || est.effectiveNano > most) most = est.effectiveNano;
    }
    return most ?? { unpriced: 'no upstream to price it on' };
  }

  /**
   * What a call's largest cost is priced from, and what instead when the model has no price for
   * that; null for a model call priced from its prompt and the most output it allows, as tokens.
   * For an image, the usage an image's answer gives (the prompt's text and an edit's images in,
   * the image's tokens out, each at its own price); for a speech, its input's characters (tts-1's
   * price), else its tokens (gpt-4o-mini-tts); for a transcription, its tokens with the file's
   * audio (audioTokensHeld), else the file's seconds at the same rate, 20 tokens a second
   * (whisper-1's price).
   */
  private heldUsage(
    body: Obj,
    endpoint: Endpoint,
    promptTokens: number,
    output: number,
  ): [PricedAs, PricedAs | null] | null {
    if (endpoint === 'images' || endpoint === 'image_edits') {
      const images = endpoint === 'image_edits' ? editImageTokensHeld(body) : 0;
      const usage = {
        input_tokens: promptTokens + images,
        input_tokens_details: { text_tokens: promptTokens, image_tokens: images },
        output_tokens: output,
        output_tokens_details: { image_tokens: output },
      };
      // A model billed by the image (dall-e): the `n` images asked for, at the quality and size asked.
      return [
        { api: ENDPOINT_API.images, usage },
        { tokens: {}, images: imagesAsked(body, choicesOf(body)) },
      ];
    }
    if (endpoint === 'speech')
      return [
        { api: ENDPOINT_API.speech, usage: { characters: speechCharacters(body) } },
        { tokens: { input: promptTokens, output } },
      ];
    if (endpoint === 'transcriptions' || endpoint === 'translations') {
      const audio = audioTokensHeld(FILE_BYTES.get(body) ?? 0);
      return [
        { tokens: { input: promptTokens, output, input_audio: audio } },
        { api: ENDPOINT_API.transcriptions, usage: { type: 'duration', seconds: Math.ceil(audio / 20) } },
      ];
    }
    return null;
  }

  /**
   * Why a budget could not send its calls to `model` once it is exhausted, or null if it can: the
   * name must be one a call may carry, a route must serve it for chat, and its first upstream must
   * price it, or the calls sent there could not be held to the budgets beside it.
   */
  downgradeProblem(model: string, tenant: string): string | null {
    if (!isModelName(model)) return `must be a model name: ${MODEL_NAME_RULE}`;
    const first = this.routes(model, 'chat', tenant)[0];
    if (!first) return `has no provider to go to (gateway.routes, or a provider whose models it matches)`;
    const priced = this.deps.price({
      provider: priceProviderOf(first.provider),
      model: first.model,
      tokens: { input: 1, output: 1 },
      time: this.deps.clock.now(),
      tenant,
    });
    if (priced.status !== 'priced')
      return `has no price on ${first.provider.id} (${priced.reason}): calls sent to it could not be held to a budget`;
    return null;
  }

  /** Attempts by upstream, plan tier and outcome, so far. */
  private readonly attempts = new Map<
    string,
    { provider: string; tier: string; outcome: string; n: number }
  >();

  /** Counts an attempt of a model call: its upstream, its tier in the plan, and `ok` or its error
   * type up to the code (`upstream_500`, `upstream_timeout`, `upstream_stream_error`...). */
  private countAttempt(ctx: AttemptContext, errorType: string): void {
    if (ctx.upstream === undefined) return;
    const colon = errorType.indexOf(':');
    const outcome = colon < 0 ? errorType : errorType.slice(0, colon);
    const tier = ctx.routeTier ?? 'primary';
    const at = `${ctx.upstream}\n${tier}\n${outcome}`;
    const seen = this.attempts.get(at);
    if (seen) seen.n++;
    else this.attempts.set(at, { provider: ctx.upstream, tier, outcome, n: 1 });
  }

  /** The attempts of model calls so far, for the metrics: by upstream, tier and outcome. */
  upstreamAttempts(): { provider: string; tier: string; outcome: string; n: number }[] {
    return [...this.attempts.values()];
  }

  /** Each upstream's health, for the metrics: the providers of the config, and any other (a
   * tenant's) that has failed since its last success; failures in a row, and whether its circuit
   * is open (calls skip it). */
  upstreamHealth(): { provider: string; failures: number; open: boolean }[] {
    const out = new Map<string, { provider: string; failures: number; open: boolean }>();
    for (const p of this.router.providerList) out.set(p.id, { provider: p.id, failures: 0, open: false });
    for (const f of this.breakers.failing())
      out.set(f.id, { provider: f.id, failures: f.failures, open: f.open });
    return [...out.values()];
  }

  /** Where each upstream deployment with a quota stands (its routes' targets on the config's
   * providers), for the metrics: the requests and tokens left of its minute. */
  async quotaStanding(): Promise<
    { provider: string; model: string; requests: number | null; tokens: number | null }[]
  > {
    const now = this.deps.clock.now();
    return Promise.all(
      this.router.quotaTargets.map(async (a) => {
        const r = await this.deps.state.rateStanding(quotaBucket(a), now);
        return {
          provider: a.provider.id,
          model: a.model,
          requests: r.requests?.remaining ?? null,
          tokens: r.tokens?.remaining ?? null,
        };
      }),
    );
  }

  /** The router's plan for a model, without the upstreams that cannot serve the endpoint. */
  private routes(model: string, endpoint: Endpoint, tenant: string): Attempt[] {
    return this.router.plan(model, endpoint, tenant).filter((a) => serves(a.provider, endpoint));
  }

  /** Where the call may go, in order, without upstreams whose breaker is open (unless every one of
   * the route's own is: then they are all tried, rather than failing without trying). */
  private plan(model: string, endpoint: Endpoint, tenant: string): Attempt[] {
    const all = this.routes(model, endpoint, tenant);
    // Most often every breaker is closed: the plan as it is, with no copy.
    if (all.every((a) => this.breakers.allows(a.provider.id))) return all;
    const open = all.filter((a) => this.breakers.allows(a.provider.id));
    // A stand-in (for a prompt too long, a filtered request) is no stand-in for the route's own.
    return open.some((a) => !isStandIn(a)) ? open : all;
  }

  private record(
    ctx: AttemptContext,
    out: AttemptOutcome,
    acc: Accumulated,
    later?: true,
  ): bigint | null | Metered {
    this.release(ctx);
    if (ctx.storedWith !== undefined && out.responseId && isStoredId(out.responseId))
      this.rememberResponse(ctx, out.responseId);
    const rec = meterAttempt(this.deps, ctx, out);
    this.countAttempt(ctx, rec.status === 'ok' ? 'ok' : (rec.error_type ?? 'error'));
    acc.spentNano += rec.cost_effective_nano ?? 0n;
    if (rec.pricing_status === 'unpriced') acc.unpriced = true;
    acc.tokens += rec.tokens.input + rec.tokens.output;
    if (later) return { cost: rec.cost_effective_nano, write: () => this.deps.sink.write(rec) };
    this.deps.sink.write(rec);
    return rec.cost_effective_nano;
  }

  private readonly followUps: FollowUpEnv;
  /** Background Responses calls answered queued, watched until their responses end. */
  readonly background: BackgroundCalls;
  /** Batches sent through the gateway, watched until they end, to meter their requests. */
  readonly batches: Batches;
  /** Realtime sessions (WebSockets at /v1/realtime), metered response by response. */
  readonly realtime: RealtimeSessions;

  /** Keeps which provider holds a stored response (or chat completion), and whose it is, for its
   * follow-ups. Not awaited: the state takes it before any later request of the client's can ask
   * (Redis answers one connection's commands in order, and this goes as the answer leaves); a
   * failure is reported, and costs the response its follow-ups, not the call its answer. */
  private rememberResponse(ctx: AttemptContext, id: string): void {
    const owner = encodeOwner({
      provider: ctx.storedWith!,
      tenant: ctx.key.tenant,
      project: ctx.attribution.project,
    });
    const on = ctx.upstreamApi === ENDPOINT_API.chat ? 'chat_completion' : 'response';
    this.deps.state
      .remember(ownerKey(on, id), owner, this.deps.clock.now() + RESPONSE_KEPT_MS)
      .catch((err: unknown) => this.deps.onError?.(err, `remembering a stored ${on}`));
  }

  /** GET /v1/models: the configured routes and, for each provider, what it lists. */
  /** A provider's model ids, kept for a minute; none when it cannot list them (then asked again at
   * the next list, after a few seconds). */
  private async modelsOf(p: ProviderConfig): Promise<string[]> {
    const hit = this.modelLists.get(p);
    if (hit && this.deps.clock.now() < hit.until) return hit.ids;
    let ids: string[] = [];
    let ttl = 5_000;
    try {
      const { origin, path, headers } = modelsPath(p);
      const r = await this.upstreams.request(origin, { path, method: 'GET', headers, timeoutMs: 5000 });
      const json = JSON.parse((await r.body.bytes()).toString('utf8')) as { data?: { id?: string }[] };
      if (r.statusCode === 200) {
        ids = (json.data ?? []).flatMap((m) => (typeof m.id === 'string' && m.id ? [m.id] : []));
        ttl = 60_000;
      }
    } catch {
      // A provider that cannot list its models contributes none.
    }
    // Counted from the answer (or the timeout), so that a provider that does not answer is asked
    // again only after a few seconds.
    this.modelLists.set(p, { ids, until: this.deps.clock.now() + ttl });
    return ids;
  }

  async models(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const key = await this.authenticate(req);
    if (!key) return sendError(res, 'openai', invalidKey());
    const created = Math.floor(this.deps.clock.now() / 1000);
    const ids = new Set<string>(this.router.routeNames);
    // Every provider the key's tenant may reach (its own, added through the API, too), asked at
    // once: one that does not answer costs its timeout once, not once per provider.
    const lists = await Promise.all(this.router.providersFor(key.tenant).map((p) => this.modelsOf(p)));
    for (const l of lists) for (const id of l) ids.add(id);
    let list = [...ids];
    if (key.models.length > 0) list = list.filter((m) => modelAllowed(key.models, m));
    const body = JSON.stringify({
      object: 'list',
      data: list.map((id) => ({ id, object: 'model', created, owned_by: 'tally' })),
    });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  /** Waits for the calls in flight to be metered, then writes every metered call (tests, shutdown). */
  async flush(): Promise<void> {
    await Promise.allSettled(this.inflight.values());
    await this.deps.sink.flush();
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.inflight.values());
    await this.realtime.close();
    await this.background.close();
    await this.batches.close();
    await this.upstreams.close();
    await this.deps.sink.close();
  }
}

export type { GatewayError };

const notJsonObject = (): GatewayError =>
  badRequest('The request body is not a valid JSON object.', 'invalid_json');

const conversationNotFound = (id: string): GatewayError => ({
  status: 404,
  type: 'invalid_request_error',
  code: 'conversation_not_found',
  message: `Conversation with id '${id.slice(0, 256)}' not found.`,
});

const previousNotFound = (id: string): GatewayError => ({
  status: 400,
  type: 'invalid_request_error',
  code: 'previous_response_not_found',
  message: `Previous response with id '${id.slice(0, 256)}' not found.`,
});

/** A free call's body (a token count's, a moderation's) and the model it names, or `fallback` where
 * it names none (none: ''); or its refusal: a body that is not a JSON object, a name no model may
 * have, or one the key may not use. */
function freeRequest(
  raw: Buffer,
  key: VirtualKey,
  fallback: string,
): { body: Obj; model: string } | GatewayError {
  const body = parseObject(raw.toString('utf8'));
  if (!body) return notJsonObject();
  const model = body['model'] ?? fallback;
  if (typeof model !== 'string' || (model !== '' && !isModelName(model)))
    return badRequest(`model must be a model name: ${MODEL_NAME_RULE}.`, 'invalid_model');
  if (model !== '' && !modelAllowed(key.models, model)) return notAllowed(key, model);
  return { body, model };
}

/** The most output a request may be billed, for its reservation and its tokens a minute: an
 * image's tokens (imageOutputTokens), a speech's audio (speechTokensHeld), else what the body
 * allows (maxOutputTokens), `fallback` where it sets no limit. */
function outputHeld(body: Obj, endpoint: Endpoint, fallback: number): number {
  if (endpoint === 'images' || endpoint === 'image_edits') return imageOutputTokens(body);
  if (endpoint === 'speech') return speechTokensHeld(body);
  return maxOutputTokens(body, fallback);
}

/** A body that names `model` as naming `to` instead (a route's or deployment's name for it). */
function naming(raw: Buffer, model: string, to: string): Buffer {
  return to === model ? raw : (editTopLevel(raw, new Map([['model', JSON.stringify(to)]])) ?? raw);
}

/** Whether an attempt's target has a quota of its own. */
const hasQuota = (a: Attempt): boolean => a.quota !== undefined;

/** The attempts with those of `provider` first, in their order, then the rest in theirs (a
 * route's stand-ins stay last). */
function holderFirst(attempts: Attempt[], provider: string): Attempt[] {
  const held = attempts.filter((a) => a.provider.id === provider && !isStandIn(a));
  if (held.length === 0 || attempts[0]!.provider.id === provider) return attempts;
  return [...held, ...attempts.filter((a) => !held.includes(a))];
}

/** The hosted tool calls a call's most cost holds on `model`: a Responses call's max_tool_calls
 * of the searches it offers (`fallback` where it sets none) and the session of a code container
 * made for it; a search model's one search a chat completion. */
function toolCallsHeld(
  body: Obj,
  endpoint: Endpoint,
  model: string,
  fallback: number | undefined,
): HostedToolCalls | null {
  if (endpoint !== 'responses') return searchModelCalls(endpoint === 'chat', model);
  const searches = hostedToolCallsAllowed(body, fallback ?? DEFAULT_MAX_TOOL_CALLS);
  const container = containerHeld(body);
  return container ? { ...searches, ...container } : searches;
}
