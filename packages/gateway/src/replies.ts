import type { ServerResponse } from 'node:http';
import type { VirtualKey } from './types.js';

/** Clients read errors in their own API's shape: OpenAI's, or Anthropic's on /v1/messages. */
export type Wire = 'openai' | 'anthropic';

/** The shape of a gateway route's answers: Anthropic's for its messages and token count. */
export const wireOf = (route: string): Wire =>
  route === 'messages' ||
  route === 'count_tokens' ||
  route === 'message_batches' ||
  route === 'message_batch_list'
    ? 'anthropic'
    : 'openai';

export interface GatewayError {
  status: number;
  /** OpenAI error type (invalid_request_error, requests, tokens, insufficient_quota, ...). */
  type: string;
  code: string;
  message: string;
  headers?: Record<string, string>;
}

const ANTHROPIC_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  502: 'api_error',
  503: 'overloaded_error',
  504: 'api_error',
};

export function errorBody(wire: Wire, e: GatewayError): string {
  if (wire === 'anthropic') {
    return JSON.stringify({
      type: 'error',
      error: { type: ANTHROPIC_TYPES[e.status] ?? 'api_error', message: e.message, code: e.code },
    });
  }
  return JSON.stringify({ error: { message: e.message, type: e.type, param: null, code: e.code } });
}

/** A value for a response header: as it is when it is printable ASCII (as model names and ids
 * are), else percent-encoded, since Node refuses such a header and the answer would be lost. */
export function headerValue(v: string): string {
  return /^[\x20-\x7e]*$/.test(v) ? v : encodeURIComponent(v);
}

/** The error code each refused or failed response was answered with, for the metrics. */
const sentCodes = new WeakMap<ServerResponse, string>();

/** The code of the error `res` was answered with (invalid_api_key, budget_exceeded, ...), if any. */
export function errorCodeOf(res: ServerResponse): string | undefined {
  return sentCodes.get(res);
}

export function sendError(res: ServerResponse, wire: Wire, e: GatewayError): void {
  sentCodes.set(res, e.code);
  if (res.headersSent) {
    res.end();
    return;
  }
  const body = errorBody(wire, e);
  res.writeHead(e.status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    ...e.headers,
  });
  res.end(body);
}

export const invalidKey = (): GatewayError => ({
  status: 401,
  type: 'invalid_request_error',
  code: 'invalid_api_key',
  message: 'Incorrect API key provided. Use a Tally virtual key (tk-...).',
});

/** No upstream serves the model (a route names providers that are not configured). */
export const noRoute = (model: string, missing: string[]): GatewayError => ({
  status: 404,
  type: 'invalid_request_error',
  code: 'model_not_found',
  message:
    missing.length > 0
      ? `The route for model ${model} names provider${missing.length > 1 ? 's' : ''} ${missing.join(', ')}, which ${missing.length > 1 ? 'are' : 'is'} not configured.`
      : `No provider is configured for model ${model} on this endpoint.`,
});

/** The key's model list does not take the model. */
export const notAllowed = (key: VirtualKey, model: string): GatewayError => ({
  status: 403,
  type: 'invalid_request_error',
  code: 'model_not_allowed',
  message: `This key may not use model ${model}. Allowed: ${key.models.join(', ')}.`,
});

export const badRequest = (message: string, code = 'invalid_request'): GatewayError => ({
  status: 400,
  type: 'invalid_request_error',
  code,
  message,
});

/** Budgets and limits cannot be held without their state (Redis out of reach): the call is not
 * sent unchecked. */
export function stateUnavailable(err: unknown): GatewayError {
  return {
    status: 503,
    type: 'api_error',
    code: 'budget_state_unavailable',
    message: `The budget and rate-limit state cannot be reached (${(err as Error).message}); the call was not sent. Try again shortly.`,
    headers: { 'retry-after': '1' },
  };
}
