import { describe, expect, it } from 'vitest';
import { Gateway } from './proxy.js';
import { followUpOf } from './stored-responses.js';

describe("a stored response's follow-ups", () => {
  it('are told from the path and the method, with the query passed on', () => {
    expect(followUpOf('GET', '/v1/responses/resp_1')).toEqual({ id: 'resp_1', kind: 'retrieve', query: '' });
    expect(followUpOf('GET', '/v1/responses/resp_1?stream=true&starting_after=3')).toEqual({
      id: 'resp_1',
      kind: 'retrieve',
      query: '?stream=true&starting_after=3',
    });
    expect(followUpOf('DELETE', '/v1/responses/resp_1')?.kind).toBe('delete');
    expect(followUpOf('POST', '/v1/responses/resp_1/cancel')?.kind).toBe('cancel');
    expect(followUpOf('GET', '/v1/responses/resp_1/input_items?limit=5')).toEqual({
      id: 'resp_1',
      kind: 'input_items',
      query: '?limit=5',
    });
  });

  it('are not the Responses API calls that take a body, nor other methods', () => {
    expect(followUpOf('POST', '/v1/responses/input_tokens')).toBeNull();
    expect(Gateway.route('POST', '/v1/responses/input_tokens')).toBe('input_tokens');
    expect(followUpOf('POST', '/v1/responses/compact')).toBeNull();
    expect(Gateway.route('POST', '/v1/responses/compact')).toBe('compact');
    for (const [method, url] of [
      ['POST', '/v1/responses/resp_1'],
      ['PUT', '/v1/responses/resp_1'],
      ['GET', '/v1/responses/resp_1/cancel'],
      ['DELETE', '/v1/responses/resp_1/input_items'],
      ['GET', '/v1/responses/'],
      ['GET', '/v1/responses/resp_1/input_items/extra'],
    ] as const) {
      expect(followUpOf(method, url)).toBeNull();
      expect(Gateway.route(method, url)).toBeNull();
    }
    expect(Gateway.route('GET', '/v1/responses/resp_1')).toBe('response');
    expect(Gateway.route('POST', '/v1/responses')).toBe('responses');
  });
});
