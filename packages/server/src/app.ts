import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { type Clock, type Pricer, systemClock } from '@tally/core';
import {
  applies,
  BatchingSink,
  ChunkSpool,
  Gateway,
  holding,
  type MaxOutput,
  MemoryState,
  RealtimeSessions,
  RedisState,
  type SharedState,
  uuidv7,
} from '@tally/gateway';
import { type CallBatch, EARLIER_CALL_CSV, type Store } from '@tally/store';
import Fastify, { type FastifyInstance, type FastifyServerOptions, LogController } from 'fastify';
import { Authenticator, hashKey } from './auth.js';
import { AlertService, BudgetCache, seedSpend } from './budgets.js';
import { Cached } from './cached.js';
import type { TallyConfig } from './config.js';
import type { AppContext } from './context.js';
import { corsFor } from './cors.js';
import { errorHandler, notFoundHandler } from './errors.js';
import { createListener } from './listener.js';
import { meteringWriter } from './metering-write.js';
import { ServerMetrics } from './metrics.js';
import { toRateRule } from './rate-limits.js';
import { budgetRoutes } from './routes/budgets.js';
import { eventRoutes } from './routes/events.js';
import { healthRoutes } from './routes/health.js';
import { keyRoutes } from './routes/keys.js';
import { providerRoutes, toProviderConfig } from './routes/providers.js';
import { queryRoutes } from './routes/queries.js';
import { rateLimitRoutes } from './routes/rate-limits.js';
import { replicaControlRoutes } from './routes/replica-control.js';
import { scorecardRoutes } from './routes/scorecard.js';
import { useCaseRoutes } from './routes/use-cases.js';
import { defaultPeriod, scorecardFor } from './scorecards.js';
import { SecretBox } from './secrets.js';

export interface BuildAppOptions {
  config: TallyConfig;
  store: Store;
  price: Pricer;
  priceVersion: string;
  /** The most output a model may write in one call, from the catalog (see GatewayDeps). */
  maxOutput?: MaxOutput;
  clock?: Clock;
  /** A pino logger config or false; defaults to the config's log level. */
  logger?: boolean | Record<string, unknown>;
  /** Collect process-level metrics (off in tests that build many apps). */
  processMetrics?: boolean;
  /** Budget and rate-limit state shared by replicas; by default from config. */
  state?: SharedState;
  /** The 32-byte key that encrypts provider secrets at rest. */
  secretKey: Buffer;
  /** Where metered calls that cannot be written yet are kept on disk; none keeps them only in
   * memory (bounded, the oldest dropped past it). */
  spoolDir?: string;
}

export interface TallyApp {
  app: FastifyInstance;
  ctx: AppContext;
  gateway: Gateway;
  /** Stops accepting requests, waits for those in flight, and flushes metering (the store stays open). */
  close(): Promise<void>;
}

type Compilers = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>;

/**
 * Fastify's Ajv validator and fast-json-stringify serializer, loaded only if a route declares a JSON
 * schema; none does (bodies are checked with zod). Fastify otherwise loads both when the app is
 * built. Fastify treats compilers given this way as custom, and would then take a `headers`
 * schema's property names as written rather than lowercased.
 */
function onDemandCompilers(): Compilers {
  const fromFastify = createRequire(createRequire(import.meta.url).resolve('fastify'));
  const onDemand = (pkg: string) => {
    let factory: ((...args: unknown[]) => unknown) | null = null;
    return (...args: unknown[]) => {
      factory ??= (fromFastify(pkg) as () => (...a: unknown[]) => unknown)();
      return factory(...args);
    };
  };
  return {
    buildValidator: onDemand('@fastify/ajv-compiler'),
    buildSerializer: onDemand('@fastify/fast-json-stringify-compiler'),
  } as unknown as Compilers;
}

export async function buildApp(opts: BuildAppOptions): Promise<TallyApp> {
  const { config, store } = opts;
  const clock = opts.clock ?? systemClock;
  // Gateway paths go straight to the gateway; everything else to Fastify's router.
  let gateway: Gateway | null = null;
  const cors = corsFor(config.cors_origins);
  const app = Fastify({
    serverFactory: (handler) =>
      createListener(config.tls, (req, res) => {
        if (cors?.(req, res)) return;
        const endpoint = gateway ? Gateway.route(req.method, req.url) : null;
        if (endpoint && gateway) {
          metrics.gateway.count(res, endpoint);
          void gateway.serve(req, res, endpoint);
        } else handler(req, res);
      }).on('upgrade', (req, socket, head) => {
        // A realtime session's WebSocket; no other upgrade is taken.
        if (gateway && RealtimeSessions.wants(req.url)) void gateway.realtime.upgrade(req, socket, head);
        else socket.destroy();
      }),
    logger: opts.logger ?? (config.log_level === 'silent' ? false : { level: config.log_level }),
    bodyLimit: config.ingest.body_limit_bytes,
    // Per-request log lines cost throughput on the ingest path; metrics count requests instead.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    schemaController: { compilersFactory: onDemandCompilers() },
  });
  const metrics = new ServerMetrics(opts.processMetrics ?? true);
  metrics.watchStore(store);
  const state: SharedState =
    opts.state ??
    (config.gateway.state.kind === 'redis' ? new RedisState(config.gateway.state.url) : new MemoryState());
  const ctx: AppContext = {
    config,
    store,
    clock,
    price: opts.price,
    priceVersion: opts.priceVersion,
    auth: new Authenticator(store, clock, config.tenant, {
      admin: config.admin_key ? hashKey(config.admin_key) : null,
      gateway: config.gateway_key ? hashKey(config.gateway_key) : null,
    }),
    metrics,
    state,
    // Each budget's spend is raised, when first read, to what the store holds for its period: the
    // in-process state starts empty, and Redis may never have seen it (a budget made mid-period) or
    // have lost it (flushed, evicted, replaced). Raising never lowers, so spend Redis already has
    // from replicas, ahead of the store, is kept.
    budgets: new BudgetCache(
      store,
      () => clock.now(),
      2000,
      (tenant, rules) => seedSpend(store, state, tenant, rules, clock.now()),
    ),
    rateLimits: new Cached(
      (tenant: string) => store.listRateLimits(tenant).then((list) => list.map(toRateRule)),
      () => 2000,
      () => clock.now(),
      { keepLastOnError: false },
    ),
    alerts: new AlertService(
      store,
      app.log,
      config.gateway.alert_webhook_url,
      1000,
      config.gateway.alert_webhook_secret,
    ),
    secrets: new SecretBox(opts.secretKey),
    // The gates read the scorecard of the default period.
    gateEvidence: async (rec) =>
      (await scorecardFor(store, rec, defaultPeriod(clock.now()), clock.now())).gateEvidence,
  };
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.httpRequests.inc({ route, status: String(reply.statusCode) });
    metrics.httpDuration.observe({ route }, reply.elapsedTime / 1000);
  });
  await app.register(healthRoutes, ctx);
  await app.register(eventRoutes, ctx);
  await app.register(queryRoutes, ctx);
  await app.register(keyRoutes, ctx);
  await app.register(budgetRoutes, ctx);
  await app.register(rateLimitRoutes, ctx);
  await app.register(replicaControlRoutes, ctx);
  await app.register(useCaseRoutes, ctx);
  await app.register(scorecardRoutes, ctx);

  const spool = opts.spoolDir
    ? new ChunkSpool<CallBatch>(
        opts.spoolDir,
        {
          format: store.newCallBatch().format,
          bytes: (b) => b.bytes,
          restore: (bytes) => store.restoreCallBatch(store.newCallBatch().format, bytes),
          // A spool left by an earlier version (a crash before an upgrade) is stored too.
          earlier: Object.fromEntries(
            Object.keys(EARLIER_CALL_CSV).map((f) => [
              f,
              (bytes: Buffer) => store.restoreCallBatch(f, bytes),
            ]),
          ),
        },
        { maxBytes: config.gateway.spool_max_mb * 1024 * 1024 },
      )
    : undefined;
  // A call the store cannot take is set aside, next to the spool, and the rest of its batch stored.
  const writer = meteringWriter(
    store,
    metrics,
    app.log,
    opts.spoolDir ? join(dirname(opts.spoolDir), 'rejected') : undefined,
  );
  ctx.rejectedCalls = writer.rejected;
  const sink = new BatchingSink<CallBatch>({
    // Each call is encoded into the store's bulk format as it is metered.
    newChunk: () => store.newCallBatch(),
    write: writer.write,
    // Large, infrequent batches: each store write has a fixed cost (a file, a transaction, a
    // commit). 5,000 calls a batch cost 16 µs a call against 18 at 2,000; a chunk of them is
    // about 2 MB of CSV, outside the heap. Calls show in /v1/calls within a second.
    maxBatch: 5000,
    intervalMs: 1000,
    ...(spool ? { spool } : {}),
    onError: (err, pending) =>
      app.log.warn({ err, pending, spooled: sink.spooled }, 'metering sink write failed; retrying'),
  });
  metrics.watchSink(sink);
  ctx.metering = sink;
  gateway = new Gateway({
    config: config.gateway,
    price: opts.price,
    priceVersion: opts.priceVersion,
    ...(opts.maxOutput ? { maxOutput: opts.maxOutput } : {}),
    sink,
    resolveKey: (hash) => ctx.auth.gatewayKey(hash),
    clock,
    newId: () => uuidv7(clock.now()),
    state,
    budgets: async (key, attribution) =>
      (await ctx.budgets.rules(key.tenant)).filter((r) => applies(r, key, attribution)),
    // Read without a promise while the tenant's limits are at hand: most calls.
    rateLimits: (key, attribution) => holding(ctx.rateLimits.get(key.tenant), key, attribution),
    alerts: (alert) => ctx.alerts.emit(alert),
    onError: (err, what) => app.log.warn({ err }, `${what} failed; trying again`),
    // Background calls being watched are kept beside the spool, to outlive the process.
    ...(opts.spoolDir ? { backgroundDir: join(dirname(opts.spoolDir), 'background') } : {}),
  });
  metrics.watchBackground(gateway);
  const gw = gateway;
  ctx.downgradeProblem = (model, tenant) => gw.downgradeProblem(model, tenant);
  // Providers added through the API join the configured ones.
  const refreshProviders = async () => {
    const stored = await store.listProviders();
    gw.setProviders([...config.gateway.providers, ...stored.map((p) => toProviderConfig(p, ctx.secrets))]);
  };
  await refreshProviders();
  const missing = gw.router.missingProviders();
  if (missing.length > 0) {
    app.log.warn(
      { providers: missing },
      'gateway.routes name providers that are not configured (nor added through POST /v1/providers): calls to those routes skip them',
    );
  }
  await app.register(providerRoutes, { ...ctx, refreshProviders });
  // Rolls up what ingest touched every 30 s, so that a scorecard read never has a backlog to clear.
  const rollups = setInterval(() => {
    store
      .refreshRollups()
      .catch((err: unknown) => app.log.warn({ err }, 'rollup refresh failed; the next read retries'));
  }, 30_000);
  rollups.unref();
  return {
    app,
    ctx,
    gateway: gw,
    async close() {
      clearInterval(rollups);
      // The HTTP server's close waits for every connection, a realtime session's too.
      await gw.realtime.close();
      await app.close();
      await gw.close();
      // The alerts are stored; a webhook still retrying has two seconds more.
      await ctx.alerts.drain(2000);
      if (!opts.state) await state.close();
    },
  };
}
