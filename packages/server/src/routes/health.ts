import type { FastifyPluginAsync } from 'fastify';
import type { AppContext } from '../context.js';

export const healthRoutes: FastifyPluginAsync<AppContext> = async (app, ctx) => {
  app.get('/healthz', async () => ({
    status: 'ok',
    store: ctx.store.info.kind,
    schema_version: ctx.store.info.schemaVersion,
    price_version: ctx.priceVersion,
  }));

  app.get('/metrics', async (_request, reply) => {
    const text = await ctx.metrics.registry.metrics();
    return reply.header('content-type', ctx.metrics.registry.contentType).send(text);
  });
};
