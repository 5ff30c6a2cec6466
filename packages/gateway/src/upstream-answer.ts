/**
 * What the gateway checks in an upstream's whole answer before a client sees it: that it could be
 * read (whole, decompressed), that a 2xx is a JSON object, that an error is in
 * the client's format.
 */
import { errorBody, type GatewayError, type Wire } from './replies.js';
import { UndecodableBody, type UpstreamResponse } from './upstream.js';

/** Why an answer could not be used, as the call's error type and the client's error code. */
export type Unusable = 'upstream_invalid_response' | 'upstream_body_error' | 'upstream_redirect';

/** The whole body, or why it could not be read. */
export async function readWhole(
  up: UpstreamResponse,
): Promise<{ buf: Buffer; unusable: null } | { buf: null; unusable: Unusable }> {
  try {
    return { buf: await up.body.bytes(), unusable: null };
  } catch (err) {
    if (err instanceof UndecodableBody) return { buf: null, unusable: 'upstream_invalid_response' };
    return { buf: null, unusable: 'upstream_body_error' };
  }
}

/** The 502 a client gets for an answer the gateway could not use. */
export function unusableError(why: Unusable, provider: string): GatewayError {
  const message = {
    upstream_invalid_response: `The upstream ${provider} answered with a body that is not a JSON object (or cannot be decompressed).`,
    upstream_body_error: 'The upstream response was cut off.',
    upstream_redirect: `The upstream ${provider} answered with a redirect, which the gateway does not follow: check its base_url.`,
  }[why];
  return { status: 502, type: 'api_error', code: why, message };
}

const isSpace = (c: number | undefined) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/** Whether a body opens as a JSON object: a 2xx answer of the APIs the gateway serves always does.
 * (Whether it is JSON to its end is left to the parse that reads its usage.) */
export function opensObject(buf: Buffer): boolean {
  let i = 0;
  while (i < buf.length && isSpace(buf[i])) i++;
  return buf[i] === 0x7b;
}

/** The JSON object a text holds, or null. */
export function parseObject(text: string): Record<string, unknown> | null {
  try {
    const json: unknown = JSON.parse(text);
    return json !== null && typeof json === 'object' && !Array.isArray(json)
      ? (json as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

/**
 * An upstream error's body for the client: its JSON as it came, or, when it is not JSON
 * (a proxy's HTML page), an error in the client's format that says so.
 */
export function errorAnswer(
  buf: Buffer,
  status: number,
  contentType: string | undefined,
  wire: Wire,
  provider: string,
): { json: Record<string, unknown> | null; text: string } {
  const text = buf.toString('utf8');
  const json = parseObject(text);
  if (json) return { json, text };
  const kind = contentType ? ` (${contentType.split(';')[0]!.trim()})` : '';
  return {
    json: null,
    text: errorBody(wire, {
      status,
      type: status === 429 ? 'requests' : status >= 500 ? 'api_error' : 'invalid_request_error',
      code: 'upstream_error',
      message: `The upstream ${provider} answered ${status} with a body that is not JSON${kind}.`,
    }),
  };
}
