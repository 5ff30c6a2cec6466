import type { RateLimitRule } from '@tally/gateway';
import type { RateLimitRecord, Store } from '@tally/store';

export function toRateRule(r: RateLimitRecord): RateLimitRule {
  return {
    tenant: r.tenant,
    id: r.id,
    scope: r.scope,
    subject: r.subject,
    models: r.models,
    rpm: r.rpm,
    tpm: r.tpm,
    maxParallel: r.max_parallel,
  };
}

/** The rate limits of each tenant, read from the store and kept for a few seconds; the gateway
 * asks on every call. Changes made through this server are seen at once. */
export class RateLimitCache {
  private readonly byTenant = new Map<string, { rules: RateLimitRule[]; at: number }>();
  private readonly loading = new Map<string, Promise<RateLimitRule[]>>();

  constructor(
    private readonly store: Store,
    private readonly now: () => number,
    private readonly ttlMs = 2000,
  ) {}

  /** The rules as last read, with no promise, while they are fresh; else null (see rules). */
  fresh(tenant: string): RateLimitRule[] | null {
    const hit = this.byTenant.get(tenant);
    return hit && this.now() - hit.at < this.ttlMs ? hit.rules : null;
  }

  async rules(tenant: string): Promise<RateLimitRule[]> {
    const hit = this.fresh(tenant);
    if (hit) return hit;
    let loading = this.loading.get(tenant);
    if (!loading) {
      const generation = this.generation;
      loading = this.store.listRateLimits(tenant).then((list) => list.map(toRateRule));
      const done = loading;
      this.loading.set(tenant, done);
      done.then(
        (rules) => {
          // A read begun before a change is not kept as the rules after it.
          if (generation === this.generation) this.byTenant.set(tenant, { rules, at: this.now() });
          if (this.loading.get(tenant) === done) this.loading.delete(tenant);
        },
        () => {
          if (this.loading.get(tenant) === done) this.loading.delete(tenant);
        },
      );
    }
    return loading;
  }

  private generation = 0;

  invalidate(tenant: string): void {
    this.generation++;
    this.byTenant.delete(tenant);
    this.loading.delete(tenant);
  }
}
