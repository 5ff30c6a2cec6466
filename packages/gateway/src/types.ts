import type { CallRecord, Clock, Pricer } from '@tally/core';
import type { AlertSink, BudgetResolver, RateLimitResolver } from './policy.js';
import type { SharedState } from './state/shared-state.js';

export type ProviderKind = 'openai' | 'azure' | 'anthropic' | 'openai-compatible';

export interface ProviderConfig {
  /** How routes and the `provider/model` prefix name it: openai, azure-eu, anthropic, gemini... */
  id: string;
  /** Set for a provider added through the API: it serves that tenant only. */
  tenant?: string | undefined;
  kind: ProviderKind;
  /** https://api.openai.com/v1, https://NAME.openai.azure.com, https://api.anthropic.com, ... */
  base_url: string;
  api_key?: string | undefined;
  /** Azure: the api-version query parameter. */
  api_version?: string | undefined;
  /** OpenAI: the organization and project calls are made for (`OpenAI-Organization`,
   * `OpenAI-Project`). A client's own headers of these names are never passed on: they would let a
   * key holder bill another organization of the account. */
  organization?: string | undefined;
  project?: string | undefined;
  /** Azure: model name -> deployment name. */
  deployments?: Record<string, string> | undefined;
  /** The price catalog's provider id, when it is not the id (gemini -> google). */
  price_provider?: string | undefined;
  /** Per-attempt timeout, ms. */
  timeout_ms?: number | undefined;
}

/** Where a call may go: a provider, and the model to ask it for. */
export interface Target {
  provider: string;
  model?: string | undefined;
  weight?: number | undefined;
  /** This upstream deployment's own quota through the gateway (every replica's calls, with a
   * shared state): requests and tokens a minute. A target at its quota is passed over for the
   * plan's next. */
  rpm?: number | undefined;
  tpm?: number | undefined;
}

export interface RouteConfig {
  /** The model name clients send. */
  model: string;
  /** Weighted alternatives tried first (load balancing)... */
  targets: Target[];
  /** ...then these, in order, on a 429, a 5xx, a timeout or a connection error. */
  fallbacks?: Target[] | undefined;
  /** Models with a larger context window, tried in order (in place of the attempts left) when an
   * upstream answers that the prompt is too long for its model. */
  context_fallbacks?: Target[] | undefined;
  /** Models another content filter judges, tried in order (in place of the attempts left) when an
   * upstream's content filter refuses the request (Azure's `content_filter`). */
  content_policy_fallbacks?: Target[] | undefined;
  /** How many times each of its upstreams is tried again, on a 429, a 5xx, a timeout, a connection
   * error or an answer that cannot be used, before the next (else the gateway's `retries`). */
  retries?: number | undefined;
}

export interface GatewayConfig {
  providers: ProviderConfig[];
  routes: RouteConfig[];
  /** Default per-attempt timeout, ms. */
  timeout_ms: number;
  /** How many times an upstream is tried again before the next (a route's `retries` wins). */
  retries?: number | undefined;
  /** The wait before the first try again (ms), doubled for each one after, with jitter... */
  retry_backoff_ms?: number | undefined;
  /** ...and never longer than this, nor than the upstream's `retry-after` asks up to this. */
  retry_max_wait_ms?: number | undefined;
  /** Largest request body accepted. */
  body_limit_bytes?: number | undefined;
  /** Largest upstream answer taken: past it a whole answer is cut off (502), a stream cut short. */
  max_response_bytes?: number | undefined;
  /** The output a request may produce when it sets no max_tokens, for budget reservations (where
   * the catalog does not know the model's). */
  default_max_output?: number | undefined;
  /** The hosted tool calls (web and file searches) a Responses call that sets no `max_tool_calls`
   * is reserved for. */
  default_max_tool_calls?: number | undefined;
  /** Lets calls to models with no price go under a block budget, reserving nothing. */
  allow_unpriced_under_budget?: boolean | undefined;
  /** A background Responses call's response is first asked for after this (ms), then half as
   * long again each time, up to a minute, until it has ended (background.ts). */
  background_poll_ms?: number | undefined;
  /** A background response not ended after this many hours is metered as estimated. */
  background_max_hours?: number | undefined;
  /** A batch is first asked for after this (ms), then half as long again each time, up to ten
   * minutes, until it has ended (batches.ts). */
  batch_poll_ms?: number | undefined;
  /** A batch not ended after this many hours is no longer watched (its reservation goes back). */
  batch_max_hours?: number | undefined;
  /** The largest batch input file the gateway reads, to check and reserve a batch. */
  batch_input_max_bytes?: number | undefined;
}

/** What a virtual key carries: its owner and policy. */
export interface VirtualKey {
  id: string;
  tenant: string;
  project: string | null;
  team: string | null;
  user: string | null;
  /** Models the key may use, by name or pattern (`gpt-4o*`: model-allow.ts); empty means any. */
  models: string[];
  /** Tags every call the key makes carries, over the call's own of the same name. */
  tags: Record<string, string>;
  rpm: number | null;
  tpm: number | null;
  /** The most calls it may have in flight at once; none when null or absent. */
  maxParallel?: number | null;
}

/** Looks a key up by its SHA-256 (hex); the gateway never sees the store. */
export type KeyResolver = (hash: string) => Promise<VirtualKey | null>;

/** Where metered calls go: batched and written off the request path. */
export interface Sink {
  write(record: CallRecord): void;
  flush(): Promise<void>;
  close(): Promise<void>;
  /** Keeps what `calls` lists (the calls under way, metered as if cut off now) on disk too, so
   * that a crash still meters them; a sink without a spool ignores it. With `busy` (whether any
   * call is under way), it stops looking while none is, until inflightStarted. */
  trackInflight?(calls: () => Promise<CallRecord[]>, busy?: () => boolean): void;
  /** A call went under way (for trackInflight's `busy`). */
  inflightStarted?(): void;
}

/** The most output tokens one call to a model may ask for (the catalog's), or null if unknown. */
export type MaxOutput = (provider: string, model: string, tenant: string) => number | null;

export interface GatewayDeps {
  config: GatewayConfig;
  price: Pricer;
  priceVersion: string;
  /** What a budget reserves for the output of a call that sets no limit; without it, or for a
   * model it does not know, `config.default_max_output`. */
  maxOutput?: MaxOutput;
  sink: Sink;
  resolveKey: KeyResolver;
  clock: Clock;
  /** Unique ids for calls; injected so tests are exact. */
  newId: () => string;
  /** Budget reservations and rate-limit buckets, in-process or in Redis. */
  state: SharedState;
  budgets: BudgetResolver;
  /** The rate limits of the scopes a call belongs to; none without it. */
  rateLimits?: RateLimitResolver;
  alerts: AlertSink;
  /** A failure off the request path (the shared state out of reach while settling, say). */
  onError?: (err: unknown, what: string) => void;
  /** Where the background calls being watched are kept, so that they outlive the process
   * (background.ts); without it, one still running when the process stops is metered as cut off. */
  backgroundDir?: string | undefined;
}
