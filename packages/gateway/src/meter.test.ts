import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Catalog, type CatalogData } from '@tally/core';
import { describe, expect, it } from 'vitest';
import { type AttemptContext, type AttemptOutcome, meterAttempt } from './meter.js';
import type { GatewayDeps } from './types.js';

const catalog = new Catalog(
  JSON.parse(
    readFileSync(createRequire(import.meta.url).resolve('@tally/core/catalog.json'), 'utf8'),
  ) as CatalogData,
);
/** Metering reads only the pricer and the catalog's version from the gateway's dependencies. */
const deps = { price: (i) => catalog.price(i), priceVersion: catalog.version } as Pick<
  GatewayDeps,
  'price' | 'priceVersion'
> as GatewayDeps;

/** A call no project, team or user is named for. */
const unnamed = { project: null, team: null, user: null };
const ctx: AttemptContext = {
  id: 'call_1',
  requestId: 'call_1',
  time: Date.parse('2026-08-01T00:00:00Z'),
  key: { id: 'key_1', tenant: 'acme', ...unnamed, models: [], tags: {}, rpm: null, tpm: null },
  attribution: { ...unnamed, use_case: null, task_id: null, tags: {} },
  priceProvider: 'openai',
  upstreamApi: 'openai-chat',
  modelRequested: 'gpt-4o',
  modelSent: 'gpt-4o',
  fallbackHops: 0,
  routeTier: null,
};

const answer = (usage: Record<string, unknown>, serviceTier: string | null): AttemptOutcome => ({
  status: 'ok',
  errorType: null,
  usage,
  estimated: null,
  modelServed: 'gpt-4o-2024-08-06',
  serviceTier,
  latencyMs: 120,
  ttftMs: null,
});

describe('meterAttempt', () => {
  const usage = {
    prompt_tokens: 10_000,
    completion_tokens: 500,
    prompt_tokens_details: { cached_tokens: 4000 },
  };

  it('prices a call at the service tier its answer names', () => {
    expect(meterAttempt(deps, ctx, answer(usage, 'priority'))).toMatchObject({
      cost_list_nano: 42_500_000n,
      pricing_status: 'priced',
    });
    expect(meterAttempt(deps, ctx, answer(usage, 'default'))).toMatchObject({ cost_list_nano: 25_000_000n });
  });

  it('stores a usage with an impossible count unpriced, with zero tokens and the reason', () => {
    const rec = meterAttempt(deps, ctx, answer({ ...usage, completion_tokens: 1e300 }, null));
    expect(rec).toMatchObject({
      pricing_status: 'unpriced',
      cost_list_nano: null,
      cost_effective_nano: null,
      tokens: { input: 0, output: 0 },
      error_type: expect.stringMatching(/^usage_unreadable: usage\.completion_tokens must be a non-negative/),
    });
  });
});
