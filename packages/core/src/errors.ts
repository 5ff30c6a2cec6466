/**
 * Every error a user can hit is declared here once, with its code, HTTP status, message and a hint
 * that says how to fix it. The server maps these to replies in one place; the CLI prints them.
 */
export interface ErrorSpec {
  readonly status: number;
  readonly message: string;
  readonly hint: string;
}

export const ERRORS = {
  invalid_json: {
    status: 400,
    message: 'The request body is not valid JSON.',
    hint: 'Send a JSON document with Content-Type: application/json.',
  },
  invalid_request: {
    status: 400,
    message: 'The request is not valid.',
    hint: 'Check the fields named in the message against the API reference in the README.',
  },
  invalid_event: {
    status: 400,
    message: 'The event is not valid.',
    hint: 'Check the event against the wire format in the README (snake_case, RFC 3339 time).',
  },
  batch_too_large: {
    status: 413,
    message: 'The batch holds more events than allowed.',
    hint: 'Split it into requests within the limit that the message gives.',
  },
  body_too_large: {
    status: 413,
    message: 'The request body is larger than the limit.',
    hint: 'Split the batch into smaller requests.',
  },
  unsupported_media_type: {
    status: 415,
    message: 'The content type is not supported.',
    hint: 'Send Content-Type: application/json.',
  },
  unauthorized: {
    status: 401,
    message: 'A valid API key is required.',
    hint: 'Pass the admin key as "Authorization: Bearer <key>". It was printed on first start.',
  },
  forbidden: {
    status: 403,
    message: 'This key may not do that.',
    hint: 'Use a key with the role that the route needs.',
  },
  not_found: {
    status: 404,
    message: 'Not found.',
    hint: 'Check the path and the id.',
  },
  server_unreachable: {
    status: 503,
    message: 'The Tally server cannot be reached.',
    hint: 'Start it (tally start), or point at it: --url for a command, --server or TALLY_SERVER_URL for a gateway replica.',
  },
  gateway_key_refused: {
    status: 503,
    message: "The Tally server refused the gateway replica's key.",
    hint: 'Set TALLY_GATEWAY_KEY on the replica to the server\'s gateway_key, or to a key made with "tally keys create --role gateway" that is not revoked.',
  },
  already_exists: {
    status: 409,
    message: 'Something with that id already exists.',
    hint: 'Choose another id, or update the existing one (PATCH) instead.',
  },
  gate_failed: {
    status: 409,
    message: 'The stage gate is not passed.',
    hint: 'Meet the checks listed in details, or pass force: true with an admin key and a reason.',
  },
  invalid_cursor: {
    status: 400,
    message: 'The cursor is not valid.',
    hint: 'Pass back the next_cursor value exactly as a previous page returned it.',
  },
  invalid_query: {
    status: 400,
    message: 'A query parameter is not valid.',
    hint: 'Check the parameter named in the message.',
  },
  unknown_provider: {
    status: 400,
    message: 'The provider is not known to the price catalog.',
    hint: 'Run "tally prices list" to see the provider ids.',
  },
  unknown_api: {
    status: 400,
    message: 'The API flavour is not known.',
    hint: 'Use one of openai-chat, openai-responses, openai-embeddings, openai-images, openai-transcriptions, openai-speech, openai-realtime, anthropic-messages, gemini, bedrock-converse.',
  },
  invalid_usage: {
    status: 400,
    message: 'The usage object is not valid for its API flavour.',
    hint: 'Pass the usage object exactly as the provider returned it.',
  },
  invalid_price: {
    status: 400,
    message: 'A price is not a valid decimal string.',
    hint: 'Write prices as decimal strings in USD, for example "2.5".',
  },
  config_invalid: {
    status: 500,
    message: 'The configuration is not valid.',
    hint: 'Fix the setting named in the message in tally.config.json/yaml or the TALLY_* variables.',
  },
  store_unavailable: {
    status: 503,
    message: 'The store is not available.',
    hint: 'Check the store settings and that the database is reachable.',
  },
  not_ready: {
    status: 503,
    message: 'The server is still starting.',
    hint: 'Retry in a moment.',
  },
  internal: {
    status: 500,
    message: 'An internal error occurred.',
    hint: 'Run again with --debug and report the stack trace.',
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export class TallyError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly hint: string;
  readonly details: unknown;

  constructor(code: ErrorCode, message?: string, details?: unknown) {
    const spec = ERRORS[code];
    super(message ?? spec.message);
    this.name = 'TallyError';
    this.code = code;
    this.status = spec.status;
    this.hint = spec.hint;
    this.details = details;
  }

  toJSON(): { code: ErrorCode; message: string; hint: string; details?: unknown } {
    return this.details === undefined
      ? { code: this.code, message: this.message, hint: this.hint }
      : { code: this.code, message: this.message, hint: this.hint, details: this.details };
  }
}

export function isTallyError(err: unknown): err is TallyError {
  return err instanceof TallyError;
}
