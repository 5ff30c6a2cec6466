import { describe, expect, it } from 'vitest';
import { transientStreamError } from './relay.js';

const event = (data: unknown, name?: string) =>
  `${name ? `event: ${name}\n` : ''}data: ${JSON.stringify(data)}`;

describe('an error that opens a stream', () => {
  it("is transient when Anthropic is overloaded or OpenAI's server failed", () => {
    expect(
      transientStreamError(
        event({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }, 'error'),
      ),
    ).toBe('overloaded_error');
    expect(
      transientStreamError(
        event({
          error: { message: 'The server had an error', type: 'server_error', param: null, code: null },
        }),
      ),
    ).toBe('server_error');
    expect(
      transientStreamError(
        event({ type: 'error', error: { type: 'rate_limit_error', message: 'slow down' } }),
      ),
    ).toBe('rate_limit_error');
  });

  it('is not when the request is at fault, or when the event is no error', () => {
    expect(
      transientStreamError(event({ type: 'error', error: { type: 'invalid_request_error', message: 'no' } })),
    ).toBeNull();
    expect(
      transientStreamError(event({ type: 'message_start', message: { id: 'msg_1' } }, 'message_start')),
    ).toBeNull();
    expect(transientStreamError('data: {"error": not json')).toBeNull();
    expect(transientStreamError('data: [DONE]')).toBeNull();
  });
});
