import { MockUpstream, SKIP_WITHOUT_RECORDINGS } from '@tally/gateway/testing';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { foreignKey, type TestApp, testApp } from '../testing/test-app.js';

describe.skipIf(SKIP_WITHOUT_RECORDINGS)('providers added through the API', () => {
  const mock = new MockUpstream();
  let t: TestApp;
  let base: string;
  let key: string;

  beforeAll(async () => {
    await mock.start();
    t = await testApp();
    base = await t.listen();
    key = (await t.app.inject({ method: 'POST', url: '/v1/keys', headers: t.auth, payload: {} })).json().key;
  });
  afterAll(async () => {
    await t?.shutdown();
    await mock.stop();
  });

  const chat = (model: string) =>
    request(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Hello' }] }),
    });

  it('stores the secret encrypted, never shows it, and the gateway uses it at once', async () => {
    const made = await t.app.inject({
      method: 'POST',
      url: '/v1/providers',
      headers: t.auth,
      payload: {
        id: 'vllm',
        kind: 'openai-compatible',
        base_url: `${mock.url}/v1`,
        api_key: 'sk-secret-123',
        price_provider: 'openai',
      },
    });
    expect(made.statusCode).toBe(201);
    expect(made.body).not.toContain('sk-secret-123');
    expect(made.json()).toMatchObject({ id: 'vllm', has_key: true, price_provider: 'openai' });

    const [stored] = (await t.store.listProviders()).filter((p) => p.id === 'vllm');
    expect(stored!.secret_enc).toBeTruthy();
    expect(stored!.secret_enc).not.toContain('sk-secret-123');
    expect(t.ctx.secrets.decrypt(stored!.secret_enc!)).toBe('sk-secret-123');

    const res = await chat('vllm/gpt-4o');
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    expect(mock.received.at(-1)!.headers.authorization).toBe('Bearer sk-secret-123');
    expect(mock.received.at(-1)!.body['model']).toBe('gpt-4o');

    // Another tenant's key cannot reach it.
    const other = await foreignKey(t.store);
    const before = mock.received.length;
    const denied = await request(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${other}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'vllm/gpt-4o', messages: [{ role: 'user', content: 'Hello' }] }),
    });
    expect(denied.statusCode).toBe(404);
    await denied.body.dump();
    expect(mock.received.length).toBe(before);

    const listed = await t.app.inject({ url: '/v1/providers', headers: t.auth });
    expect(listed.body).not.toContain('sk-secret-123');
    expect(
      (await t.app.inject({ method: 'DELETE', url: '/v1/providers/vllm', headers: t.auth })).statusCode,
    ).toBe(200);
    const gone = await chat('vllm/gpt-4o');
    expect(gone.statusCode).toBe(404);
    await gone.body.dump();
  });

  it('rejects a provider that is not valid, naming the field', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/providers',
      headers: t.auth,
      payload: { id: 'Bad Id', kind: 'carrier-pigeon', base_url: 'nope' },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toMatch(/id:.*kind:.*base_url:/);
  });

  it('refuses a key that could not go in a header, and a base URL with a user name or password', async () => {
    const post = (payload: Record<string, unknown>) =>
      t.app.inject({
        method: 'POST',
        url: '/v1/providers',
        headers: t.auth,
        payload: { id: 'p1', kind: 'openai-compatible', base_url: 'https://llm.example/v1', ...payload },
      });
    for (const api_key of ['sk-abc\r\nx-evil: 1', 'sk-abc\n', 'sk-clé', 'sk abc']) {
      const res = await post({ api_key });
      expect(res.statusCode, JSON.stringify(api_key)).toBe(400);
      expect(res.json().error).toMatchObject({
        code: 'invalid_request',
        message: expect.stringContaining('api_key: must be the key alone: printable ASCII'),
      });
    }
    for (const base_url of ['https://me:hunter2@llm.example/v1', 'https://token@llm.example/v1']) {
      const res = await post({ base_url, api_key: 'sk-abc' });
      expect(res.statusCode, base_url).toBe(400);
      expect(res.json().error.message).toMatch(/base_url: must not hold a user name or password/);
      expect(res.body).not.toContain('hunter2');
    }
    const listed = await t.app.inject({ url: '/v1/providers', headers: t.auth });
    expect(listed.json().data.map((p: { id: string }) => p.id)).not.toContain('p1');
  });
});
