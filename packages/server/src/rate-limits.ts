import type { RateLimitRule } from '@tally/gateway';
import type { RateLimitRecord } from '@tally/store';

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
