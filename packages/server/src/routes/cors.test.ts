import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MockUpstream } from '@tally/gateway/testing';
import { type Browser, chromium } from 'playwright-core';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../config.js';
import { type TestApp, testApp } from '../testing/test-app.js';

const CHROMIUM = '/usr/bin/chromium';

/** A page server: any path answers an empty HTML page, so that the browser has an origin. */
async function pageServer(): Promise<{ server: Server; origin: string }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>app</title>');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const chat = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hello' }] });

describe('CORS for the origins the config lists', () => {
  const mock = new MockUpstream();
  let t: TestApp;
  let base: string;
  let key: string;
  let page: Awaited<ReturnType<typeof pageServer>>;
  let other: Awaited<ReturnType<typeof pageServer>>;
  let browser: Browser;

  beforeAll(async () => {
    await mock.start();
    page = await pageServer();
    other = await pageServer();
    t = await testApp({
      cors_origins: [page.origin],
      gateway: {
        providers: [{ id: 'openai', kind: 'openai', base_url: `${mock.url}/v1`, api_key: 'sk-up' }],
      },
    });
    base = await t.listen();
    key = (await t.newKey({ project: 'web' })).key;
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
      ],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await t?.shutdown();
    await mock.stop();
    page?.server.close();
    other?.server.close();
  });

  it('answers a preflight from a listed origin, and lets it read the answer and its headers', async () => {
    const pre = await request(`${base}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: {
        origin: page.origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type, x-stainless-os',
      },
    });
    expect(pre.statusCode).toBe(204);
    expect(pre.headers).toMatchObject({
      'access-control-allow-origin': page.origin,
      'access-control-allow-headers': 'authorization, content-type, x-stainless-os',
      vary: 'Origin',
    });
    expect(pre.headers['access-control-allow-methods']).toContain('POST');
    expect(pre.headers['access-control-allow-credentials']).toBeUndefined();

    const res = await request(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { origin: page.origin, authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: chat,
    });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    expect(res.headers['access-control-allow-origin']).toBe(page.origin);
    expect(res.headers['access-control-expose-headers']).toContain('x-tally-call-id');
    // The API's own routes too.
    const calls = await request(`${base}/v1/calls?limit=1`, { headers: { origin: page.origin, ...t.auth } });
    expect(calls.statusCode).toBe(200);
    await calls.body.dump();
    expect(calls.headers['access-control-allow-origin']).toBe(page.origin);
  });

  it('gives another origin nothing: no CORS headers, and its preflight is not answered', async () => {
    const pre = await request(`${base}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: { origin: other.origin, 'access-control-request-method': 'POST' },
    });
    await pre.body.dump();
    expect(pre.statusCode).toBe(404);
    expect(pre.headers['access-control-allow-origin']).toBeUndefined();
    const res = await request(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { origin: other.origin, authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: chat,
    });
    await res.body.dump();
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('in Chromium: a page of a listed origin calls the gateway with its key, plain and streamed; another cannot', async () => {
    const tab = await browser.newPage();
    try {
      await tab.goto(page.origin);
      const got = await tab.evaluate(
        async ({ base, key }) => {
          const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
          const messages = [{ role: 'user', content: 'Hello' }];
          const plain = await fetch(`${base}/v1/chat/completions`, {
            method: 'POST',
            headers,
            body: JSON.stringify({ model: 'gpt-4o', messages }),
          });
          const answer = (await plain.json()) as { choices: { message: { content: string } }[] };
          const streamed = await fetch(`${base}/v1/chat/completions`, {
            method: 'POST',
            headers,
            body: JSON.stringify({ model: 'gpt-4o', messages, stream: true }),
          });
          const events = (await streamed.text()).split('\n\n').filter((e) => e.startsWith('data: '));
          // An error answer is readable too, so that the page can say what went wrong.
          const denied = await fetch(`${base}/v1/chat/completions`, {
            method: 'POST',
            headers: { ...headers, authorization: 'Bearer tk-not-a-key' },
            body: JSON.stringify({ model: 'gpt-4o', messages }),
          });
          const deniedBody = (await denied.json()) as { error: { code: string } };
          return {
            status: plain.status,
            content: answer.choices[0]?.message.content ?? '',
            callId: plain.headers.get('x-tally-call-id'),
            cost: plain.headers.get('x-tally-cost-usd'),
            streamStatus: streamed.status,
            last: events.at(-1),
            denied: `${denied.status} ${deniedBody.error.code}`,
          };
        },
        { base, key },
      );
      expect(got.status).toBe(200);
      expect(got.content.length).toBeGreaterThan(0);
      expect(got.callId).toMatch(/^[0-9a-f-]{36}$/);
      expect(Number(got.cost)).toBeGreaterThan(0);
      expect(got.streamStatus).toBe(200);
      expect(got.last).toBe('data: [DONE]');
      expect(got.denied).toBe('401 invalid_api_key');
      // The call the page made is metered under its key, as any other.
      await t.gateway.flush();
      const call = (await t.app.inject({ url: `/v1/calls/${got.callId}`, headers: t.auth })).json();
      expect(call).toMatchObject({ project: 'web', status: 'ok', cost_usd: got.cost });

      await tab.goto(other.origin);
      const refused = await tab.evaluate(
        async ({ base, key }) =>
          fetch(`${base}/v1/chat/completions`, {
            method: 'POST',
            headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
            body: '{}',
          }).then(
            (r) => `answered ${r.status}`,
            (e: Error) => `${e.name}: ${e.message}`,
          ),
        { base, key },
      );
      expect(refused).toBe('TypeError: Failed to fetch');
    } finally {
      await tab.close();
    }
  });

  it('without cors_origins, answers carry no CORS headers', async () => {
    const plain = await testApp();
    try {
      const url = await plain.listen();
      const pre = await request(`${url}/v1/chat/completions`, {
        method: 'OPTIONS',
        headers: { origin: page.origin, 'access-control-request-method': 'POST' },
      });
      await pre.body.dump();
      expect(pre.statusCode).toBe(404);
      expect(pre.headers['access-control-allow-origin']).toBeUndefined();
    } finally {
      await plain.shutdown();
    }
  });

  it('takes origins as browsers send them, or *, and says what is wrong with any other', () => {
    expect(configSchema.parse({ cors_origins: ['*', 'http://localhost:5173'] }).cors_origins).toHaveLength(2);
    expect(() => configSchema.parse({ cors_origins: ['https://app.example.com/'] })).toThrow(
      /must be an origin alone, as browsers send it: https:\/\/app\.example\.com/,
    );
    expect(() => configSchema.parse({ cors_origins: ['app.example.com'] })).toThrow(/is not a URL/);
    expect(() => configSchema.parse({ cors_origins: ['ftp://files.example.com'] })).toThrow(/http or https/);
  });
});
