import type { Server } from 'node:http';
import { dirname, join } from 'node:path';
import { type Clock, type Pricer, systemClock, TallyError } from '@tally/core';
import {
  BatchingSink,
  type BudgetAlert,
  type BudgetRule,
  backoffMs,
  ChunkPartlyWritten,
  ChunkSpool,
  Gateway,
  holding,
  type MaxOutput,
  MemoryState,
  type ProviderConfig,
  type RateLimitRule,
  RealtimeSessions,
  RedisState,
  type SharedState,
  uuidv7,
  type VirtualKey,
} from '@tally/gateway';
import { CALL_CSV_FORMAT, CsvCallBatch, csvLines, earlierCallCsv } from '@tally/store';
import { Registry } from 'prom-client';
import { Pool } from 'undici';
import { Cached } from './cached.js';
import type { TallyConfig } from './config.js';
import { corsFor } from './cors.js';
import { createListener } from './listener.js';
import { collectProcessMetrics, GatewayRequestMetrics, watchBackground, watchSink } from './metrics.js';
import {
  CALLS_FORMAT_HEADER,
  CALLS_WITH_TASKS_HEADER,
  jsonBodyOfCsv,
  REPLICA_SPOOL_CODEC,
} from './replica-csv.js';
import { REPLICA_MAX_BATCH, type RuleWire, ruleFromWire } from './replica-wire.js';

/** The server's control routes, as a replica calls them with its gateway key. */
export class ControlClient {
  private readonly pool: Pool;
  private readonly auth: string;

  constructor(
    readonly serverUrl: string,
    serverKey: string,
    private readonly now: () => number = Date.now,
  ) {
    this.pool = new Pool(new URL(serverUrl).origin, { connections: 8, keepAliveTimeout: 30_000 });
    this.auth = `Bearer ${serverKey}`;
  }

  private async call<T>(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; json: T }> {
    let res: Awaited<ReturnType<Pool['request']>>;
    try {
      res = await this.pool.request({
        method,
        path,
        headers: {
          authorization: this.auth,
          ...(body ? { 'content-type': 'application/json' } : {}),
          ...headers,
        },
        // A Buffer is a body already encoded (metered calls); anything else is sent as JSON.
        body: body === undefined ? null : Buffer.isBuffer(body) ? body : JSON.stringify(body),
        headersTimeout: 15_000,
        bodyTimeout: 15_000,
      });
    } catch (err) {
      throw new TallyError(
        'server_unreachable',
        `Cannot reach the Tally server at ${this.serverUrl} (${(err as { code?: string }).code ?? (err as Error).message}). Is "tally start" running there?`,
      );
    }
    const json = (await res.body.json()) as T & { error?: { code?: string; message?: string } };
    if (res.statusCode === 401 || res.statusCode === 403) {
      throw new TallyError(
        'gateway_key_refused',
        `The Tally server at ${this.serverUrl} answered ${method} ${path} with ${res.statusCode}: a replica needs a gateway key, the server's gateway_key (TALLY_GATEWAY_KEY) or one made with "tally keys create --role gateway", not revoked.`,
      );
    }
    if (res.statusCode >= 500) {
      throw new TallyError(
        'server_unreachable',
        `The Tally server at ${this.serverUrl} answered ${method} ${path} with ${res.statusCode}: ${json.error?.message ?? ''}`,
      );
    }
    return { status: res.statusCode, json };
  }

  async key(hash: string): Promise<VirtualKey | null> {
    const r = await this.call<{ key?: VirtualKey }>('GET', `/v1/gateway/keys/${hash}`);
    return r.status === 200 && r.json.key ? r.json.key : null;
  }

  async budgets(): Promise<BudgetRule[]> {
    const r = await this.call<{ data: RuleWire[] }>('GET', '/v1/gateway/budgets');
    return r.json.data.map(ruleFromWire);
  }

  /** A server of an earlier version has no rate limits of scopes to give (a 404): none. */
  async rateLimits(): Promise<RateLimitRule[]> {
    const r = await this.call<{ data?: RateLimitRule[] }>('GET', '/v1/gateway/rate-limits');
    return r.status === 200 && Array.isArray(r.json.data) ? r.json.data : [];
  }

  async providers(): Promise<ProviderConfig[]> {
    return (await this.call<{ data: ProviderConfig[] }>('GET', '/v1/gateway/providers')).json.data;
  }

  /** The layout a server of an earlier version names (null: none, a server without CSV), and
   * until when it is taken to read no other. */
  private older: { layout: string | null; until: number } | null = null;

  async writeCalls(calls: CsvCallBatch): Promise<{ accepted: number; duplicates: number }> {
    type Written = {
      accepted: number;
      duplicates: number;
      rejected: { index: number; code: string; message: string }[];
    };
    const asJson = () => this.call<Written>('POST', '/v1/gateway/calls', jsonBodyOfCsv(calls.bytes));
    const asCsv = (layout: string, bytes: Buffer) =>
      this.call<Written>('POST', '/v1/gateway/calls', bytes, {
        'content-type': 'text/csv',
        [CALLS_FORMAT_HEADER]: layout,
        [CALLS_WITH_TASKS_HEADER]: calls.withTasks ? '1' : '0',
      });
    /** In the layout a server of an earlier version takes: a CSV layout this version knows (each
     * line without the fields that came after), else JSON. */
    const asOlder = (layout: string | null) => {
      const bytes = layout === null ? null : earlierCallCsv(layout, calls.bytes);
      return bytes === null ? asJson() : asCsv(layout!, bytes);
    };
    const older = this.older !== null && this.now() < this.older.until ? this.older : null;
    let r: { status: number; json: Written };
    if (older) r = await asOlder(older.layout);
    else {
      r = await asCsv(CALL_CSV_FORMAT, calls.bytes);
      if (r.status === 415) {
        // A server of an earlier version, which names its layout: this one is asked again in
        // ten minutes.
        this.older = { layout: serverLayout(r.json), until: this.now() + 600_000 };
        r = await asOlder(this.older.layout);
      }
    }
    if (r.status !== 200) {
      throw new TallyError('invalid_event', `The server refused metered calls: ${JSON.stringify(r.json)}`);
    }
    if (r.json.rejected.length > 0) {
      // The server kept the others: only the refused calls are kept to be sent again.
      const lines = csvLines(calls.bytes);
      const refused = r.json.rejected.map((x) => lines[x.index]).filter((l) => l !== undefined);
      const rest = new CsvCallBatch(Buffer.from(refused.map((l) => `${l}\n`).join(''), 'utf8'));
      const first = r.json.rejected[0]!;
      throw new ChunkPartlyWritten(
        rest,
        `The server refused ${r.json.rejected.length} of ${calls.rows} metered calls (the first, ` +
          `${first.code}: ${first.message}); they are kept and sent again later, the others are stored.`,
      );
    }
    return r.json;
  }

  async alert(alert: BudgetAlert): Promise<void> {
    await this.call('POST', '/v1/gateway/alerts', { alerts: [alert] });
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

export interface ReplicaOptions {
  config: TallyConfig;
  /** The key the replica presents to the server's control routes: a gateway key. */
  serverKey: string;
  price: Pricer;
  priceVersion: string;
  /** The most output a model may write in one call, from the catalog (see GatewayDeps). */
  maxOutput?: MaxOutput;
  clock?: Clock;
  state?: SharedState;
  onError?: (err: unknown, what: string) => void;
  /** Where metered calls that the server cannot take yet are kept on disk; none keeps them only
   * in memory (bounded, the oldest dropped past it). */
  spoolDir?: string;
  /** Node's process metrics in /metrics (default true; tests that build many replicas turn them off). */
  processMetrics?: boolean;
}

export interface GatewayReplica {
  server: Server;
  gateway: Gateway;
  control: ControlClient;
  /** Re-reads the providers added through the server's API. */
  refreshProviders(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A stateless gateway process: the same Gateway as the server mounts, without a store. Keys,
 * budgets and API-added providers come from the server (cached for `replica_cache_ms`), metered
 * calls go back to it in batches (idempotent by call id, so a resent batch counts once), and
 * budget and rate-limit state lives in this process or, for several replicas, in Redis.
 */
export async function buildReplica(opts: ReplicaOptions): Promise<GatewayReplica> {
  const { config } = opts;
  const serverUrl = config.gateway.server_url;
  if (!serverUrl) {
    throw new TallyError(
      'config_invalid',
      'A gateway replica needs the server it reports to: pass --server http://HOST:4000 or set TALLY_SERVER_URL.',
    );
  }
  const clock = opts.clock ?? systemClock;
  const now = () => clock.now();
  const ttl = config.gateway.replica_cache_ms;
  const control = new ControlClient(serverUrl, opts.serverKey, now);
  const onError = opts.onError ?? (() => undefined);
  const state: SharedState =
    opts.state ??
    (config.gateway.state.kind === 'redis' ? new RedisState(config.gateway.state.url) : new MemoryState());

  // An unknown key is asked about again sooner than a known one is re-checked.
  const keys = new Cached<string, VirtualKey | null>(
    (hash) => control.key(hash),
    (v) => (v ? ttl : Math.min(ttl, 1000)),
    now,
  );
  const rules = new Cached<'rules', BudgetRule[]>(
    () => control.budgets(),
    () => ttl,
    now,
  );
  const rateLimits = new Cached<'rules', RateLimitRule[]>(
    () => control.rateLimits(),
    () => ttl,
    now,
  );
  const sink = new BatchingSink<CsvCallBatch>({
    newChunk: () => new CsvCallBatch(),
    ...(opts.spoolDir
      ? {
          spool: new ChunkSpool(opts.spoolDir, REPLICA_SPOOL_CODEC, {
            maxBytes: opts.config.gateway.spool_max_mb * 1024 * 1024,
          }),
        }
      : {}),
    write: async (chunk) => {
      await control.writeCalls(chunk);
    },
    // At the server's REPLICA_MAX_BATCH. Each batch costs the server a fixed ~7 ms (a request, a
    // file, a transaction, a commit) besides its cost a call: at 500 a batch that doubled the
    // metering's CPU. A full chunk is about 2 MB of CSV, outside the heap.
    maxBatch: REPLICA_MAX_BATCH,
    intervalMs: 1000,
    onError: (err) => onError(err, 'metering'),
  });
  const alerts = new AlertRelay(
    (a) => control.alert(a),
    (err) => onError(err, 'alert'),
  );
  const gateway = new Gateway({
    config: config.gateway,
    price: opts.price,
    priceVersion: opts.priceVersion,
    ...(opts.maxOutput ? { maxOutput: opts.maxOutput } : {}),
    sink,
    resolveKey: async (hash) => keys.get(hash),
    clock,
    newId: () => uuidv7(clock.now()),
    state,
    budgets: (key, attribution) => holding(rules.get('rules'), key, attribution),
    rateLimits: (key, attribution) => holding(rateLimits.get('rules'), key, attribution),
    alerts: (alert) => alerts.push(alert),
    onError: (err, what) => onError(err, what),
    ...(opts.spoolDir ? { backgroundDir: join(dirname(opts.spoolDir), 'background') } : {}),
  });
  const refreshProviders = async () => {
    gateway.setProviders([...config.gateway.providers, ...(await control.providers())]);
  };
  await refreshProviders();
  const refresher = setInterval(
    () => {
      refreshProviders().catch((err: unknown) => onError(err, 'providers'));
    },
    Math.max(ttl, 1000),
  );
  refresher.unref();

  // The replica's own metrics: its gateway requests, its metering sink, and the process.
  const registry = new Registry();
  if (opts.processMetrics ?? true) collectProcessMetrics(registry);
  const requests = new GatewayRequestMetrics(registry);
  watchSink(registry, sink);
  watchBackground(registry, gateway);
  const cors = corsFor(config.cors_origins);
  const server = createListener(config.tls, (req, res) => {
    if (cors?.(req, res)) return;
    const endpoint = Gateway.route(req.method, req.url);
    if (endpoint) {
      requests.count(res, endpoint);
      return void gateway.serve(req, res, endpoint);
    }
    if (req.method === 'GET' && req.url === '/metrics') {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(text);
        },
        (err: unknown) => {
          onError(err, 'metrics');
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: { code: 'internal', message: 'The metrics could not be read.' } }));
        },
      );
      return;
    }
    const stateError = state instanceof RedisState ? state.lastError : null;
    const body =
      req.method === 'GET' && req.url === '/healthz'
        ? {
            // Metering that fails is "degraded": calls still go through, and wait on disk. Redis
            // out of reach is too: calls under budgets or limits are refused until it is back.
            status: sink.failing === 0 && !stateError ? 'ok' : 'degraded',
            ...(stateError ? { state_error: stateError } : {}),
            role: 'gateway',
            server: serverUrl,
            pending_calls: sink.pending,
            spooled_calls: sink.spooled,
            spooled_bytes: sink.spooledBytes,
            spool_limit_bytes: sink.spoolLimitBytes,
            failed_writes: sink.failing,
            dropped_calls: sink.dropped,
            refused_calls: sink.refused,
            pending_alerts: alerts.pending,
            memory: process.memoryUsage(),
          }
        : { error: { code: 'not_found', message: `${req.method} ${req.url} is not a gateway route.` } };
    const text = JSON.stringify(body);
    res.writeHead('status' in body ? 200 : 404, { 'content-type': 'application/json' });
    res.end(text);
  }).on('upgrade', (req, socket, head) => {
    // A realtime session's WebSocket; no other upgrade is taken.
    if (RealtimeSessions.wants(req.url)) void gateway.realtime.upgrade(req, socket, head);
    else socket.destroy();
  });
  return {
    server,
    gateway,
    control,
    refreshProviders,
    async close() {
      clearInterval(refresher);
      // The HTTP server's close waits for every connection, a realtime session's too.
      await gateway.realtime.close();
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeIdleConnections();
      });
      await gateway.close();
      await alerts.close();
      await control.close();
      if (!opts.state) await state.close();
    },
  };
}

/**
 * A replica's alerts on their way to the server, which stores them and calls the webhook. One the
 * server does not take (it is restarting, say) is sent again, 1 s doubling to a minute, for as long
 * as the replica runs: an alert is raised once a period, so one lost is never raised again. The
 * server keeps each alert once, so one sent twice (its answer lost) counts once. At most 1,000 wait.
 */
export class AlertRelay {
  private readonly waiting: { alert: BudgetAlert; tries: number }[] = [];
  private timer: NodeJS.Timeout | null = null;
  private sending: Promise<void> | null = null;

  constructor(
    private readonly send: (alert: BudgetAlert) => Promise<void>,
    private readonly onError: (err: unknown) => void,
    private readonly baseDelayMs = 1000,
  ) {}

  get pending(): number {
    return this.waiting.length;
  }

  push(alert: BudgetAlert): void {
    if (this.waiting.length >= 1000) this.waiting.shift();
    this.waiting.push({ alert, tries: 0 });
    this.kick(0);
  }

  private kick(ms: number): void {
    if (this.timer || this.sending) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.sending = this.drain().then((retryMs) => {
        this.sending = null;
        if (retryMs !== null) this.kick(retryMs);
      });
    }, ms);
    this.timer.unref();
  }

  /** Sends what waits, in order; on a failure, how long to wait before the next try. */
  private async drain(): Promise<number | null> {
    while (this.waiting.length > 0) {
      const next = this.waiting[0]!;
      try {
        await this.send(next.alert);
        this.waiting.shift();
      } catch (err) {
        next.tries++;
        this.onError(err);
        return backoffMs(next.tries, this.baseDelayMs);
      }
    }
    return null;
  }

  /** One last try for what waits. */
  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.sending;
    for (const w of this.waiting.splice(0)) await this.send(w.alert).catch(this.onError);
  }
}

/** The CSV layout a server's 415 names: in its details, or (a server of the version before these
 * were given) in its message. */
function serverLayout(answer: unknown): string | null {
  const error = (answer as { error?: { message?: unknown; details?: { layout?: unknown } } } | null)?.error;
  const given = error?.details?.layout;
  if (typeof given === 'string') return given;
  const m =
    typeof error?.message === 'string'
      ? /must be of layout (duckdb-csv-[0-9a-f]{12})/.exec(error.message)
      : null;
  return m ? m[1]! : null;
}
