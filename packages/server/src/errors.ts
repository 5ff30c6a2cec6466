import { ERRORS, type ErrorCode, TallyError } from '@tally/core';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';

/** Fastify's own error codes, mapped onto ours. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_BODY_TOO_LARGE: 'body_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_request',
  FST_ERR_VALIDATION: 'invalid_request',
};

export function toTallyError(err: unknown): TallyError {
  if (err instanceof TallyError) return err;
  const fe = err as Partial<FastifyError> | undefined;
  const code = fe?.code ? FASTIFY_CODES[fe.code] : undefined;
  if (code) return new TallyError(code, code === 'invalid_json' ? ERRORS.invalid_json.message : fe?.message);
  if (err instanceof SyntaxError) return new TallyError('invalid_json');
  return new TallyError('internal');
}

/** The one place where errors become HTTP replies. */
export function errorHandler(err: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const te = toTallyError(err);
  if (te.code === 'internal') request.log.error({ err }, 'unhandled error');
  void reply.status(te.status).send({ error: te.toJSON() });
}

export function notFoundHandler(request: FastifyRequest, reply: FastifyReply): void {
  const te = new TallyError('not_found', `No route for ${request.method} ${request.url.split('?')[0]}.`);
  void reply.status(404).send({ error: te.toJSON() });
}
