import type { CallRecord, TaskEventRecord } from '@tally/core';
import { FieldError, isObject, parseEvent, TallyError } from '@tally/core';
import type { FastifyPluginAsync } from 'fastify';
import type { AppContext } from '../context.js';

interface Rejection {
  index: number;
  id: string | null;
  code: string;
  message: string;
}

export const eventRoutes: FastifyPluginAsync<AppContext> = async (app, ctx) => {
  app.post('/v1/events', { bodyLimit: ctx.config.ingest.body_limit_bytes }, async (request, reply) => {
    const principal = await ctx.auth.authenticate(request, ['admin', 'member']);
    const body = request.body;
    if (!isObject(body) || !Array.isArray(body['events'])) {
      throw new TallyError('invalid_request', 'The body must be {"events": [...]}.');
    }
    const events = body['events'] as unknown[];
    if (events.length > ctx.config.ingest.max_batch) {
      throw new TallyError(
        'batch_too_large',
        `The batch holds ${events.length} events; the limit is ${ctx.config.ingest.max_batch}.`,
      );
    }
    const calls: CallRecord[] = [];
    const tasks: TaskEventRecord[] = [];
    const rejected: Rejection[] = [];
    const pctx = { tenant: principal.tenant, price: ctx.price };
    for (let i = 0; i < events.length; i++) {
      const raw = events[i];
      try {
        const parsed = parseEvent(raw, pctx);
        if (
          principal.role === 'member' &&
          parsed.kind === 'call' &&
          parsed.record.project !== principal.project
        ) {
          throw new FieldError('project', `this key may only send events for project ${principal.project}`);
        }
        if (parsed.kind === 'call') calls.push(parsed.record);
        else tasks.push(parsed.record);
      } catch (err) {
        if (!(err instanceof FieldError)) throw err;
        const id = isObject(raw) && typeof raw['id'] === 'string' ? raw['id'] : null;
        rejected.push({ index: i, id, code: 'invalid_event', message: err.message });
      }
    }
    // Resolves once committed; the store merges concurrent requests into one transaction.
    const written = calls.length + tasks.length > 0 ? await ctx.store.ingest({ calls, tasks }) : null;
    let unpriced = 0;
    for (const c of calls) if (c.pricing_status === 'unpriced') unpriced++;
    ctx.metrics.eventsAccepted.inc({ kind: 'call' }, calls.length);
    ctx.metrics.eventsAccepted.inc({ kind: 'task' }, tasks.length);
    if (rejected.length) ctx.metrics.eventsRejected.inc(rejected.length);
    if (unpriced) ctx.metrics.unpricedCalls.inc(unpriced);
    return reply.send({
      accepted: calls.length + tasks.length,
      duplicates: written?.duplicates ?? 0,
      rejected,
    });
  });
};
