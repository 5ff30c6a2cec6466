import { randomUUID } from 'node:crypto';
import type { SharedState } from '@tally/gateway';
import { MockUpstream } from '@tally/gateway/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postMessage, SHARED_STATES, type TestApp, testApp } from '../testing/test-app.js';

describe.each(SHARED_STATES)('rate limits of a scope (%s state)', (_name, makeState) => {
  const mock = new MockUpstream();
  let t: TestApp;
  let base: string;
  let state: SharedState;

  beforeAll(async () => {
    await mock.start();
    state = makeState();
    t = await testApp(
      {
        gateway: {
          providers: [
            { id: 'anthropic', kind: 'anthropic', base_url: mock.url },
            { id: 'openai', kind: 'openai', base_url: `${mock.url}/v1` },
          ],
        },
      },
      undefined,
      state,
    );
    base = await t.listen();
  });
  afterAll(async () => {
    await t?.shutdown();
    await state.close();
    await mock.stop();
  });

  const create = (payload: Record<string, unknown>, headers = t.auth) =>
    t.app.inject({ method: 'POST', url: '/v1/rate-limits', headers, payload });
  const call = async (
    key: string,
    extra: Record<string, unknown> = {},
    headers: Record<string, string> = {},
  ) => {
    const res = await postMessage(base, key, extra, headers);
    const body = (await res.body.json()) as { error?: { type: string; code: string; message: string } };
    return { status: res.statusCode, headers: res.headers, body };
  };

  it("holds a team's calls to its requests a minute, whichever of its keys makes them", async () => {
    const team = `cx-${randomUUID().slice(0, 6)}`;
    const made = await create({ id: `rl-${team}`, scope: 'team', subject: team, rpm: 3 });
    expect(made.statusCode).toBe(201);
    expect(made.json()).toMatchObject({ id: `rl-${team}`, scope: 'team', subject: team, rpm: 3, tpm: null });
    const a = await t.newKey({ project: 'p', team, rpm: 10 });
    const b = await t.newKey({ project: 'p', team });
    const other = await t.newKey({ project: 'p', team: `${team}-other` });

    const first = await call(a.key);
    expect(first.status).toBe(200);
    // Two limits hold the call: the answer's headers give the tighter, the team's.
    expect(first.headers['x-ratelimit-limit-requests']).toBe('3');
    expect(first.headers['x-ratelimit-remaining-requests']).toBe('2');
    expect((await call(b.key)).status).toBe(200);
    const third = await call(a.key);
    expect(third.status).toBe(200);
    expect(third.headers['x-ratelimit-remaining-requests']).toBe('0');

    const refused = await call(b.key);
    expect(refused.status).toBe(429);
    expect(refused.headers['retry-after']).toBe('20');
    expect(refused.headers['x-tally-rate-limit']).toBe(`rl-${team}`);
    expect(refused.body.error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit_exceeded' });
    expect(refused.body.error?.message).toContain(
      `rate limit rl-${team} (team ${team}) on requests per min: limit 3`,
    );
    // Another team's key goes on.
    expect((await call(other.key)).status).toBe(200);

    // The refusal is a call of the team's, and the key a's own limit lost nothing to it.
    await t.gateway.flush();
    const id = refused.headers['x-tally-call-id'] as string;
    const rec = (await t.app.inject({ url: `/v1/calls/${id}`, headers: t.auth })).json();
    expect(rec).toMatchObject({ status: 'refused', error_type: 'rate_limit_exceeded', team, key_id: b.id });

    // Where the limit stands, for the admin and for a key it holds.
    const list = (await t.app.inject({ url: '/v1/rate-limits', headers: t.auth })).json().data;
    expect(list.find((r: { id: string }) => r.id === `rl-${team}`)).toMatchObject({
      remaining_requests: 0,
      remaining_tokens: null,
    });
    const own = (
      await t.app.inject({ url: '/v1/key', headers: { authorization: `Bearer ${b.key}` } })
    ).json();
    expect(own.rate_limits).toEqual([
      expect.objectContaining({ id: `rl-${team}`, rpm: 3, remaining_requests: 0 }),
    ]);
    const notHeld = (
      await t.app.inject({ url: '/v1/key', headers: { authorization: `Bearer ${other.key}` } })
    ).json();
    expect(notHeld.rate_limits).toEqual([]);

    // Deleted, it holds nothing.
    const del = await t.app.inject({ method: 'DELETE', url: `/v1/rate-limits/rl-${team}`, headers: t.auth });
    expect(del.json()).toEqual({ id: `rl-${team}`, deleted: true });
    expect((await call(b.key)).status).toBe(200);
    const again = await t.app.inject({
      method: 'DELETE',
      url: `/v1/rate-limits/rl-${team}`,
      headers: t.auth,
    });
    expect(again.statusCode).toBe(404);
  });

  it("holds a tag's calls to some models only", async () => {
    const feature = `summarize-${randomUUID().slice(0, 6)}`;
    expect(
      (await create({ scope: 'tag', subject: `feature=${feature}`, models: ['claude-opus-*'], rpm: 1 }))
        .statusCode,
    ).toBe(201);
    const k = await t.newKey({ project: 'p' });
    const tagged = { 'x-tally-tags': `feature=${feature}` };
    const opus = { model: 'claude-opus-4-1' };
    expect((await call(k.key, opus, tagged)).status).toBe(200);
    const refused = await call(k.key, opus, tagged);
    expect(refused.status).toBe(429);
    expect(refused.body.error?.message).toContain(`(tag feature=${feature})`);
    // Another model, or the same model without the tag, is not held.
    expect((await call(k.key, {}, tagged)).status).toBe(200);
    expect((await call(k.key, opus)).status).toBe(200);
    // A key whose own tags carry it is held as the header's calls are.
    const taggedKey = await t.newKey({ project: 'p', tags: { feature } });
    expect((await call(taggedKey.key, opus)).status).toBe(429);
  });

  it('holds tokens a minute across keys, counted at what each call used', async () => {
    const project = `p-${randomUUID().slice(0, 6)}`;
    expect((await create({ scope: 'project', subject: project, tpm: 10_000 })).statusCode).toBe(201);
    const a = await t.newKey({ project });
    const b = await t.newKey({ project });
    // A call is held at its prompt and its most output (about 2,008 tokens) until it ends, then
    // counted at what it used: the mock's answer says 4,398 (3,895 in, 503 out).
    const first = await call(a.key, { max_tokens: 2000 });
    expect(first.status).toBe(200);
    expect(first.headers['x-ratelimit-limit-tokens']).toBe('10000');
    expect(Number(first.headers['x-ratelimit-remaining-tokens'])).toBeGreaterThan(7900);
    const second = await call(b.key, { max_tokens: 2000 });
    expect(second.status).toBe(200);
    // 10,000 - 4,398 - 2,008 held: what the first used is counted, not what it was held at.
    expect(Number(second.headers['x-ratelimit-remaining-tokens'])).toBeLessThan(3600);
    // Two calls have used 8,796: the third cannot hold its 2,008.
    const third = await call(a.key, { max_tokens: 2000 });
    expect(third.status).toBe(429);
    expect(third.body.error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit_exceeded' });
    expect(third.body.error?.message).toContain(`(project ${project}) on tokens per min: limit 10000`);
    // A call that asks for less output fits in what is left.
    expect((await call(b.key, { max_tokens: 100 })).status).toBe(200);
  });

  it('lets one of two calls at once hold tokens the two cannot both have', async () => {
    const project = `p-${randomUUID().slice(0, 6)}`;
    expect((await create({ scope: 'project', subject: project, tpm: 3000 })).statusCode).toBe(201);
    const a = await t.newKey({ project });
    const b = await t.newKey({ project });
    const both = await Promise.all([call(a.key, { max_tokens: 2000 }), call(b.key, { max_tokens: 2000 })]);
    expect(both.map((r) => r.status).sort()).toEqual([200, 429]);
  });

  it("holds calls in flight to a key's max_parallel and to its team's, and gives the places back", async () => {
    const team = `par-${randomUUID().slice(0, 6)}`;
    const made = await create({ id: `rl-${team}`, scope: 'team', subject: team, max_parallel: 3 });
    expect(made.json()).toMatchObject({ rpm: null, tpm: null, max_parallel: 3 });
    const a = await t.newKey({ project: 'p', team, max_parallel: 2 });
    const b = await t.newKey({ project: 'p', team });
    // A stream of about a second, open until read to its end.
    const open = async (key: string) => {
      const res = await postMessage(base, key, { model: 'openai/fault-slow', stream: true });
      expect(res.statusCode).toBe(200);
      return res;
    };
    const streams = [await open(a.key), await open(a.key)];
    // The key's own cap: two at once.
    const own = await call(a.key);
    expect(own.status).toBe(429);
    expect(own.headers['retry-after']).toBe('1');
    expect(own.headers['x-tally-rate-limit']).toBeUndefined();
    expect(own.body.error).toMatchObject({ type: 'rate_limit_error', code: 'parallel_limit_exceeded' });
    expect(own.body.error?.message).toContain(`Too many calls in flight for key ${a.id}: 2 of 2 at once`);
    // The team's: three at once, whichever key.
    streams.push(await open(b.key));
    const team4 = await call(b.key);
    expect(team4.status).toBe(429);
    expect(team4.headers['x-tally-rate-limit']).toBe(`rl-${team}`);
    expect(team4.body.error?.message).toContain(`rate limit rl-${team} (team ${team}): 3 of 3 at once`);
    const standing = async () =>
      (await t.app.inject({ url: '/v1/rate-limits', headers: t.auth }))
        .json()
        .data.find((r: { id: string }) => r.id === `rl-${team}`);
    expect(await standing()).toMatchObject({ max_parallel: 3, in_flight: 3, remaining_requests: null });
    // Refused calls hold no place; once the streams end, theirs are given back.
    for (const s of streams) await s.body.text();
    await expect.poll(async () => (await standing()).in_flight).toBe(0);
    expect((await call(b.key)).status).toBe(200);
    expect((await call(a.key)).status).toBe(200);
    await t.gateway.flush();
    const id = team4.headers['x-tally-call-id'] as string;
    const rec = (await t.app.inject({ url: `/v1/calls/${id}`, headers: t.auth })).json();
    expect(rec).toMatchObject({ status: 'refused', error_type: 'parallel_limit_exceeded', team });
    // A key's cap is shown and changed like its other limits.
    const key = (
      await t.app.inject({ url: '/v1/key', headers: { authorization: `Bearer ${a.key}` } })
    ).json();
    expect(key).toMatchObject({ max_parallel: 2 });
    const patched = await t.app.inject({
      method: 'PATCH',
      url: `/v1/keys/${a.id}`,
      headers: t.auth,
      payload: { max_parallel: null },
    });
    expect(patched.json()).toMatchObject({ max_parallel: null });
  });

  it('refuses a rate limit it cannot hold, with a code', async () => {
    const bad = async (payload: Record<string, unknown>) => {
      const r = await create(payload);
      expect(r.statusCode).toBe(400);
      return r.json().error.message as string;
    };
    expect(await bad({ scope: 'team', subject: 'cx' })).toContain('needs rpm, tpm, max_parallel or several');
    expect(await bad({ scope: 'team', subject: 'cx', rpm: 0 })).toContain('rpm must be a positive integer');
    expect(await bad({ scope: 'team', subject: 'cx', tpm: 1.5 })).toContain('tpm must be a positive integer');
    expect(await bad({ scope: 'team', subject: 'cx', max_parallel: -1 })).toContain(
      'max_parallel must be a positive integer',
    );
    expect(await bad({ scope: 'team', rpm: 5 })).toContain('subject is required');
    expect(await bad({ scope: 'tag', subject: 'summarize', rpm: 5 })).toContain('name=value');
    expect(await bad({ scope: 'org', subject: 'x', rpm: 5 })).toContain('scope must be one of');
    expect(await bad({ scope: 'team', subject: 'cx', rpm: 5, burst: 2 })).toContain('burst');
    expect(await bad({ scope: 'team', subject: 'cx', rpm: 5, models: 'gpt-4o' })).toContain('models');
    // Only an admin makes them; a virtual key cannot.
    const k = await t.newKey({ project: 'p' });
    const denied = await create(
      { scope: 'team', subject: 'cx', rpm: 5 },
      { authorization: `Bearer ${k.key}` },
    );
    expect(denied.statusCode).toBe(403);
  });
});
