import { describe, expect, it } from 'vitest';
import { tryAgain } from './forward.js';
import type { Attempt } from './router.js';
import type { GatewayConfig } from './types.js';
import { standInFor } from './upstream-answer.js';

const provider = { id: 'p', kind: 'openai', base_url: 'http://127.0.0.1:9/v1' } as Attempt['provider'];
const a: Attempt = { provider, model: 'a', tier: 'primary' };
const b: Attempt = { provider, model: 'b', tier: 'fallback' };
const config = {
  providers: [],
  routes: [],
  timeout_ms: 1000,
  retry_backoff_ms: 100,
  retry_max_wait_ms: 5000,
} as GatewayConfig;

describe('trying an upstream again', () => {
  it('puts the attempt again right after itself, before the rest of the plan', () => {
    const plan = [a, b];
    expect(tryAgain(plan, 0, null, config).queue).toEqual([a, a, b]);
    expect(plan).toEqual([a, b]);
  });

  it('waits half the backoff to the whole, doubled for each try before', () => {
    const waits = (tries: number) =>
      [0, 1].map((r) => tryAgain([a], 0, new Map([[a, tries]]), config, undefined, () => r).wait);
    expect(waits(0)).toEqual([50, 100]);
    expect(waits(2)).toEqual([200, 400]);
    // Never past retry_max_wait_ms.
    expect(waits(10)).toEqual([5000, 5000]);
  });

  it("waits what the upstream's retry-after asks, if longer, up to retry_max_wait_ms", () => {
    const wait = (headers: Record<string, string>) => tryAgain([a], 0, null, config, headers, () => 0).wait;
    expect(wait({ 'retry-after': '2' })).toBe(2000);
    expect(wait({ 'retry-after-ms': '750.5', 'retry-after': '2' })).toBe(750.5);
    expect(wait({ 'retry-after': '60' })).toBe(5000);
    expect(wait({ 'retry-after': new Date(Date.now() + 3000).toUTCString() })).toBeGreaterThan(1000);
    // Shorter than the backoff, or not a wait at all: the backoff.
    expect(wait({ 'retry-after': '0' })).toBe(50);
    expect(wait({ 'retry-after': 'soon' })).toBe(50);
  });
});

describe('the stand-in an error answer calls for', () => {
  const error = (e: Record<string, unknown>, status = 400) => standInFor(status, { error: e });
  it('takes a prompt too long for the model, in each provider’s words', () => {
    expect(error({ code: 'context_length_exceeded', message: '' })).toBe('context_fallback');
    // Anthropic's, vLLM's and Gemini's (OpenAI-compatible) messages.
    for (const message of [
      'prompt is too long: 208310 tokens > 200000 maximum',
      'input length and `max_tokens` exceed context limit: 195000 + 8192 > 200000',
      "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.",
      'The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).',
    ])
      expect(error({ type: 'invalid_request_error', message }), message).toBe('context_fallback');
  });

  it("takes a content filter's refusal", () => {
    expect(error({ code: 'content_filter', message: 'The response was filtered' })).toBe('policy_fallback');
    expect(error({ code: null, innererror: { code: 'ResponsibleAIPolicyViolation' } })).toBe(
      'policy_fallback',
    );
    expect(error({ code: 'content_policy_violation', message: 'Your request was rejected' })).toBe(
      'policy_fallback',
    );
  });

  it('calls for none on any other error, or any other status', () => {
    expect(error({ code: 'invalid_api_key', message: 'Incorrect API key' })).toBeNull();
    expect(error({ type: 'invalid_request_error', message: 'messages: field required' })).toBeNull();
    expect(error({ code: 'context_length_exceeded' }, 429)).toBeNull();
    expect(standInFor(400, null)).toBeNull();
  });
});
