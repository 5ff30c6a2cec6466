// The HTTP floor for ingest: Fastify parses the same JSON body and acknowledges it without
// validating, pricing or storing anything.
import Fastify from 'fastify';

const app = Fastify({ bodyLimit: 16 * 1024 * 1024 });
app.post('/v1/events', async (req) => ({ accepted: req.body.events.length, rejected: [] }));
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });
console.log('listening');
