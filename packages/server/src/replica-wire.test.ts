import { ZERO_TOKENS } from '@tally/core';
import { describe, expect, it } from 'vitest';
import { callFromWire, callToWire } from './replica-wire.js';

const call = callToWire({
  id: '01936b2e-0000-7000-8000-000000000001',
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
});

const ODD: unknown[] = [
  null,
  '',
  'x',
  'x'.repeat(1025),
  -1,
  0,
  1.5,
  2 ** 53,
  '12',
  '-3',
  '1e3',
  {},
  [],
  true,
];

describe('metered calls from the wire', () => {
  it('reads a call by hand exactly as the schema does, for every field and every odd value', () => {
    const wire = JSON.parse(JSON.stringify(call)) as Record<string, unknown>;
    const cases: unknown[] = [wire, null, [], 'call', { ...wire, extra: 1 }];
    for (const k of Object.keys(wire)) {
      const { [k]: _, ...missing } = wire;
      cases.push(missing);
      for (const v of ODD) cases.push({ ...wire, [k]: v });
    }
    const tokens = wire['tokens'] as Record<string, unknown>;
    cases.push({ ...wire, tokens: { ...tokens, extra: 1 } });
    cases.push({ ...wire, tokens: { ...tokens, input: -1 } });
    cases.push({ ...wire, tags: { a: 1 } });
    let accepted = 0;
    for (const c of cases) {
      const fast = callFromWire(c);
      expect(fast, JSON.stringify(c)).toEqual(callFromWire(c, true));
      if (typeof fast !== 'string') accepted++;
    }
    // The valid call, and the odd values some fields allow (null where nullable, and so on).
    expect(accepted).toBeGreaterThan(10);
    expect(accepted).toBeLessThan(cases.length / 2);
  });
});
