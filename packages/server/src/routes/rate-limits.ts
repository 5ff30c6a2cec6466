import { randomUUID } from 'node:crypto';
import { isObject, TallyError, tagSubject } from '@tally/core';
import { rateLimitBucket } from '@tally/gateway';
import type { RateLimitRecord } from '@tally/store';
import type { FastifyPluginAsync } from 'fastify';
import type { AppContext } from '../context.js';
import { toRateRule } from '../rate-limits.js';
import { modelList, optPositiveInt, refuseUnknownFields } from '../serialize.js';
import { pick, SCOPES } from './budgets.js';

const FIELDS = ['id', 'scope', 'subject', 'models', 'rpm', 'tpm', 'max_parallel'];

function rateLimitJson(r: RateLimitRecord) {
  return {
    id: r.id,
    scope: r.scope,
    subject: r.subject,
    models: r.models,
    rpm: r.rpm,
    tpm: r.tpm,
    max_parallel: r.max_parallel,
    created_at: new Date(r.created_at).toISOString(),
  };
}

/** Where a rate limit stands now: requests and tokens left of its minute, as its buckets hold
 * them, and its calls in flight (in this process, or in Redis across replicas). A limit no call
 * has met yet is full. */
export async function rateLimitStanding(ctx: AppContext, r: RateLimitRecord) {
  const key = rateLimitBucket(toRateRule(r));
  const now = await ctx.state.rateStanding({ key, rpm: r.rpm, tpm: r.tpm }, ctx.clock.now());
  return {
    ...rateLimitJson(r),
    remaining_requests: now.requests?.remaining ?? null,
    remaining_tokens: now.tokens?.remaining ?? null,
    in_flight: r.max_parallel === null ? null : await ctx.state.slotsInFlight(key),
  };
}

/**
 * Rate limits of a scope: requests and tokens a minute, and calls in flight at once, shared by
 * every call of a tenant, project, team, user, key or tag (and of some models only, with
 * `models`), whichever key makes them, on top of each key's own limits. Over one, a call gets
 * OpenAI's 429 naming it.
 */
export const rateLimitRoutes: FastifyPluginAsync<AppContext> = async (app, ctx) => {
  app.post('/v1/rate-limits', async (request, reply) => {
    const principal = await ctx.auth.authenticate(request, ['admin']);
    const body = request.body;
    if (!isObject(body)) throw new TallyError('invalid_request', 'The body must be a JSON object.');
    refuseUnknownFields(body, FIELDS, 'a rate limit');
    const scope = pick(body, 'scope', SCOPES);
    const subject = scope === 'tenant' ? principal.tenant : body['subject'];
    if (typeof subject !== 'string' || subject === '' || subject.length > 1024)
      throw new TallyError('invalid_request', 'subject is required, at most 1024 characters.');
    if (scope === 'tag' && tagSubject(subject) === null)
      throw new TallyError(
        'invalid_request',
        "A tag rate limit's subject is the tag as name=value, such as feature=summarize.",
      );
    const rpm = optPositiveInt(body, 'rpm');
    const tpm = optPositiveInt(body, 'tpm');
    const maxParallel = optPositiveInt(body, 'max_parallel');
    if (rpm === null && tpm === null && maxParallel === null)
      throw new TallyError('invalid_request', 'A rate limit needs rpm, tpm, max_parallel or several.');
    const id = body['id'];
    if (id !== undefined && (typeof id !== 'string' || id === '' || id.length > 128))
      throw new TallyError('invalid_request', 'id must be a non-empty string of at most 128 characters.');
    const rec: RateLimitRecord = {
      tenant: principal.tenant,
      id: id ?? `rl_${randomUUID().slice(0, 8)}`,
      scope,
      subject,
      models: modelList(body['models'] ?? []),
      rpm,
      tpm,
      max_parallel: maxParallel,
      created_at: ctx.clock.now(),
    };
    await ctx.store.putRateLimit(rec);
    ctx.rateLimits.forget(principal.tenant);
    return reply.status(201).send(rateLimitJson(rec));
  });

  app.get('/v1/rate-limits', async (request) => {
    const principal = await ctx.auth.authenticate(request, ['admin', 'finance']);
    const data = [];
    for (const r of await ctx.store.listRateLimits(principal.tenant))
      data.push(await rateLimitStanding(ctx, r));
    return { data };
  });

  app.delete('/v1/rate-limits/:id', async (request) => {
    const principal = await ctx.auth.authenticate(request, ['admin']);
    const { id } = request.params as { id: string };
    if (!(await ctx.store.deleteRateLimit(principal.tenant, id)))
      throw new TallyError('not_found', `No rate limit ${id}.`);
    ctx.rateLimits.forget(principal.tenant);
    return { id, deleted: true };
  });
};
