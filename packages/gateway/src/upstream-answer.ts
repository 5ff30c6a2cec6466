/**
 * What the gateway checks in an upstream's whole answer before a client sees it: that it could be
 * read (whole, within the limit, decompressed), that a 2xx is a JSON object, that an error is in
 * the client's format, and that nothing in it shows the provider's key.
 */
import { errorBody, type GatewayError, type Wire } from './replies.js';
import { ResponseTooLarge, UndecodableBody, type UpstreamResponse } from './upstream.js';

/** The most an answer may hold, whole or streamed, unless the config says otherwise. */
export const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** Why an answer could not be used, as the call's error type and the client's error code. */
export type Unusable =
  | 'upstream_response_too_large'
  | 'upstream_invalid_response'
  | 'upstream_body_error'
  | 'upstream_redirect';

/** The whole body, or why it could not be read. */
export async function readWhole(
  up: UpstreamResponse,
  limit: number,
): Promise<{ buf: Buffer; unusable: null } | { buf: null; unusable: Unusable }> {
  try {
    return { buf: await up.body.bytes(limit), unusable: null };
  } catch (err) {
    if (err instanceof ResponseTooLarge) return { buf: null, unusable: 'upstream_response_too_large' };
    if (err instanceof UndecodableBody) return { buf: null, unusable: 'upstream_invalid_response' };
    return { buf: null, unusable: 'upstream_body_error' };
  }
}

/** The 502 a client gets for an answer the gateway could not use. */
export function unusableError(why: Unusable, provider: string, limit: number): GatewayError {
  const message = {
    upstream_response_too_large: `The upstream ${provider} answered with more than ${limit} bytes (gateway.max_response_bytes); the call was cut off.`,
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

/** Runs of key-like characters: a provider key, or a part of one, in an error message. */
const TOKEN = /[A-Za-z0-9_-]{12,}/g;

/**
 * An error body with the provider's key taken out: the key itself wherever it stands, and any run
 * of key characters (12 or more) that is the start of it, as a message may cut a key short. Some
 * providers echo the key they were sent ("Incorrect API key provided: sk-..."), and the client
 * must not learn the gateway's key from it.
 */
export function redactKey(text: string, key: string | undefined): string {
  if (!key || key.length < 8) return text;
  const out = text.includes(key) ? text.split(key).join('[redacted]') : text;
  return out.replace(TOKEN, (t) => (key.startsWith(t) ? '[redacted]' : t));
}

/**
 * An upstream error's body for the client: its JSON with the key redacted, or, when it is not JSON
 * (a proxy's HTML page), an error in the client's format that says so.
 */
export function errorAnswer(
  buf: Buffer,
  status: number,
  contentType: string | undefined,
  wire: Wire,
  provider: string,
  key: string | undefined,
): { json: Record<string, unknown> | null; text: string } {
  const text = redactKey(buf.toString('utf8'), key);
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

const ERROR_CODE = /^[A-Za-z0-9_.-]{1,64}$/;

/** What OpenAI-compatible servers and Anthropic say of a prompt too long for the model: vLLM's
 * "maximum context length is", Anthropic's "prompt is too long" and "exceed context limit",
 * Gemini's "input token count ... exceeds the maximum". */
const TOO_LONG =
  /context[ _-]?(length|window|limit)|prompt is too long|input token count\b.*\bexceeds|too many input tokens/i;

/** The codes of a request a content filter refused: Azure's `content_filter` (its inner error
 * `ResponsibleAIPolicyViolation`), OpenAI's `content_policy_violation` (images) and
 * `invalid_prompt` (a prompt flagged for its usage policy). */
const FILTERED = new Set(['content_filter', 'content_policy_violation', 'invalid_prompt']);

/** The models a route keeps for a request its first ones refuse: those with a larger context
 * window, and those another content filter judges. */
export type StandIn = 'context_fallback' | 'policy_fallback';

/**
 * Which of a route's stand-in models an upstream's error answer calls for: 'context_fallback' for a
 * 400 that says the prompt (with the output it asks for) is more than the model's context window
 * (OpenAI's and Azure's `context_length_exceeded`, or the same in another provider's words),
 * 'policy_fallback' for a 400 of a content filter; else null.
 */
export function standInFor(status: number, json: Record<string, unknown> | null): StandIn | null {
  if (status !== 400) return null;
  const error = json?.['error'];
  if (typeof error !== 'object' || error === null) return null;
  const { code, message, innererror } = error as Record<string, unknown>;
  if (code === 'context_length_exceeded' || (typeof message === 'string' && TOO_LONG.test(message)))
    return 'context_fallback';
  const inner =
    typeof innererror === 'object' && innererror !== null ? (innererror as Record<string, unknown>) : null;
  if ((typeof code === 'string' && FILTERED.has(code)) || inner?.['code'] === 'ResponsibleAIPolicyViolation')
    return 'policy_fallback';
  return null;
}

/**
 * A call's error type for an upstream's error answer: `upstream_<status>`, and after a colon the
 * code its body gives, so that what failed can be told apart where the status cannot
 * (`upstream_400:context_length_exceeded`, `upstream_429:insufficient_quota` against
 * `upstream_429:rate_limit_exceeded`, `upstream_529:overloaded_error`): OpenAI's `error.code`, else
 * the `error.type` both APIs give (Anthropic's `invalid_request_error`...). A code that is not a
 * plain name is left out.
 */
export function upstreamErrorType(status: number, json: Record<string, unknown> | null): string {
  const error = json?.['error'];
  const e = typeof error === 'object' && error !== null ? (error as Record<string, unknown>) : null;
  const code = typeof e?.['code'] === 'string' && ERROR_CODE.test(e['code']) ? e['code'] : e?.['type'];
  return typeof code === 'string' && ERROR_CODE.test(code)
    ? `upstream_${status}:${code}`
    : `upstream_${status}`;
}
