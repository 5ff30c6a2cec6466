import type { Clock, GateEvidence, Pricer } from '@tally/core';
import type { RateLimitRule, SharedState } from '@tally/gateway';
import type { Store, UseCaseRecord } from '@tally/store';
import type { Authenticator } from './auth.js';
import type { AlertService, BudgetCache } from './budgets.js';
import type { Cached } from './cached.js';
import type { TallyConfig } from './config.js';
import type { RejectedCalls } from './metering-write.js';
import type { ServerMetrics } from './metrics.js';
import type { SecretBox } from './secrets.js';

/** What every route plugin is given. Built once by buildApp. */
export interface AppContext {
  config: TallyConfig;
  store: Store;
  clock: Clock;
  price: Pricer;
  priceVersion: string;
  auth: Authenticator;
  metrics: ServerMetrics;
  state: SharedState;
  budgets: BudgetCache;
  /** Each tenant's rate limits of scopes, kept for a few seconds: the gateway asks on every call.
   * Changes made through this server are seen at once (forget). */
  rateLimits: Cached<string, RateLimitRule[]>;
  alerts: AlertService;
  secrets: SecretBox;
  /** What the analytics say about a use case, for its stage gates. */
  gateEvidence: (useCase: UseCaseRecord) => Promise<GateEvidence>;
  /** The gateway's metering sink, once it is made. */
  metering?: MeteringState;
  /** Metered calls the store refused, set aside one by one. */
  rejectedCalls?: RejectedCalls;
  /** Why the gateway could not downgrade calls to a model, or null (see Gateway.downgradeProblem). */
  downgradeProblem?: (model: string, tenant: string) => string | null;
}

/** Where the gateway's metered calls stand on their way to the store. */
export interface MeteringState {
  /** Calls waiting in memory. */
  readonly pending: number;
  /** Calls kept on disk after failed writes. */
  readonly spooled: number;
  /** The size of those files, and their bound. */
  readonly spooledBytes: number;
  readonly spoolLimitBytes: number | null;
  /** Failed writes in a row. */
  readonly failing: number;
  /** Calls lost. */
  readonly dropped: number;
}
