import { describe, expect, it } from 'vitest';
import { testCatalog } from '../testing/catalog-fixture.js';
import { type ParseContext, parseEvent } from './parse-event.js';
import { FieldError } from './wire.js';

const cat = testCatalog();
const ctx: ParseContext = { tenant: 't1', price: (i) => cat.price(i) };
const base = { id: 'evt-1', time: '2026-11-01T12:00:00Z' };

function fieldOf(raw: unknown): string {
  try {
    parseEvent(raw, ctx);
  } catch (err) {
    if (err instanceof FieldError) return err.field;
    throw err;
  }
  throw new Error('expected a FieldError');
}

describe('parseEvent', () => {
  it('prices an llm.call from the raw usage and keeps its attribution', () => {
    const r = parseEvent(
      {
        ...base,
        type: 'llm.call',
        project: 'support',
        team: 'cx',
        user: 'u-17',
        use_case: 'triage',
        task_id: 'T-9',
        tags: { env: 'prod' },
        provider: 'openai',
        api: 'openai-chat',
        model: 'gpt-4o',
        usage: { prompt_tokens: 1000, completion_tokens: 100 },
        latency_ms: 850,
        status: 'ok',
        request_id: 'req-7',
      },
      ctx,
    );
    expect(r.kind).toBe('call');
    if (r.kind !== 'call') return;
    expect(r.record).toMatchObject({
      tenant: 't1',
      request_id: 'req-7',
      project: 'support',
      tags: { env: 'prod' },
      time: Date.parse(base.time),
      cost_list_nano: 3_500_000n,
      cost_effective_nano: 3_500_000n,
      pricing_status: 'priced',
      model_served: 'gpt-4o',
      latency_ms: 850,
    });
    expect(r.record.price_version).toBe(cat.version);
  });

  it('takes normalised tokens, and a billed cost as the effective cost', () => {
    const r = parseEvent(
      {
        ...base,
        type: 'llm.call',
        provider: 'anthropic',
        model: 'claude-sonnet-4-5',
        tokens: { input: 1000, cache_read: 400, output: 10 },
        cost_usd: '0.0012',
      },
      ctx,
    );
    if (r.kind !== 'call') throw new Error('call expected');
    // 600 × $3 + 400 × $0.30 + 10 × $15 per million = $0.00207 list.
    expect(r.record.cost_list_nano).toBe(2_070_000n);
    expect(r.record.cost_effective_nano).toBe(1_200_000n);
  });

  it("prices the hosted tool calls a call's usage does not count", () => {
    const call = (tool_calls: unknown) =>
      parseEvent(
        {
          ...base,
          type: 'llm.call',
          provider: 'openai',
          api: 'openai-responses',
          model: 'gpt-4.1',
          usage: { input_tokens: 328, output_tokens: 356 },
          tool_calls,
        },
        ctx,
      );
    // 328 × $2 + 356 × $8 per million, two web searches at $10 a thousand, a file search at $2.50.
    const r = call({ web_searches: 2, file_searches: 1 });
    if (r.kind !== 'call') throw new Error('call expected');
    expect(r.record).toMatchObject({
      cost_list_nano: 26_004_000n,
      tokens: { web_searches: 2, file_searches: 1 },
    });
    // A code interpreter container session adds $0.03.
    const code = call({ code_containers: 1 });
    if (code.kind !== 'call') throw new Error('call expected');
    expect(code.record).toMatchObject({ cost_list_nano: 33_504_000n, tokens: { code_containers: 1 } });
    const none = call(undefined);
    if (none.kind !== 'call') throw new Error('call expected');
    expect(none.record.cost_list_nano).toBe(3_504_000n);
    for (const [bad, field] of [
      [[2], 'tool_calls'],
      [{ code_interpreter: 1 }, 'tool_calls.code_interpreter'],
      [{ web_searches: -1 }, 'tool_calls.web_searches'],
      [{ file_searches: 1.5 }, 'tool_calls.file_searches'],
    ] as const) {
      expect(() => call(bad)).toThrow(expect.objectContaining({ field }));
    }
  });

  it('records an unknown model as unpriced with null cost, never $0', () => {
    const r = parseEvent(
      {
        ...base,
        type: 'llm.call',
        provider: 'openai',
        api: 'openai-chat',
        model: 'mystery',
        usage: { prompt_tokens: 5 },
      },
      ctx,
    );
    if (r.kind !== 'call') throw new Error('call expected');
    expect(r.record).toMatchObject({
      pricing_status: 'unpriced',
      cost_list_nano: null,
      cost_effective_nano: null,
    });
    expect(r.record.tokens.input).toBe(5);
  });

  it('parses each task event type', () => {
    const t = (extra: Record<string, unknown>) =>
      parseEvent({ ...base, use_case: 'triage', task_id: 'T-9', ...extra }, ctx);
    expect(t({ type: 'task.eligible', arm: 'ai', covariate: 312.5 }).record).toMatchObject({
      arm: 'ai',
      covariate: 312.5,
    });
    expect(t({ type: 'task.ai_used', call_ids: ['c1', 'c2'] }).record).toMatchObject({
      call_ids: ['c1', 'c2'],
    });
    expect(
      t({ type: 'task.completed', outcome: 'success', handling_seconds: 240, value_usd: '12.50' }).record,
    ).toMatchObject({ outcome: 'success', handling_seconds: 240, value_nano: 12_500_000_000n });
    expect(t({ type: 'task.human', kind: 'edit', seconds: 45 }).record).toMatchObject({
      kind: 'edit',
      seconds: 45,
    });
    expect(t({ type: 'task.quality', pass: true, score: 0.92, reviewer: 'qa-1' }).record).toMatchObject({
      pass: true,
      score: 0.92,
    });
    expect(t({ type: 'task.opt_out', reason: 'too slow' }).record).toMatchObject({ reason: 'too slow' });
  });

  it('names the field at fault', () => {
    expect(fieldOf(null)).toBe('event');
    expect(fieldOf({ ...base, type: 'nope' })).toBe('type');
    expect(fieldOf({ type: 'task.opt_out', time: base.time, use_case: 'u', task_id: 't' })).toBe('id');
    expect(fieldOf({ ...base, type: 'task.opt_out', time: '1 Nov', use_case: 'u', task_id: 't' })).toBe(
      'time',
    );
    expect(fieldOf({ ...base, type: 'task.eligible', use_case: 'u', task_id: 't', arm: 'both' })).toBe('arm');
    expect(
      fieldOf({
        ...base,
        type: 'task.completed',
        use_case: 'u',
        task_id: 't',
        outcome: 'success',
        value_usd: 12,
      }),
    ).toBe('value_usd');
    expect(fieldOf({ ...base, type: 'task.human', use_case: 'u', task_id: 't', kind: 'edit' })).toBe(
      'seconds',
    );
    expect(fieldOf({ ...base, type: 'task.quality', use_case: 'u', task_id: 't' })).toBe('pass');
    expect(fieldOf({ ...base, type: 'llm.call', provider: 'openai', model: 'gpt-4o' })).toBe('usage');
    expect(
      fieldOf({ ...base, type: 'llm.call', provider: 'openai', model: 'gpt-4o', tokens: {}, request_id: 7 }),
    ).toBe('request_id');
    expect(
      fieldOf({
        ...base,
        type: 'llm.call',
        provider: 'openai',
        model: 'gpt-4o',
        api: 'openai-chat',
        usage: { prompt_tokens: 'x' },
      }),
    ).toBe('usage');
    expect(
      fieldOf({ ...base, type: 'llm.call', provider: 'openai', model: 'm', tokens: { input: -1 } }),
    ).toBe('tokens.input');
    expect(
      fieldOf({ ...base, type: 'llm.call', provider: 'openai', model: 'm', tokens: {}, tags: { a: 1 } }),
    ).toBe('tags.a');
    expect(
      fieldOf({ ...base, type: 'llm.call', provider: 'openai', model: 'm', tokens: {}, cost_usd: 'abc' }),
    ).toBe('cost_usd');
  });
});
