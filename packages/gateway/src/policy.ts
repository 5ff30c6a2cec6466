import {
  type BudgetAction,
  type BudgetPeriod,
  type BudgetScope,
  CODE_CONTAINER_CALLS,
  type HostedToolCalls,
  hostedCount,
  isObject,
  MAX_TOKEN_COUNT,
  nanoToUsd,
  type PeriodWindow,
  periodWindow,
  tagSubject,
} from '@tally/core';
import type { Attribution } from './meter.js';
import { modelAllowed } from './model-allow.js';
import { type GatewayError, headerValue } from './replies.js';
import type { BudgetWindow, RateResult } from './state/shared-state.js';
import type { VirtualKey } from './types.js';

/** A budget as the gateway enforces it. */
export interface BudgetRule {
  /** The tenant the budget belongs to: ids are chosen by each tenant, so they may repeat. */
  tenant: string;
  id: string;
  scope: BudgetScope;
  subject: string;
  limitNano: bigint;
  period: BudgetPeriod;
  timeZone: string;
  /** Fractions of the limit that raise an alert when crossed, e.g. [0.5, 0.8, 1]. */
  thresholds: number[];
  action: BudgetAction;
  downgradeModel: string | null;
  /** The models whose calls it counts and holds (names or patterns, model-allow.ts); none, or
   * empty, for every model. A call counts by the model it asks for, as it is recorded
   * (model_requested), a downgraded one too. */
  models?: string[] | undefined;
}

/** Per-minute limits shared by the calls of a scope (a team's, a tag's...), whichever key makes
 * them, on top of each key's own rpm and tpm. */
export interface RateLimitRule {
  tenant: string;
  id: string;
  scope: BudgetScope;
  subject: string;
  /** The models whose calls it holds (names or patterns); none, or empty, for every model. */
  models?: string[] | undefined;
  rpm: number | null;
  tpm: number | null;
  /** The most calls of its scope in flight at once; none when null or absent. */
  maxParallel?: number | null;
}

/** The rate limits that hold a call: those of the tenant, and of its project, team, user, key or
 * tags. */
export type RateLimitResolver = (
  key: VirtualKey,
  attribution: Attribution,
) => RateLimitRule[] | Promise<RateLimitRule[]>;

/** The shared state's name for a rate limit's buckets: apart from any key's (a key's buckets go by
 * its id), and from another tenant's limit of the same id. */
export function rateLimitBucket(rule: RateLimitRule): string {
  return `rl:${rule.tenant.length}:${rule.tenant}:${rule.id}`;
}

/** Whether a budget (or a rate limit) counts calls to `model`: one without models counts every
 * call. */
export function countsModel(rule: { models?: string[] | undefined }, model: string): boolean {
  return rule.models === undefined || rule.models.length === 0 || modelAllowed(rule.models, model);
}

/** The budgets that apply to a call: the tenant's, its project's, team's, user's and key's. */
export type BudgetResolver = (
  key: VirtualKey,
  attribution: Attribution,
) => BudgetRule[] | Promise<BudgetRule[]>;

/** Why a block budget refused a call for its spend (see exhaustionOf). */
export type ExhaustionReason = 'spent' | 'call_exceeds_remaining';

export interface BudgetAlert {
  /** A threshold the spend crossed, or (a block budget) a call it refused for its spend. */
  kind: 'budget.threshold' | 'budget.exhausted';
  tenant: string;
  budgetId: string;
  scope: BudgetScope;
  subject: string;
  threshold: number;
  spentUsd: string;
  limitUsd: string;
  period: string;
  resetsAt: string;
  time: string;
  /** budget.exhausted: why, what was left, and the refused call's largest cost. */
  reason?: ExhaustionReason | undefined;
  remainingUsd?: string | undefined;
  callUsd?: string | undefined;
}

export type AlertSink = (alert: BudgetAlert) => void;

/** Whether a rule applies to a call, by its scope. */
export function applies(
  rule: { scope: BudgetScope; subject: string },
  key: VirtualKey,
  a: Attribution,
): boolean {
  switch (rule.scope) {
    case 'tenant':
      return rule.subject === key.tenant;
    case 'project':
      return rule.subject === a.project;
    case 'team':
      return rule.subject === a.team;
    case 'user':
      return rule.subject === a.user;
    case 'key':
      return rule.subject === key.id;
    case 'tag': {
      const tag = tagSubject(rule.subject);
      return tag !== null && a.tags[tag.key] === tag.value;
    }
  }
}

/** The rules of a list (at hand, or to come from a cache's read) that hold a call of `key`. */
export function holding<T extends { scope: BudgetScope; subject: string }>(
  found: T[] | Promise<T[]>,
  key: VirtualKey,
  a: Attribution,
): T[] | Promise<T[]> {
  if (found instanceof Promise) return found.then((list) => list.filter((r) => applies(r, key, a)));
  // Most tenants have none: nothing to filter.
  return found.length === 0 ? found : found.filter((r) => applies(r, key, a));
}

const periods = new Map<string, PeriodWindow>();

/** The period holding `now`, worked out once per period and time zone (time-zone arithmetic is
 * slow enough to matter on every call). */
function currentPeriod(period: BudgetPeriod, timeZone: string, now: number): PeriodWindow {
  const k = `${period}|${timeZone}`;
  let p = periods.get(k);
  if (!p || now < p.start || now >= p.end) {
    p = periodWindow(period, timeZone, now);
    periods.set(k, p);
  }
  return p;
}

/** A rule's window of the current period, which starts at `start` (epoch ms). */
export type RuleWindow = { rule: BudgetRule; window: BudgetWindow; label: string; start: number };

/** Each rule's window of its current period, made once per rule and period: the same objects (and
 * the same key string, whose hash is then worked out once) serve every call in it. */
const ruleWindows = new WeakMap<BudgetRule, RuleWindow>();

export function windowsFor(rules: BudgetRule[], now: number): RuleWindow[] {
  return rules.map((rule) => {
    let w = ruleWindows.get(rule);
    if (!w || now < w.start || now >= w.window.resetAt) {
      const p = currentPeriod(rule.period, rule.timeZone, now);
      w = {
        rule,
        label: p.label,
        start: p.start,
        window: {
          budgetId: rule.id,
          key: windowKey(rule.tenant, rule.id, p.label),
          limitNano: rule.limitNano,
          resetAt: p.end,
        },
      };
      ruleWindows.set(rule, w);
    }
    return w;
  });
}

/** The shared state's name for a budget's window: its tenant (length first, so that no tenant and
 * id pair reads as another), its id, and the period's label (which holds no colon). */
export function windowKey(tenant: string, budgetId: string, label: string): string {
  return `${tenant.length}:${tenant}:${budgetId}:${label}`;
}

/** OpenAI's duration style for x-ratelimit-reset-*: 20ms, 1s, 6m0s. */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.ceil(ms))}ms`;
  const s = Math.ceil(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${s % 60}s`;
}

export function rateLimitHeaders(r: RateResult): Record<string, string> {
  const h: Record<string, string> = {};
  if (r.requests) {
    h['x-ratelimit-limit-requests'] = String(r.requests.limit);
    h['x-ratelimit-remaining-requests'] = String(r.requests.remaining);
    h['x-ratelimit-reset-requests'] = duration(r.requests.resetMs);
  }
  if (r.tokens) {
    h['x-ratelimit-limit-tokens'] = String(r.tokens.limit);
    h['x-ratelimit-remaining-tokens'] = String(r.tokens.remaining);
    h['x-ratelimit-reset-tokens'] = duration(r.tokens.resetMs);
  }
  return h;
}

/** The 429 of a rate limit: the key's own (`rule` null) or one of its scope's, which it names. */
export function rateLimited(r: RateResult, key: VirtualKey, rule: RateLimitRule | null = null): GatewayError {
  const what = r.limited === 'tokens' ? 'tokens' : 'requests';
  const limit = what === 'tokens' ? r.tokens?.limit : r.requests?.limit;
  const { whose, headers } = limitOwner(key, rule, {
    ...rateLimitHeaders(r),
    'retry-after': String(Math.max(1, Math.ceil(r.retryAfterMs / 1000))),
  });
  return {
    status: 429,
    type: what,
    code: 'rate_limit_exceeded',
    message: `Rate limit reached for ${whose} on ${what} per min: limit ${limit}. Please try again in ${duration(r.retryAfterMs)}.`,
    headers,
  };
}

/** Whose limit refused a call, as a 429 names it: the key's own (`rule` null) or a scope's rate
 * limit, which its `x-tally-rate-limit` header names too. */
function limitOwner(
  key: VirtualKey,
  rule: RateLimitRule | null,
  headers: Record<string, string>,
): { whose: string; headers: Record<string, string> } {
  if (!rule) return { whose: `key ${key.id}`, headers };
  headers['x-tally-rate-limit'] = headerValue(rule.id);
  return { whose: `rate limit ${rule.id} (${rule.scope} ${rule.subject})`, headers };
}

/** The 429 of a cap on calls in flight: the key's own (`rule` null) or one of its scope's. */
export function tooManyInFlight(
  inFlight: number,
  key: VirtualKey,
  limit: number,
  rule: RateLimitRule | null,
): GatewayError {
  const { whose, headers } = limitOwner(key, rule, { 'retry-after': '1' });
  return {
    status: 429,
    type: 'requests',
    code: 'parallel_limit_exceeded',
    message: `Too many calls in flight for ${whose}: ${inFlight} of ${limit} at once. Try again when one ends.`,
    headers,
  };
}

/** What the answer's x-ratelimit-* headers say when several limits hold a call: for requests and
 * for tokens apart, the limit with the fewest left, the one a client must pace itself to. */
export function tightest(results: RateResult[]): RateResult {
  let requests: RateResult['requests'] = null;
  let tokens: RateResult['tokens'] = null;
  for (const r of results) {
    if (r.requests && (requests === null || r.requests.remaining < requests.remaining)) requests = r.requests;
    if (r.tokens && (tokens === null || r.tokens.remaining < tokens.remaining)) tokens = r.tokens;
  }
  return { ok: true, limited: null, requests, tokens, retryAfterMs: 0 };
}

const SEARCH_CALLS = ['web_searches', 'file_searches'] as const;

export function budgetExceeded(
  rule: BudgetRule,
  spentNano: bigint,
  reservedNano: bigint,
  resetAt: number,
  now: number,
  callNano = 0n,
  /** The hosted tool calls the call's most cost holds: searches, images, a code container's session. */
  held: HostedToolCalls | null = null,
): GatewayError {
  const searches = hostedCount(held, SEARCH_CALLS);
  const images = held?.image_generations ?? 0;
  const containers = hostedCount(held, CODE_CONTAINER_CALLS);
  const resets = new Date(resetAt).toISOString();
  const left = rule.limitNano - spentNano;
  const name = `${rule.id} (${rule.scope} ${rule.subject}, ${rule.period})`;
  const limit = `$${nanoToUsd(rule.limitNano)}`;
  // Three cases. Nothing is left: wait for the reset. What is left cannot take this call even once
  // the calls in flight end: say so, and what would let it. What is left could take it, but the
  // calls in flight hold it: they end within seconds, and a retry then may go.
  let message: string;
  let retryMs = resetAt - now;
  if (left <= 0n) {
    message = `Budget ${name} is exhausted: $${nanoToUsd(spentNano)} spent of ${limit}. It resets at ${resets}.`;
  } else if (callNano > left) {
    message =
      `This call may cost up to $${nanoToUsd(callNano)} (its prompt and its most output` +
      (searches > 0 ? `, and ${searches} hosted searches at their fee` : '') +
      (images > 0 ? `, and ${images} generated images at their fee` : '') +
      (containers > 0 ? ', and a code interpreter container session at its fee' : '') +
      `), more than the $${nanoToUsd(left)} left of budget ${rule.id} (${rule.scope} ${rule.subject}, ${rule.period}, ${limit}): ` +
      'send a lower output limit (max_tokens, max_output_tokens)' +
      (searches > 0 || images > 0 ? ' or fewer tool calls (max_tool_calls)' : '') +
      (containers > 0 ? " or a container of your own (the code_interpreter tool's container id)" : '') +
      (callNano > rule.limitNano ? '.' : `, or wait for ${resets}, when it resets.`);
  } else {
    retryMs = 1000;
    message =
      `Budget ${name} is held by the calls in flight: ` +
      `$${nanoToUsd(spentNano)} spent and $${nanoToUsd(reservedNano)} in flight of ${limit}. ` +
      `Try again when they end; it resets at ${resets}.`;
  }
  return {
    status: 429,
    type: 'budget_exceeded',
    code: 'budget_exceeded',
    message,
    headers: {
      'retry-after': String(Math.max(1, Math.ceil(retryMs / 1000))),
      'x-tally-budget': headerValue(rule.id),
      'x-tally-budget-reset': resets,
    },
  };
}

/** The largest output a request allows, from whichever field its API uses, for each of the
 * choices it asks for (chat's `n`). */
export function maxOutputTokens(body: Record<string, unknown>, fallback: number): number {
  for (const f of ['max_completion_tokens', 'max_tokens', 'max_output_tokens']) {
    const v = body[f];
    if (typeof v === 'number' && Number.isFinite(v) && v > 0)
      return Math.min(MAX_TOKEN_COUNT, Math.floor(v) * choicesOf(body));
  }
  return Math.min(MAX_TOKEN_COUNT, fallback * choicesOf(body));
}

/** The image tokens OpenAI bills for one generated image, by quality and size (gpt-image-1's
 * table, which its successors keep). */
const IMAGE_TOKENS: Record<string, Record<string, number>> = {
  low: { '1024x1024': 272, '1024x1536': 408, '1536x1024': 400 },
  medium: { '1024x1024': 1056, '1024x1536': 1584, '1536x1024': 1568 },
  high: { '1024x1024': 4160, '1024x1536': 6240, '1536x1024': 6208 },
};

/**
 * The most output an image generation request may be billed, for its reservation: its images'
 * tokens at the quality and size it asks for (the largest, where it leaves either to the model:
 * `auto`, or none), `n` of them, and 100 more for each partial image a streamed one sends.
 */
export function imageOutputTokens(body: Record<string, unknown>): number {
  const quality = IMAGE_TOKENS[String(body['quality'])] ?? IMAGE_TOKENS['high']!;
  const image = quality[String(body['size'])] ?? Math.max(...Object.values(quality));
  const partial = body['partial_images'];
  const partials = typeof partial === 'number' && partial > 0 ? Math.min(3, Math.floor(partial)) : 0;
  return Math.min(MAX_TOKEN_COUNT, (image + 100 * partials) * choicesOf(body));
}

/** The most hosted tool calls a call may take, where a request sets no `max_tool_calls`. */
export const DEFAULT_MAX_TOOL_CALLS = 10;

/**
 * The hosted tool calls billed per call that a Responses request may make, for its budget
 * reservation: its `max_tool_calls`, or `fallback` where it sets none, of the dearer kind of
 * search it offers (a web search before a file search), and as many images where it offers image
 * generation (whose fee, where an override gives one, the searches' may not cover). Null when it
 * offers none of these.
 */
export function hostedToolCallsAllowed(
  body: Record<string, unknown>,
  fallback: number,
): HostedToolCalls | null {
  const tools = body['tools'];
  if (!Array.isArray(tools)) return null;
  let web = false;
  let file = false;
  let image = false;
  for (const t of tools) {
    const type = isObject(t) ? t['type'] : undefined;
    if (typeof type !== 'string') continue;
    // web_search, web_search_preview and their dated names (web_search_2025_08_26).
    if (type.startsWith('web_search')) web = true;
    else if (type === 'file_search') file = true;
    else if (type === 'image_generation') image = true;
  }
  if (!web && !file && !image) return null;
  const asked = body['max_tool_calls'];
  const n =
    typeof asked === 'number' && Number.isInteger(asked) && asked > 0
      ? Math.min(asked, MAX_TOKEN_COUNT)
      : fallback;
  const out: HostedToolCalls = web ? { web_searches: n } : file ? { file_searches: n } : {};
  if (image) out.image_generations = n;
  return out;
}

/** OpenAI's search models (gpt-4o-search-preview, gpt-5-search-api): each chat completion searches
 * the web once before it answers, a search billed per call that the usage does not count. */
const SEARCH_MODEL = /-search-(?:preview|api)(?:-|$)/;
const ONE_SEARCH: Readonly<HostedToolCalls> = Object.freeze({ web_searches: 1 });

/** The web search a chat completion of one of OpenAI's search models makes, or null. */
export function searchModelCalls(chat: boolean, model: string): HostedToolCalls | null {
  return chat && SEARCH_MODEL.test(model) ? ONE_SEARCH : null;
}

/** How many answers a chat request asks for: `n`, each of which may write the whole output. */
export function choicesOf(body: Record<string, unknown>): number {
  const n = body['n'];
  return typeof n === 'number' && Number.isInteger(n) && n > 1 ? Math.min(n, 128) : 1;
}
