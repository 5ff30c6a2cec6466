import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { SKIP_WITHOUT_RECORDINGS } from '@tally/gateway/testing';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { gatewaySuite } from '../testing/gateway-suite.js';

type Json = Record<string, Record<string, unknown>>;

/** A tool whose parameters nest `depth` objects one in another, written out (JSON.stringify would
 * overflow the stack on it). */
function deepTools(depth: number): string {
  const schema = `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
  return `[{"type":"function","function":{"name":"f","parameters":${schema}}}]`;
}

describe.skipIf(SKIP_WITHOUT_RECORDINGS)('gateway: requests refused before anything goes upstream', () => {
  const suite = gatewaySuite((url) => ({
    body_limit_bytes: 1024 * 1024,
    providers: [
      { id: 'openai', kind: 'openai', base_url: `${url}/v1` },
      { id: 'anthropic', kind: 'anthropic', base_url: url },
    ],
  }));
  const { chat, mock } = suite;

  const post = (path: string, body: string, key = suite.key) =>
    request(`${suite.base}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body,
    });

  /** The answer's error, after checking it is a 400 and that nothing went upstream. */
  async function refused(pending: ReturnType<typeof post>): Promise<Record<string, unknown>> {
    const before = mock.received.length;
    const res = await pending;
    const body = (await res.body.json()) as Json;
    expect(res.statusCode, JSON.stringify(body)).toBe(400);
    expect(mock.received.length).toBe(before);
    return body.error!;
  }

  it('names a message, tool call, content part or input item that is not an object (for Claude)', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ messages: [null] }, 'messages[0] must be an object, not null.'],
      [
        {
          messages: [
            { role: 'user', content: 'Hi' },
            { role: 'assistant', tool_calls: [null] },
          ],
        },
        'messages[1].tool_calls[0] must be an object, not null.',
      ],
      [
        { messages: [{ role: 'assistant', tool_calls: 'call_1' }] },
        'messages[0].tool_calls must be an array.',
      ],
      [
        { messages: [{ role: 'user', content: [7] }] },
        'messages[0].content[0] must be an object, not number.',
      ],
      [
        { messages: [{ role: 'user', content: 'Hi' }], tools: [[]] },
        'tools[0] must be an object, not an array.',
      ],
    ];
    for (const [body, message] of cases) {
      const error = await refused(chat({ model: 'claude-sonnet-4-5', ...body }));
      expect(error).toMatchObject({ code: 'invalid_request', type: 'invalid_request_error', message });
    }
    const responses = (input: unknown) =>
      post('/v1/responses', JSON.stringify({ model: 'claude-sonnet-4-5', input }));
    expect(await refused(responses([null]))).toMatchObject({
      code: 'invalid_request',
      message: 'input[0] must be an object, not null.',
    });
    expect(await refused(responses([{ role: 'user', content: ['x'] }]))).toMatchObject({
      message: 'input[0].content[0] must be an object, not string.',
    });
  });

  it('refuses a body nested deeper than 512, whichever upstream it is for', async () => {
    // A key with a token limit counts the prompt, tools included.
    const limited = (await suite.t.newKey({ project: 'p', tpm: 10_000_000 })).key;
    for (const model of ['claude-sonnet-4-5', 'gpt-4o']) {
      for (const depth of [100_000, 512]) {
        const body = `{"model":"${model}","messages":[{"role":"user","content":"Hi"}],"tools":${deepTools(depth)}}`;
        const error = await refused(post('/v1/chat/completions', body, limited));
        expect(error).toMatchObject({
          code: 'nesting_too_deep',
          message: 'The request body nests objects and arrays more than 512 deep (in "tools").',
        });
      }
    }
    // 511 in all: the body, the tools list, the tool, its function, and 507 in the schema.
    const fits = `{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}],"tools":${deepTools(507)}}`;
    const res = await post('/v1/chat/completions', fits, limited);
    expect(res.statusCode).toBe(200);
    await res.body.dump();
  });

  it('refuses a body that gives a top-level field twice, in the client format', async () => {
    // The key may use gpt-4o-mini only: an upstream that reads the first "model" would serve gpt-4o.
    const mini = (await suite.t.newKey({ project: 'p', models: ['gpt-4o-mini'] })).key;
    const messages = '"messages":[{"role":"user","content":"Hi"}]';
    for (const body of [
      `{"model":"gpt-4o","model":"gpt-4o-mini",${messages}}`,
      `{"model":"gpt-4o", ${messages}, "mod\\u0065l" : "gpt-4o-mini"}`,
    ]) {
      expect(await refused(post('/v1/chat/completions', body, mini))).toMatchObject({
        type: 'invalid_request_error',
        code: 'duplicate_key',
        message: 'The request body gives "model" more than once: send each field once.',
      });
    }
    const twice = `{"model":"claude-sonnet-4-5","max_tokens":10,"max_tokens":100000,${messages}}`;
    for (const path of ['/v1/messages', '/v1/messages/count_tokens']) {
      const before = mock.received.length;
      const res = await request(`${suite.base}${path}`, {
        method: 'POST',
        headers: { 'x-api-key': suite.key, 'content-type': 'application/json' },
        body: twice,
      });
      expect(res.statusCode).toBe(400);
      expect(await res.body.json()).toMatchObject({
        type: 'error',
        error: {
          type: 'invalid_request_error',
          message: expect.stringContaining('"max_tokens" more than once'),
        },
      });
      expect(mock.received.length).toBe(before);
    }
    // The same name inside a value is the value's own business.
    const nested = `{"model":"gpt-4o","metadata":{"a":"1","a":"2"},${messages}}`;
    const res = await post('/v1/chat/completions', nested);
    expect(res.statusCode).toBe(200);
    await res.body.dump();
  });

  it('records a body it cannot take as a refused call of the key, with the model it names if any', async () => {
    const { id, key } = await suite.t.newKey({ project: 'bodies' });
    const send = (body: string | Buffer, path = '/v1/chat/completions') =>
      request(`${suite.base}${path}`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${key}`,
          'content-type': 'application/json',
          'x-tally-team': 'web',
        },
        body,
      });
    const messages = '"messages":[{"role":"user","content":"Hi"}]';
    const cases: [string | Buffer, number, string][] = [
      ['{"model": "gpt-4o", ', 400, 'invalid_json'],
      [`{${messages}}`, 400, 'missing_model'],
      [`{"model":"gpt-4o","model":"gpt-4o-mini",${messages}}`, 400, 'duplicate_key'],
      [Buffer.alloc(2 << 20, 32), 413, 'body_too_large'],
    ];
    const ids: string[] = [];
    for (const [body, status, code] of cases) {
      const res = await send(body);
      expect(res.statusCode, code).toBe(status);
      expect(((await res.body.json()) as Json).error).toMatchObject({ code });
      ids.push(res.headers['x-tally-call-id'] as string);
    }
    // A token count is not a model call: its refusal is not recorded.
    const count = await send('{', '/v1/messages/count_tokens');
    expect(count.statusCode).toBe(400);
    expect(count.headers['x-tally-call-id']).toBeUndefined();
    await count.body.dump();
    await suite.t.gateway.flush();
    const rows = (
      await suite.t.app.inject({ url: `/v1/calls?key_id=${id}&status=refused`, headers: suite.t.auth })
    ).json().data as Record<string, unknown>[];
    expect(rows.map((r) => [r['id'], r['error_type'], r['model_requested']]).reverse()).toEqual([
      [ids[0], 'invalid_json', ''],
      [ids[1], 'missing_model', ''],
      [ids[2], 'duplicate_key', 'gpt-4o-mini'],
      [ids[3], 'body_too_large', ''],
    ]);
    expect(rows[0]).toMatchObject({ project: 'bodies', team: 'web', api: 'openai-chat', cost_usd: '0' });
  });

  it('reads a compressed body (gzip, deflate, br), held to the body limit once decoded', async () => {
    const body = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hello' }] });
    const send = (coding: string, bytes: Buffer) =>
      request(`${suite.base}/v1/chat/completions`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${suite.key}`,
          'content-type': 'application/json',
          'content-encoding': coding,
        },
        body: bytes,
      });
    const codings: [string, (b: Buffer) => Buffer][] = [
      ['gzip', gzipSync],
      ['deflate', deflateSync],
      ['deflate', deflateRawSync],
      ['br', brotliCompressSync],
    ];
    for (const [coding, encode] of codings) {
      const res = await send(coding, encode(Buffer.from(body)));
      expect(res.statusCode, coding).toBe(200);
      await res.body.dump();
      expect(mock.received.at(-1)!.raw).toBe(body);
      expect(mock.received.at(-1)!.headers['content-encoding']).toBeUndefined();
    }
    // 4 MB of spaces inside a valid body: a few kB compressed, past the 1 MB limit decoded.
    const bomb = gzipSync(Buffer.from(`${body.slice(0, -1)}${' '.repeat(4 << 20)}}`));
    const errors: [Promise<Awaited<ReturnType<typeof send>>>, number, string][] = [
      [send('gzip', bomb), 413, 'body_too_large'],
      [send('gzip', Buffer.from(body)), 400, 'invalid_content_encoding'],
      [send('zstd', Buffer.from(body)), 415, 'unsupported_content_encoding'],
    ];
    for (const [pending, status, code] of errors) {
      const before = mock.received.length;
      const res = await pending;
      expect(res.statusCode, code).toBe(status);
      expect(((await res.body.json()) as Json).error).toMatchObject({ code });
      expect(mock.received.length).toBe(before);
    }
  });
});
