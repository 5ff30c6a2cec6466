import { describe, expect, it } from 'vitest';
import { Gateway } from './proxy.js';
import { followUpOf } from './stored.js';

describe('follow-ups on a stored response or a conversation', () => {
  it('are told from the path and the method, with the query passed on', () => {
    expect(followUpOf('GET', '/v1/responses/resp_1')).toEqual({
      on: 'response',
      id: 'resp_1',
      method: 'GET',
      rest: '',
      query: '',
    });
    expect(followUpOf('GET', '/v1/responses/resp_1?stream=true&starting_after=3')?.query).toBe(
      '?stream=true&starting_after=3',
    );
    expect(followUpOf('DELETE', '/v1/responses/resp_1')?.method).toBe('DELETE');
    expect(followUpOf('POST', '/v1/responses/resp_1/cancel')?.rest).toBe('/cancel');
    expect(followUpOf('GET', '/v1/responses/resp_1/input_items?limit=5')).toMatchObject({
      rest: '/input_items',
      query: '?limit=5',
    });
    for (const [method, url, rest] of [
      ['GET', '/v1/conversations/conv_1', ''],
      ['POST', '/v1/conversations/conv_1', ''],
      ['DELETE', '/v1/conversations/conv_1', ''],
      ['GET', '/v1/conversations/conv_1/items?limit=2', '/items'],
      ['POST', '/v1/conversations/conv_1/items', '/items'],
      ['GET', '/v1/conversations/conv_1/items/msg_9', '/items/msg_9'],
      ['DELETE', '/v1/conversations/conv_1/items/msg_9', '/items/msg_9'],
    ] as const) {
      expect(followUpOf(method, url)).toMatchObject({ on: 'conversation', id: 'conv_1', method, rest });
      expect(Gateway.route(method, url)).toBe('follow_up');
    }
    expect(Gateway.route('POST', '/v1/conversations')).toBe('conversations');
    for (const [method, url, rest] of [
      ['GET', '/v1/chat/completions/chatcmpl-1', ''],
      ['POST', '/v1/chat/completions/chatcmpl-1', ''],
      ['DELETE', '/v1/chat/completions/chatcmpl-1', ''],
      ['GET', '/v1/chat/completions/chatcmpl-1/messages?limit=5', '/messages'],
    ] as const) {
      expect(followUpOf(method, url)).toMatchObject({
        on: 'chat_completion',
        id: 'chatcmpl-1',
        method,
        rest,
      });
      expect(Gateway.route(method, url)).toBe('follow_up');
    }
    expect(Gateway.route('POST', '/v1/chat/completions')).toBe('chat');
  });

  it('are not the calls that take a body of their own, nor other methods', () => {
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
      ['DELETE', '/v1/conversations/conv_1/items'],
      ['POST', '/v1/conversations/conv_1/items/msg_9'],
      ['GET', '/v1/conversations/conv_1/items/msg 9'],
      ['GET', '/v1/conversations'],
      ['GET', '/v1/chat/completions'],
      ['DELETE', '/v1/chat/completions/chatcmpl-1/messages'],
    ] as const) {
      expect(followUpOf(method, url)).toBeNull();
      expect(Gateway.route(method, url)).toBeNull();
    }
    expect(Gateway.route('GET', '/v1/responses/resp_1')).toBe('follow_up');
    expect(Gateway.route('POST', '/v1/responses')).toBe('responses');
  });
});
