import { type CallRecord, ZERO_TOKENS } from '@tally/core';

/** A metered call as a replica sends it, with the odd cases a wire must carry: a 64-bit amount,
 * a fraction of a millisecond, nulls. */
export function sampleCall(
  id = '01936b2e-0000-7000-8000-000000000001',
  over: Partial<CallRecord> = {},
): CallRecord {
  return {
    id,
    time: 1_764_633_600_000,
    tenant: 'default',
    project: 'support',
    team: null,
    user: 'u-1',
    use_case: 'triage',
    task_id: 'T-9',
    key_id: 'key_1',
    tags: { env: 'prod' },
    provider: 'openai',
    api: 'openai-chat',
    model_requested: 'gpt-4o',
    model_served: 'gpt-4o-2024-08-06',
    tokens: { ...ZERO_TOKENS, input: 20, output: 10 },
    cost_list_nano: 150_000n,
    cost_effective_nano: 2n ** 62n,
    pricing_status: 'priced',
    price_version: 'v1',
    latency_ms: 1.25,
    ttft_ms: null,
    status: 'ok',
    error_type: null,
    cache: 'miss',
    route_tier: null,
    fallback_hops: 0,
    saved_nano: 0n,
    request_id: null,
    ...over,
  };
}
