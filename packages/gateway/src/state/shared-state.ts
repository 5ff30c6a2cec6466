/**
 * The gateway's shared state: budget reservations and rate-limit buckets. One process keeps it in
 * memory; replicas share it through Redis. Both implementations run the same contract suite.
 * Amounts are integer nano-USD.
 */
export interface BudgetWindow {
  /** The budget's id, reported when it blocks a call. */
  budgetId: string;
  /** The budget and its current period, e.g. budget_x:2026-11. */
  key: string;
  limitNano: bigint;
  /** When the period ends (epoch ms); the state may forget the window after it. */
  resetAt: number;
}

export type ReserveResult =
  | { ok: true }
  | {
      ok: false;
      budgetId: string;
      spentNano: bigint;
      reservedNano: bigint;
      limitNano: bigint;
      resetAt: number;
    };

export interface WindowUsage {
  spentNano: bigint;
  reservedNano: bigint;
}

/** A pair of token buckets, refilled continuously at their limit a minute: requests and tokens. */
export interface RateBucket {
  /** The bucket owner, e.g. a key id. */
  key: string;
  rpm: number | null;
  tpm: number | null;
}

export interface RateRequest extends RateBucket {
  /** Tokens this request is expected to use. */
  tokens: number;
  now: number;
}

export interface RateResult {
  ok: boolean;
  /** Which limit refused the call, when one did. */
  limited: 'requests' | 'tokens' | null;
  requests: { limit: number; remaining: number; resetMs: number } | null;
  tokens: { limit: number; remaining: number; resetMs: number } | null;
  /** When the call could succeed, if refused. */
  retryAfterMs: number;
}

/** A cap on calls in flight at once: a key's, or a scope's shared by its keys. */
export interface ParallelSlot {
  key: string;
  limit: number;
}

export type AcquireResult = { ok: true } | { ok: false; at: number; inFlight: number };

export interface SharedState {
  /** Reserves `amountNano` on every window, atomically: all of them, or none when any would pass
   * its limit (spent + reserved + amount > limit). With `opId`, a reservation made under it is
   * made once: the same call again (a client's resend after a lost reply) answers ok and changes
   * nothing. */
  reserve(windows: BudgetWindow[], amountNano: bigint, opId?: string): Promise<ReserveResult>;
  /** Releases a reservation and records what the call actually cost; returns each window's usage
   * before and after, so threshold crossings can be told. With `opId`, applied once (a repeat
   * answers the usage as it stands, before and after alike) for as long as the id is kept:
   * `keepIdMs`, ten minutes unless told (a batch's settlement may be sent again by a process that
   * takes over its watching days later). A process releases at most what it holds itself. */
  settle(
    windows: BudgetWindow[],
    reservedNano: bigint,
    actualNano: bigint,
    opId?: string,
    keepIdMs?: number,
  ): Promise<{ before: WindowUsage; after: WindowUsage }[]>;
  /** Holds again, in this process, a reservation a stopped process made (for a batch or a
   * background call whose watching it takes over): `amountNano` on every window, with no limit
   * weighed, since the call was let through when it was made. Not when the settlement
   * `settleOpId` has already been applied (the stopped process got that far); false then. Once
   * under `opId`. */
  holdAgain(windows: BudgetWindow[], amountNano: bigint, settleOpId: string, opId: string): Promise<boolean>;
  usage(window: BudgetWindow): Promise<WindowUsage>;
  /** Raises the window's spend to `spentNano` if it is lower (what the store holds for the period,
   * when the state may have lost or never seen it: a restart, a flushed Redis, a budget made
   * mid-period). Never lowers it, so it can be applied any number of times. */
  atLeast(window: BudgetWindow, spentNano: bigint): Promise<void>;
  /** Token buckets per key: requests per minute and tokens per minute. */
  rateLimit(req: RateRequest): Promise<RateResult>;
  /** Several buckets at once (a key's own, its team's...): a request and `tokens` are taken from
   * every one, or from none when any would go short. One result per bucket, in order; the first
   * that refused is not ok, and a later one is not tried (it reports its level, untouched). */
  rateLimitAll(buckets: RateBucket[], tokens: number, now: number): Promise<RateResult[]>;
  /** Takes a place among the calls in flight of every slot at once, or of none when one is full
   * (`at`: the first full one, and how many it holds). Each place taken is given back by
   * releaseSlots; the places of a process that died are given back once it is seen dead. */
  acquireSlots(slots: ParallelSlot[]): Promise<AcquireResult>;
  releaseSlots(keys: string[]): Promise<void>;
  /** How many calls are in flight under a slot. */
  slotsInFlight(key: string): Promise<number>;
  /** Where a bucket pair stands, taking nothing from it (a full pair for one not met yet). */
  rateStanding(bucket: RateBucket, now: number): Promise<RateResult>;
  /** True for the first caller of `key` (across replicas, for the shared one) until `untilMs`
   * has passed, false for every later one: a period's one-off events, such as a budget's
   * exhaustion alert. */
  once(key: string, untilMs: number): Promise<boolean>;
  /** Keeps `value` under `key` until `untilMs` (across replicas, for the shared one): which
   * provider holds a stored response, and whose it is. The in-process state keeps the latest
   * REMEMBERED_IN_PROCESS of them. */
  remember(key: string, value: string, untilMs: number): Promise<void>;
  /** What remember() kept under `key`, or null: never kept, forgotten, or past its time. */
  recall(key: string): Promise<string | null>;
  forget(key: string): Promise<void>;
  /** Corrects the token bucket once the real token count is known (positive: more were used). */
  adjustTokens(key: string, tpm: number, delta: number, now: number): Promise<void>;
  close(): Promise<void>;
}

/** How many remembered values the in-process state keeps: past it, the oldest go first. */
export const REMEMBERED_IN_PROCESS = 100_000;
