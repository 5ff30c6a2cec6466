import { describe, expect, it } from 'vitest';
import { requestOptions, withFallbacks, withTries } from './request-options.js';
import type { Attempt } from './router.js';

const p = { id: 'p', kind: 'openai', base_url: 'http://127.0.0.1:9/v1' } as Attempt['provider'];
const q = { id: 'q', kind: 'openai', base_url: 'http://127.0.0.1:9/v1' } as Attempt['provider'];
const valid = (m: string) => m.length <= 256;

describe("a request's own routing headers", () => {
  it('asks nothing without them', () => {
    expect(requestOptions({ 'x-tally-project': 'p' }, valid)).toBeNull();
  });

  it('reads retries, a timeout and fallbacks', () => {
    expect(
      requestOptions(
        { 'x-tally-retries': ' 2 ', 'x-tally-timeout-ms': '30000', 'x-tally-fallbacks': 'a, q/b ,' },
        valid,
      ),
    ).toEqual({ retries: 2, timeoutMs: 30000, fallbacks: ['a', 'q/b'] });
    expect(requestOptions({ 'x-tally-retries': '0' }, valid)).toEqual({ retries: 0 });
  });

  it('refuses a value out of range, or not a whole number, naming the header', () => {
    for (const [name, value] of [
      ['x-tally-retries', '-1'],
      ['x-tally-retries', '1e1'],
      ['x-tally-timeout-ms', '3600001'],
      ['x-tally-timeout-ms', ''],
      ['x-tally-fallbacks', 'x'.repeat(300)],
    ] as const) {
      const got = requestOptions({ [name]: value }, valid);
      expect(got, `${name}: ${value}`).toMatchObject({ status: 400, code: 'invalid_header' });
      expect((got as { message: string }).message).toContain(name);
    }
  });
});

describe("a plan with a request's own fallbacks", () => {
  const own: Attempt = { provider: p, model: 'a', tier: 'primary' };
  const routeFallback: Attempt = { provider: q, model: 'b', tier: 'fallback' };
  const long: Attempt = { provider: q, model: 'long', tier: 'context_fallback' };

  it("puts them after the plan's own and before its stand-ins, each upstream and model once", () => {
    const plan = withFallbacks(
      [own, routeFallback, long],
      [
        [{ provider: q, model: 'b', tier: 'primary' }],
        [
          { provider: p, model: 'c', tier: 'primary' },
          { provider: q, model: 'c', tier: 'primary' },
          { provider: q, model: 'longer', tier: 'context_fallback' },
        ],
      ],
    );
    expect(plan.map((a) => [a.provider.id, a.model, a.tier])).toEqual([
      ['p', 'a', 'primary'],
      ['q', 'b', 'fallback'],
      ['p', 'c', 'fallback'],
      ['q', 'c', 'fallback'],
      ['q', 'long', 'context_fallback'],
    ]);
  });

  it("sets the request's retries and timeout on every attempt, leaving the plan as it was", () => {
    const plan = [own, { ...routeFallback, retries: 3 }];
    expect(withTries(plan, {})).toBe(plan);
    const tried = withTries(plan, { retries: 0, timeoutMs: 500 });
    expect(tried.map((a) => [a.retries, a.timeoutMs])).toEqual([
      [0, 500],
      [0, 500],
    ]);
    expect(plan[1]!.retries).toBe(3);
    expect(withTries(plan, { timeoutMs: 500 })[1]!.retries).toBe(3);
  });
});
