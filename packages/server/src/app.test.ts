import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type TestApp, testApp } from './testing/test-app.js';

describe('the app', () => {
  let t: TestApp;
  beforeEach(async () => {
    t = await testApp();
  });
  afterEach(async () => {
    await t.shutdown();
  });

  // Fastify's schema compilers load on demand (app.ts): a route that declares a JSON schema is
  // still validated against it, and its answer serialized by it.
  it('validates and serializes a route that declares a JSON schema', async () => {
    t.app.post(
      '/v1/schema-check',
      {
        schema: {
          body: {
            type: 'object',
            required: ['n'],
            properties: { n: { type: 'integer', minimum: 1 } },
          },
          response: { 200: { type: 'object', properties: { doubled: { type: 'integer' } } } },
        },
      },
      async (req) => ({ doubled: (req.body as { n: number }).n * 2, internal: 'not in the schema' }),
    );
    const bad = await t.app.inject({ method: 'POST', url: '/v1/schema-check', payload: { n: 0 } });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('must be >= 1');
    const good = await t.app.inject({ method: 'POST', url: '/v1/schema-check', payload: { n: 21 } });
    expect(good.statusCode).toBe(200);
    expect(good.json()).toEqual({ doubled: 42 });
  });
});
