import type { CallRecord } from '@tally/core';
import { isObject, TallyError } from '@tally/core';
import type { FastifyPluginAsync } from 'fastify';
import type { AppContext } from '../context.js';
import { alertSchema, callFromWire, REPLICA_MAX_BATCH, ruleToWire } from '../replica-wire.js';
import { toProviderConfig } from './providers.js';

/**
 * What a gateway replica (`tally gateway`) needs from the server: key lookups, budget rules,
 * providers added through the API, and a place for its metering and alerts. Every route takes an
 * admin key and answers for that key's tenant only.
 */
export const replicaControlRoutes: FastifyPluginAsync<AppContext> = async (app, ctx) => {
  app.get('/v1/gateway/keys/:hash', async (request) => {
    const principal = await ctx.auth.authenticate(request, ['admin']);
    const { hash } = request.params as { hash: string };
    if (!/^[0-9a-f]{64}$/.test(hash))
      throw new TallyError('invalid_request', 'hash must be a SHA-256 in hex.');
    const key = await ctx.auth.gatewayKey(hash);
    if (!key || key.tenant !== principal.tenant) throw new TallyError('not_found', 'No such key.');
    return { key };
  });

  app.get('/v1/gateway/budgets', async (request) => {
    const principal = await ctx.auth.authenticate(request, ['admin']);
    return { data: (await ctx.budgets.rules(principal.tenant)).map(ruleToWire) };
  });

  app.get('/v1/gateway/providers', async (request) => {
    const principal = await ctx.auth.authenticate(request, ['admin']);
    const stored = await ctx.store.listProviders();
    return {
      data: stored.filter((p) => p.tenant === principal.tenant).map((p) => toProviderConfig(p, ctx.secrets)),
    };
  });

  app.post('/v1/gateway/calls', async (request, reply) => {
    const principal = await ctx.auth.authenticate(request, ['admin']);
    const body = request.body;
    if (!isObject(body) || !Array.isArray(body['calls']))
      throw new TallyError('invalid_request', 'The body must be {"calls": [...]}.');
    const raw = body['calls'] as unknown[];
    if (raw.length > REPLICA_MAX_BATCH) {
      throw new TallyError(
        'batch_too_large',
        `At most ${REPLICA_MAX_BATCH} calls a batch; got ${raw.length}.`,
      );
    }
    const calls: CallRecord[] = [];
    const rejected: { index: number; code: string; message: string }[] = [];
    raw.forEach((r, index) => {
      const c = callFromWire(r);
      if (typeof c === 'string') rejected.push({ index, code: 'invalid_event', message: c });
      else if (c.tenant !== principal.tenant)
        rejected.push({ index, code: 'forbidden', message: `tenant ${c.tenant} is not this key's` });
      else calls.push(c);
    });
    // Fast append for new ids; a retried batch falls back to the idempotent path, so a replica
    // that resends after a timeout counts nothing twice.
    const written = calls.length > 0 ? await ctx.store.appendCalls(calls) : { inserted: 0, duplicates: 0 };
    ctx.metrics.eventsAccepted.inc({ kind: 'gateway_call' }, written.inserted);
    return reply.send({ accepted: calls.length, duplicates: written.duplicates, rejected });
  });

  app.post('/v1/gateway/alerts', async (request) => {
    const principal = await ctx.auth.authenticate(request, ['admin']);
    const body = request.body;
    if (!isObject(body) || !Array.isArray(body['alerts']))
      throw new TallyError('invalid_request', 'The body must be {"alerts": [...]}.');
    let accepted = 0;
    for (const raw of body['alerts'] as unknown[]) {
      const a = alertSchema.safeParse(raw);
      if (!a.success) throw new TallyError('invalid_request', `An alert is not valid: ${a.error.message}`);
      ctx.alerts.emit({ ...a.data, tenant: principal.tenant });
      accepted++;
    }
    return { accepted };
  });
};
