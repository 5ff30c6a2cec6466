import type { Endpoint, Gateway } from '@tally/gateway';
import type { FastifyPluginAsync } from 'fastify';
import type { AppContext } from '../context.js';

const POST_ROUTES: [string, Endpoint][] = [
  ['/v1/chat/completions', 'chat'],
  ['/v1/responses', 'responses'],
  ['/v1/embeddings', 'embeddings'],
  ['/v1/messages', 'messages'],
];

/**
 * Mounts the gateway on the server's port. The body is kept as the client's bytes (the gateway
 * forwards them unchanged), and the gateway writes the raw response itself, so that streams pass
 * through chunk by chunk.
 */
export const gatewayRoutes: FastifyPluginAsync<AppContext & { gateway: Gateway }> = async (app, ctx) => {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    '*',
    { parseAs: 'buffer', bodyLimit: ctx.config.gateway.body_limit_bytes },
    (_req, body, done) => done(null, body),
  );
  for (const [url, endpoint] of POST_ROUTES) {
    app.post(url, async (request, reply) => {
      reply.hijack();
      const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      await ctx.gateway.handle(request.raw, reply.raw, endpoint, body);
    });
  }
  app.get('/v1/models', async (request, reply) => {
    reply.hijack();
    await ctx.gateway.models(request.raw, reply.raw);
  });
};
