import type { CallRecord, HostedToolCalls, ImageCount, PriceOutcome, Tokens } from '@tally/core';
import { ZERO_TOKENS } from '@tally/core';
import { searchModelCalls } from './policy.js';
import type { GatewayDeps, VirtualKey } from './types.js';

export interface Attribution {
  project: string | null;
  team: string | null;
  user: string | null;
  use_case: string | null;
  task_id: string | null;
  tags: Record<string, string>;
}

export interface AttemptContext {
  id: string;
  /** Epoch ms when the request arrived. */
  time: number;
  key: VirtualKey;
  attribution: Attribution;
  /** Catalog provider id, and the API flavour of the upstream's usage object. */
  priceProvider: string;
  upstreamApi: string;
  modelRequested: string;
  modelSent: string;
  fallbackHops: number;
  /** The request's id, which all its attempts share: the first attempt's. */
  requestId: string;
  routeTier: string | null;
  /** The configured upstream (provider id) the attempt went to, where it is one of a plan's. */
  upstream?: string | undefined;
  /** For a stream under way: what reads the output text relayed so far. It is the stream's
   * meter itself, not a closure: a closure would hold the whole relay's scope (the request, the
   * response, the upstream's body) for as long as the context lives. */
  progress?: { text(): string } | undefined;
  /** While the attempt is under way: the gateway's note of it. */
  underway?: Underway | undefined;
  /** For a Responses call whose answer the provider stores: the provider's id, kept with the
   * response's id so that its follow-ups (retrieve, delete...) reach it (stored.ts). */
  storedWith?: string | undefined;
  /** A background call kept on disk by its watch (background.ts): a process that dies leaves it
   * to the next, which watches it to its end, rather than metering it as cut off. */
  kept?: boolean | undefined;
}

/** An attempt sent upstream and not yet recorded, as the gateway keeps it (to meter it if the
 * process dies first). */
export interface Underway {
  ctx: AttemptContext;
  body: Record<string, unknown>;
  since: number;
  /** The prompt's tokens, counted once. */
  tokens: number | null;
  /** A stream's output tokens so far, counted again at most once a second. */
  output: number;
  countedAt: number;
  slot: number;
}

export interface AttemptOutcome {
  status: 'ok' | 'error';
  errorType: string | null;
  /** The provider's usage object, when it sent one. */
  usage: Record<string, unknown> | null;
  /** Token counts estimated by the tokenizer, when the provider's usage never came; or, beside a
   * usage the gateway made itself (a speech's characters), what prices the call when that usage has
   * no price on its model (a speech of gpt-4o-mini-tts, billed by the token, that gave none). */
  estimated: Partial<Tokens> | null;
  modelServed: string | null;
  /** The service tier the answer names (OpenAI's `service_tier`), which prices the call. */
  serviceTier?: string | null;
  /** The hosted tool calls billed per call that the answer lists (Responses), which price the call. */
  toolCalls?: HostedToolCalls | null;
  /** The id of the response the answer is (Responses), or null. */
  responseId?: string | null;
  /** The images a model billed by the image made (dall-e), whose answer gave no usage. */
  images?: ImageCount | null;
  latencyMs: number;
  ttftMs: number | null;
}

/** An attempt's price as `model`: from the upstream's usage, else from the tokens estimated. */
function priceAs(
  deps: GatewayDeps,
  ctx: AttemptContext,
  out: AttemptOutcome,
  model: string,
  fromEstimate = false,
): PriceOutcome {
  const toolCalls = out.toolCalls ?? searchModelCalls(ctx.upstreamApi === 'openai-chat', model);
  return out.usage && !fromEstimate
    ? deps.price({
        provider: ctx.priceProvider,
        api: ctx.upstreamApi,
        model,
        usage: out.usage,
        time: ctx.time,
        tenant: ctx.key.tenant,
        service_tier: out.serviceTier ?? null,
        tool_calls: toolCalls,
      })
    : deps.price({
        provider: ctx.priceProvider,
        model,
        tokens: out.estimated ?? {},
        images: out.images ?? null,
        time: ctx.time,
        tenant: ctx.key.tenant,
        service_tier: out.serviceTier ?? null,
        tool_calls: toolCalls,
      });
}

/** Turns one upstream attempt into the call record the sink stores. Never throws: a usage object
 * the catalog cannot read is stored unpriced with the reason in error_type. */
export function meterAttempt(deps: GatewayDeps, ctx: AttemptContext, out: AttemptOutcome): CallRecord {
  const model = out.modelServed ?? ctx.modelSent;
  let priced: PriceOutcome | null = null;
  let errorType = out.errorType;
  let fromEstimate = !out.usage && !!out.estimated;
  try {
    if (out.usage || out.estimated || out.images) {
      priced = priceAs(deps, ctx, out, model);
      if (priced.status === 'unpriced' && out.usage && out.estimated) {
        const est = priceAs(deps, ctx, out, model, true);
        if (est.status === 'priced') {
          priced = est;
          fromEstimate = true;
        }
      }
      // A name the answer gives that has no price (vLLM names its model by the path it loaded it
      // from) is priced as the model the request named, whose price the reservation took.
      if (priced.status === 'unpriced' && model !== ctx.modelSent) {
        const sent = priceAs(deps, ctx, out, ctx.modelSent);
        if (sent.status === 'priced') priced = sent;
      }
    }
  } catch (err) {
    errorType ??= `usage_unreadable: ${(err as Error).message}`.slice(0, 128);
  }
  // Why a call is unpriced is kept with it, as an unreadable usage's is: `error_type` starting
  // `unpriced:` (a call listed by GET /v1/calls?error_type=unpriced).
  if (priced?.status === 'unpriced') errorType ??= `unpriced: ${priced.reason}`.slice(0, 128);
  const isPriced = priced?.status === 'priced' ? priced : null;
  // A failed call with no usage costs nothing; an unreadable or unknown one stays unpriced.
  const free = priced === null && out.usage === null && out.estimated === null && !out.images;
  return {
    id: ctx.id,
    time: ctx.time,
    tenant: ctx.key.tenant,
    project: ctx.attribution.project,
    team: ctx.attribution.team,
    user: ctx.attribution.user,
    use_case: ctx.attribution.use_case,
    task_id: ctx.attribution.task_id,
    key_id: ctx.key.id,
    tags: ctx.attribution.tags,
    provider: ctx.priceProvider,
    api: ctx.upstreamApi,
    model_requested: ctx.modelRequested,
    model_served: model,
    tokens: priced?.tokens ?? { ...ZERO_TOKENS },
    cost_list_nano: isPriced ? isPriced.listNano : free ? 0n : null,
    cost_effective_nano: isPriced ? isPriced.effectiveNano : free ? 0n : null,
    pricing_status: fromEstimate && isPriced ? 'estimated' : isPriced || free ? 'priced' : 'unpriced',
    price_version: deps.priceVersion,
    latency_ms: Math.round(out.latencyMs * 1000) / 1000,
    ttft_ms: out.ttftMs === null ? null : Math.round(out.ttftMs * 1000) / 1000,
    status: out.status,
    error_type: errorType,
    cache: 'miss',
    route_tier: ctx.routeTier,
    fallback_hops: ctx.fallbackHops,
    saved_nano: 0n,
    request_id: ctx.requestId,
  };
}

/** A call the gateway answered itself, sending nothing upstream. */
export interface Refusal {
  id: string;
  /** Epoch ms when the request arrived. */
  time: number;
  key: VirtualKey;
  attribution: Attribution;
  /** The catalog provider the call would have gone to first ('' when no route serves it). */
  provider: string;
  api: string;
  model: string;
  /** The refusal's error code: budget_exceeded, rate_limit_exceeded, model_not_allowed, ... */
  code: string;
}

/** A refused call's record: status `refused`, its error code as error_type, no tokens, $0 and no
 * latency (it went nowhere), under the key's attribution, so that what a budget, a limit or a
 * key's model list turned away can be listed and counted by key, team, user and model. */
export function refusalRecord(deps: GatewayDeps, r: Refusal): CallRecord {
  return {
    id: r.id,
    time: r.time,
    tenant: r.key.tenant,
    project: r.attribution.project,
    team: r.attribution.team,
    user: r.attribution.user,
    use_case: r.attribution.use_case,
    task_id: r.attribution.task_id,
    key_id: r.key.id,
    tags: r.attribution.tags,
    provider: r.provider,
    api: r.api,
    model_requested: r.model,
    model_served: null,
    tokens: { ...ZERO_TOKENS },
    cost_list_nano: 0n,
    cost_effective_nano: 0n,
    pricing_status: 'priced',
    price_version: deps.priceVersion,
    latency_ms: null,
    ttft_ms: null,
    status: 'refused',
    error_type: r.code,
    cache: 'miss',
    route_tier: null,
    fallback_hops: 0,
    saved_nano: 0n,
    request_id: r.id,
  };
}
