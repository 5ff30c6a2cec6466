import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type TestApp, testApp } from '../testing/test-app.js';

const call = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  type: 'llm.call',
  time: '2026-11-01T12:00:00Z',
  project: 'support',
  provider: 'openai',
  api: 'openai-chat',
  model: 'gpt-4o',
  usage: { prompt_tokens: 1000, completion_tokens: 100 },
  ...extra,
});

describe('POST /v1/events', () => {
  let t: TestApp;
  beforeEach(async () => {
    t = await testApp({ ingest: { max_batch: 1000, body_limit_bytes: 64 * 1024 } });
  });
  afterEach(async () => {
    await t.shutdown();
  });

  const post = (payload: unknown, headers: Record<string, string> = t.auth) =>
    t.app.inject({ method: 'POST', url: '/v1/events', headers, payload: payload as object });

  it('needs a valid key', async () => {
    const none = await post({ events: [] }, {});
    expect(none.statusCode).toBe(401);
    expect(none.json().error.code).toBe('unauthorized');
    const bad = await post({ events: [] }, { authorization: 'Bearer tk-nope' });
    expect(bad.statusCode).toBe(401);
  });

  it('keeps the good events, rejects the bad ones with index, code and message', async () => {
    const res = await post({
      events: [
        call('a'),
        { id: 'b', type: 'llm.call' },
        call('c'),
        'junk',
        { ...call('d'), time: 'yesterday' },
      ],
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.accepted).toBe(2);
    expect(body.rejected).toEqual([
      { index: 1, id: 'b', code: 'invalid_event', message: expect.stringMatching(/^time:/) },
      { index: 3, id: null, code: 'invalid_event', message: expect.stringMatching(/^event:/) },
      { index: 4, id: 'd', code: 'invalid_event', message: expect.stringMatching(/^time:/) },
    ]);
    expect((await t.store.counts('default')).calls).toBe(2);
  });

  it('keeps the good events of a batch whose raw usage holds counts no column takes', async () => {
    const res = await post({
      events: [
        call('ok-1'),
        call('half', { usage: { prompt_tokens: 10.5, completion_tokens: 1 } }),
        call('huge', { usage: { prompt_tokens: 3_000_000_000, completion_tokens: 1 } }),
        call('ok-2'),
      ],
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.accepted).toBe(2);
    expect(body.rejected).toEqual([
      {
        index: 1,
        id: 'half',
        code: 'invalid_event',
        message: expect.stringMatching(/prompt_tokens .* whole number .* \(got 10\.5\)/),
      },
      { index: 2, id: 'huge', code: 'invalid_event', message: expect.stringMatching(/\(got 3000000000\)/) },
    ]);
    expect(await t.store.getCall('default', 'ok-1')).not.toBeNull();
    expect(await t.store.getCall('default', 'ok-2')).not.toBeNull();
  });

  it('is idempotent by event id', async () => {
    const batch = { events: [call('x1'), call('x2'), call('x1')] };
    expect((await post(batch)).json()).toMatchObject({ accepted: 3, duplicates: 1 });
    expect((await post(batch)).json()).toMatchObject({ accepted: 3, duplicates: 3 });
    expect((await t.store.counts('default')).calls).toBe(2);
    const calls = await t.app.inject({ url: '/v1/calls', headers: t.auth });
    expect(calls.json().data).toHaveLength(2);
  });

  it('answers 400 to malformed JSON and a wrong envelope', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/events',
      headers: { ...t.auth, 'content-type': 'application/json' },
      payload: '{"events": [',
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({ code: 'invalid_json', hint: expect.any(String) });
    const wrong = await post({ event: [] });
    expect(wrong.statusCode).toBe(400);
    expect(wrong.json().error.code).toBe('invalid_request');
  });

  it('answers 413 to a body over the limit and to more than 1,000 events', async () => {
    const big = await post({ events: [call('a', { tags: { pad: 'x'.repeat(70 * 1024) } })] });
    expect(big.statusCode).toBe(413);
    expect(big.json().error.code).toBe('body_too_large');
    const t2 = await testApp();
    try {
      const many = await t2.app.inject({
        method: 'POST',
        url: '/v1/events',
        headers: t2.auth,
        payload: { events: Array.from({ length: 1001 }, (_, i) => ({ id: String(i) })) },
      });
      expect(many.statusCode).toBe(413);
      expect(many.json().error.code).toBe('batch_too_large');
      expect(many.json().error.message).toContain('the limit is 1000');
    } finally {
      await t2.shutdown();
    }
  });

  it('counts accepted and rejected events in /metrics', async () => {
    await post({ events: [call('m1'), { id: 'bad' }] });
    const m = await t.app.inject({ url: '/metrics' });
    expect(m.statusCode).toBe(200);
    expect(m.body).toMatch(/tally_ingest_events_accepted_total\{kind="call"\} 1/);
    expect(m.body).toMatch(/tally_ingest_events_rejected_total 1/);
    expect(m.body).toMatch(/tally_http_requests_total\{route="\/v1\/events",status="200"\} 1/);
    // The store's memory, read from DuckDB at the scrape.
    const used = /tally_store_memory_bytes\{kind="used"\} (\d+)/.exec(m.body);
    expect(Number(used?.[1])).toBeGreaterThan(0);
    expect(m.body).toMatch(/tally_store_memory_bytes\{kind="spilled"\} 0/);
  });
});
