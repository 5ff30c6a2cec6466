import { RedisState } from '@tally/gateway';
import type { FastifyPluginAsync } from 'fastify';
import type { AppContext } from '../context.js';

/** How long the store may take to answer a health check before it counts as down. */
const PROBE_TIMEOUT_MS = 2000;

async function probeStore(ctx: AppContext): Promise<{ ok: boolean; ms: number; error?: string }> {
  const t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      ctx.store.memory(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer in ${PROBE_TIMEOUT_MS} ms`)), PROBE_TIMEOUT_MS);
      }),
    ]);
    return { ok: true, ms: Math.round((performance.now() - t0) * 10) / 10 };
  } catch (err) {
    return { ok: false, ms: Math.round(performance.now() - t0), error: (err as Error).message };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * /healthz (liveness: 200 while the process serves) and /readyz (503 while the store cannot
 * answer). Both report the store's probe and the metering: calls pending in memory, spooled to
 * disk, failed writes in a row and calls lost. Metering that fails makes the status "degraded"
 * but not unready: the gateway still serves, and its calls wait on disk.
 */
export const healthRoutes: FastifyPluginAsync<AppContext> = async (app, ctx) => {
  const report = async () => {
    const store = await probeStore(ctx);
    const m = ctx.metering;
    const metering = m
      ? {
          ok: m.failing === 0,
          pending_calls: m.pending,
          spooled_calls: m.spooled,
          spooled_bytes: m.spooledBytes,
          spool_limit_bytes: m.spoolLimitBytes,
          failed_writes: m.failing,
          dropped_calls: m.dropped,
          rejected_calls: ctx.rejectedCalls?.count ?? 0,
        }
      : null;
    // Redis, when budgets and limits live there: a call cannot be checked without it.
    const redisError = ctx.state instanceof RedisState ? ctx.state.lastError : undefined;
    const state =
      redisError === undefined
        ? { kind: 'memory', ok: true }
        : { kind: 'redis', ok: redisError === null, ...(redisError ? { error: redisError } : {}) };
    return {
      status: store.ok && (metering?.ok ?? true) && state.ok ? 'ok' : 'degraded',
      store: ctx.store.info.kind,
      schema_version: ctx.store.info.schemaVersion,
      price_version: ctx.priceVersion,
      checks: {
        store: { ok: store.ok, latency_ms: store.ms, ...(store.error ? { error: store.error } : {}) },
        ...(metering ? { metering } : {}),
        state,
      },
    };
  };

  app.get('/healthz', report);

  app.get('/readyz', async (_request, reply) => {
    const r = await report();
    return reply.code(r.checks.store.ok ? 200 : 503).send(r);
  });

  app.get('/metrics', async (_request, reply) => {
    const text = await ctx.metrics.registry.metrics();
    return reply.header('content-type', ctx.metrics.registry.contentType).send(text);
  });
};
