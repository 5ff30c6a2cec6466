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

  it("is transient when a Responses stream's error event or response.failed says it is", () => {
    const error = { code: 'rate_limit_exceeded', message: 'Rate limit reached' };
    expect(
      transientStreamError(
        event({ type: 'error', sequence_number: 2, error: { type: 'tokens', ...error } }, 'error'),
      ),
    ).toBe('rate_limit_exceeded');
    expect(
      transientStreamError(event({ type: 'error', sequence_number: 2, ...error, param: null }, 'error')),
    ).toBe('rate_limit_exceeded');
    expect(
      transientStreamError(
        event(
          { type: 'response.failed', response: { id: 'resp_1', status: 'failed', error } },
          'response.failed',
        ),
      ),
    ).toBe('rate_limit_exceeded');
    expect(
      transientStreamError(
        event(
          {
            type: 'response.failed',
            response: { status: 'failed', error: { code: 'invalid_prompt', message: 'no' } },
          },
          'response.failed',
        ),
      ),
    ).toBeNull();
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
