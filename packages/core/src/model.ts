/**
 * The data model shared by every package (DESIGN.md, "The data model"). Times are epoch
 * milliseconds; money is integer nano-USD as bigint.
 */

/** Normalised token counts, with the OTel GenAI meaning: cache reads and writes are part of
 * `input`, reasoning and output audio are part of `output`. */
export interface Tokens {
  input: number;
  output: number;
  cache_read: number;
  /** All cache writes (5 minute and 1 hour together). */
  cache_write: number;
  /** The part of `cache_write` written with a 1 hour lifetime. */
  cache_write_1h: number;
  reasoning: number;
  input_audio: number;
  output_audio: number;
  /** Cache reads of audio tokens, part of both `cache_read` and `input_audio`. */
  cache_audio_read: number;
  /** Web or grounding searches, priced per search. */
  web_searches: number;
  /** Searches of the provider's file stores (OpenAI's file_search tool), priced per search. */
  file_searches: number;
  /** Sessions of the provider's code containers (OpenAI's code interpreter), priced per session:
   * each container the gateway first sees, of any memory size (the price is that size's). */
  code_containers: number;
  /** Images made by the provider's image generation tool (OpenAI's, in the Responses API), which
   * its usage does not count: priced per image only where an override gives a price. */
  image_generations: number;
  /** The characters of a speech's input, where its model bills them (tts-1). */
  characters: number;
  /** The seconds of audio a call billed by its length gave (whisper-1's). */
  audio_seconds: number;
}

export const ZERO_TOKENS: Readonly<Tokens> = Object.freeze({
  input: 0,
  output: 0,
  cache_read: 0,
  cache_write: 0,
  cache_write_1h: 0,
  reasoning: 0,
  input_audio: 0,
  output_audio: 0,
  cache_audio_read: 0,
  web_searches: 0,
  file_searches: 0,
  code_containers: 0,
  image_generations: 0,
  characters: 0,
  audio_seconds: 0,
});

export type PricingStatus = 'priced' | 'estimated' | 'unpriced';
/** What became of a call: answered (`ok`), failed upstream or cut off (`error`), or answered by the
 * gateway itself without going upstream (`refused`: a budget, a rate limit, a model the key may not
 * use, a request it could not route or translate). A refused call costs nothing; spend counts it
 * apart (`refused_calls`), and the scorecard and the audit leave it out. */
export const CALL_STATUSES = ['ok', 'error', 'refused'] as const;
export type CallStatus = (typeof CALL_STATUSES)[number];
export type CacheStatus = 'miss' | 'exact' | 'semantic';

export const API_FLAVOURS = [
  'openai-chat',
  'openai-responses',
  'openai-embeddings',
  'openai-images',
  'openai-speech',
  'openai-realtime',
  'openai-transcriptions',
  'anthropic-messages',
  'gemini',
  'bedrock-converse',
] as const;
export type ApiFlavour = (typeof API_FLAVOURS)[number];

export interface CallRecord {
  id: string;
  time: number;
  tenant: string;
  project: string | null;
  team: string | null;
  user: string | null;
  use_case: string | null;
  task_id: string | null;
  key_id: string | null;
  tags: Record<string, string>;
  provider: string;
  api: string;
  model_requested: string;
  model_served: string | null;
  tokens: Tokens;
  /** List cost in nano-USD; null when unpriced. */
  cost_list_nano: bigint | null;
  /** Effective (billed) cost in nano-USD; null when unpriced. */
  cost_effective_nano: bigint | null;
  pricing_status: PricingStatus;
  price_version: string | null;
  latency_ms: number | null;
  ttft_ms: number | null;
  status: CallStatus;
  error_type: string | null;
  cache: CacheStatus;
  route_tier: string | null;
  fallback_hops: number;
  saved_nano: bigint;
  /** The request this call was an attempt of: a gateway request's attempts (the first, and each
   * fallback or downgrade after it) share it, and it is the first attempt's id. Null when the
   * sender gave none. */
  request_id: string | null;
}

export const TASK_EVENT_TYPES = [
  'task.eligible',
  'task.ai_used',
  'task.completed',
  'task.human',
  'task.quality',
  'task.opt_out',
] as const;
export type TaskEventType = (typeof TASK_EVENT_TYPES)[number];

export type Arm = 'ai' | 'holdout';
export type Outcome = 'success' | 'failure' | 'abandoned';
export type HumanKind = 'review' | 'edit' | 'override' | 'escalation';

/** One task event, flattened: the fields that do not apply to its type are null. */
export interface TaskEventRecord {
  id: string;
  type: TaskEventType;
  time: number;
  tenant: string;
  use_case: string;
  task_id: string;
  user: string | null;
  team: string | null;
  arm: Arm | null;
  covariate: number | null;
  call_ids: string[];
  outcome: Outcome | null;
  handling_seconds: number | null;
  value_nano: bigint | null;
  kind: HumanKind | null;
  seconds: number | null;
  pass: boolean | null;
  score: number | null;
  reviewer: string | null;
  reason: string | null;
}

export type Stage = 'idea' | 'readiness' | 'pilot' | 'production' | 'scale';

export const LEDGER_CATEGORIES = [
  'infrastructure',
  'data_engineering',
  'monitoring_retraining',
  'human_review_qa',
  'security_compliance',
  'change_management_training',
  'licences',
  'other',
] as const;
export type LedgerCategory = (typeof LEDGER_CATEGORIES)[number];

/** Who a budget holds: the tenant, a project, team, user or key, or the calls carrying a tag
 * (subject `name=value`, from the key's tags or the call's `x-tally-tags`). */
export type BudgetScope = 'tenant' | 'project' | 'team' | 'user' | 'key' | 'tag';

/** A tag budget's subject, `name=value`, as its name and value (split at the first `=`); null when
 * it is not of that form. */
export function tagSubject(subject: string): { key: string; value: string } | null {
  const at = subject.indexOf('=');
  return at <= 0 ? null : { key: subject.slice(0, at), value: subject.slice(at + 1) };
}
export type BudgetPeriod = 'day' | 'week' | 'month';
export type BudgetAction = 'alert' | 'downgrade' | 'block';
