import type { ServerResponse } from 'node:http';
import { errorCodeOf } from '@tally/gateway';
import type { Store } from '@tally/store';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** Prometheus metrics of one server instance (its own registry, so tests can build many apps). */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly httpRequests = new Counter({
    name: 'tally_http_requests_total',
    help: 'HTTP requests by route and status code.',
    labelNames: ['route', 'status'] as const,
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: 'tally_http_request_duration_seconds',
    help: 'HTTP request duration by route.',
    labelNames: ['route'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  /** The gateway's requests, which do not pass through Fastify's hooks. */
  readonly gateway = new GatewayRequestMetrics(this.registry);
  readonly eventsAccepted = new Counter({
    name: 'tally_ingest_events_accepted_total',
    help: 'Events acknowledged as durable, by kind.',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly eventsRejected = new Counter({
    name: 'tally_ingest_events_rejected_total',
    help: 'Events rejected at ingest.',
    registers: [this.registry],
  });
  readonly callsRejected = new Counter({
    name: 'tally_metering_calls_rejected_total',
    help: 'Metered calls the store refused, set aside one by one so that the rest of their batch is stored.',
    registers: [this.registry],
  });
  readonly unpricedCalls = new Counter({
    name: 'tally_ingest_unpriced_calls_total',
    help: 'LLM calls ingested that the price catalog could not price.',
    registers: [this.registry],
  });

  constructor(withDefaults = true) {
    if (withDefaults) collectProcessMetrics(this.registry);
  }

  /** The store's memory, read at each scrape: what it holds, its limit, and what it spilled. */
  watchStore(store: Store): void {
    new Gauge({
      name: 'tally_store_memory_bytes',
      help: "The store's memory in this process: used (data, indexes, queries), limit, and spilled to temporary files.",
      labelNames: ['kind'] as const,
      registers: [this.registry],
      async collect() {
        try {
          const m = await store.memory();
          this.set({ kind: 'used' }, m.usedBytes);
          this.set({ kind: 'spilled' }, m.spilledBytes);
          if (m.limitBytes !== null) this.set({ kind: 'limit' }, m.limitBytes);
        } catch {
          // A closed or failing store reports nothing rather than failing the scrape.
          this.reset();
        }
      },
    });
  }

  /** The metering sink: calls waiting in memory and on disk, failed writes in a row, calls lost. */
  watchSink(sink: WatchedSink): void {
    watchSink(this.registry, sink);
  }

  /** The gateway's background calls and batches being watched. */
  watchBackground(gateway: Watches): void {
    watchBackground(this.registry, gateway);
  }
}

/** What the gateway watches until it can meter it, and its upstreams' health. */
interface Watches {
  background: { size: number };
  batches: { size: number };
  realtime: { size: number };
  upstreamHealth(): { provider: string; failures: number; open: boolean }[];
  upstreamAttempts(): { provider: string; tier: string; outcome: string; n: number }[];
  quotaStanding(): Promise<
    { provider: string; model: string; requests: number | null; tokens: number | null }[]
  >;
}

/** The gateway's background Responses calls answered queued and watched until their responses
 * end, and its batches watched until they end (to meter them then), read at each scrape. */
export function watchBackground(registry: Registry, gateway: Watches): void {
  readAtScrape(
    registry,
    'tally_gateway_background_calls',
    'Background Responses calls answered queued and watched until their responses end, when they are metered.',
    () => gateway.background.size,
  );
  readAtScrape(
    registry,
    'tally_gateway_batches',
    'Batches sent through the gateway and watched until they end, when their requests are metered.',
    () => gateway.batches.size,
  );
  readAtScrape(
    registry,
    'tally_gateway_realtime_sessions',
    'Realtime sessions open through the gateway, metered response by response.',
    () => gateway.realtime.size,
  );
  new Gauge({
    name: 'tally_gateway_upstream_circuit_open',
    help: '1 for an upstream whose circuit is open (after failures in a row calls skip it, until a probe call succeeds), else 0.',
    labelNames: ['provider'],
    registers: [registry],
    collect() {
      this.reset();
      for (const h of gateway.upstreamHealth()) this.set({ provider: h.provider }, h.open ? 1 : 0);
    },
  });
  new Gauge({
    name: 'tally_gateway_upstream_quota_remaining',
    help: "What is left of each upstream deployment's quota (a route target's rpm and tpm) this minute, in the shared state: requests and tokens.",
    labelNames: ['provider', 'model', 'limit'],
    registers: [registry],
    async collect() {
      this.reset();
      try {
        for (const q of await gateway.quotaStanding()) {
          const at = { provider: q.provider, model: q.model };
          if (q.requests !== null) this.set({ ...at, limit: 'requests' }, q.requests);
          if (q.tokens !== null) this.set({ ...at, limit: 'tokens' }, q.tokens);
        }
      } catch {
        // A state out of reach reports nothing rather than failing the scrape.
      }
    },
  });
  new Counter({
    name: 'tally_gateway_upstream_attempts_total',
    help: "Attempts of model calls by upstream, their tier in the plan (primary, fallback, downgrade, context_fallback, policy_fallback) and outcome: ok, or the error type up to its code (upstream_500, upstream_timeout, upstream_stream_error, client_disconnected...). Retries and fallbacks show here as attempts past a request's first.",
    labelNames: ['provider', 'tier', 'outcome'],
    registers: [registry],
    collect() {
      this.reset();
      for (const a of gateway.upstreamAttempts())
        this.inc({ provider: a.provider, tier: a.tier, outcome: a.outcome }, a.n);
    },
  });
  new Gauge({
    name: 'tally_gateway_upstream_failures',
    help: 'Failures in a row of each upstream (429s, 5xx, timeouts, connection errors, unusable answers), since its last success.',
    labelNames: ['provider'],
    registers: [registry],
    collect() {
      this.reset();
      for (const h of gateway.upstreamHealth()) this.set({ provider: h.provider }, h.failures);
    },
  });
}

/** What the metrics read of a metering sink. */
interface WatchedSink {
  pending: number;
  spooled: number;
  spooledBytes: number;
  failing: number;
  dropped: number;
}

/** The metering sink's gauges in `registry`, read at each scrape: calls waiting in memory and on
 * disk, the spool's size, failed writes in a row, calls lost. */
export function watchSink(registry: Registry, sink: WatchedSink): void {
  readAtScrape(
    registry,
    'tally_metering_spool_bytes',
    'The size of the metering spool: calls kept on disk after failed writes.',
    () => sink.spooledBytes,
  );
  new Gauge({
    name: 'tally_metering_calls',
    help: 'Metered calls not yet in the store: pending in memory, or spooled to disk after failed writes.',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      this.set({ state: 'pending' }, sink.pending);
      this.set({ state: 'spooled' }, sink.spooled);
    },
  });
  readAtScrape(
    registry,
    'tally_metering_failed_writes',
    "The metering sink's failed writes in a row (0 once one succeeds).",
    () => sink.failing,
  );
  new Counter({
    name: 'tally_metering_dropped_calls_total',
    help: 'Metered calls lost: neither written nor kept on disk.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(sink.dropped);
    },
  });
}

/** A gauge of one value, read from `read` at each scrape. */
function readAtScrape(registry: Registry, name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read());
    },
  });
}

/** The buckets of the gateway's request durations, in seconds. */
/**
 * The process's own metrics (prefixed `tally_`), with the event loop's delay sampled every 100 ms:
 * prom-client's default of 10 ms wakes an idle server 100 times a second, most of what it costs
 * at rest. The delay's percentiles are then the lateness of a 100 ms timer; a loop held up for
 * longer than that shows the same.
 */
export function collectProcessMetrics(register: Registry): void {
  collectDefaultMetrics({ register, prefix: 'tally_', eventLoopMonitoringPrecision: 100 });
}

const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Requests of one endpoint, status and code, so far. */
interface Tally {
  labels: { endpoint: string; status: string; code: string };
  n: number;
}

/** The durations of one endpoint's requests: how many fell in each bucket (the last past them
 * all), their sum, and their count. */
interface Timings {
  endpoint: string;
  inBucket: number[];
  sum: number;
  n: number;
}

type MetricValue = { labels: Record<string, string | number>; value: number; metricName?: string };

/**
 * The gateway's requests: counted by endpoint, status and error code, and timed, as each answer
 * ends (or its client goes). They are counted in plain maps and shown as a counter and a
 * histogram at each scrape: prom-client's own counter and histogram check and hash their labels
 * on every call, about 3 % of a replica's CPU under load.
 */
export class GatewayRequestMetrics {
  private readonly tallies = new Map<string, Tally>();
  private readonly timings = new Map<string, Timings>();

  constructor(registry: Registry) {
    const tallies = this.tallies;
    const timings = this.timings;
    register(registry, {
      name: 'tally_gateway_requests_total',
      help: "Gateway requests by endpoint, status and error code (the gateway's own refusals, such as invalid_api_key, budget_exceeded or rate_limit_exceeded, and the upstream's failures; none for an answer).",
      type: 'counter',
      values: () => [...tallies.values()].map((t) => ({ labels: { ...t.labels }, value: t.n })),
      reset: () => tallies.clear(),
    });
    const name = 'tally_gateway_request_duration_seconds';
    register(registry, {
      name,
      help: 'Gateway request duration by endpoint, to the end of the answer (a stream: its last event).',
      type: 'histogram',
      values: () => {
        const out: MetricValue[] = [];
        for (const t of timings.values()) {
          let below = 0;
          DURATION_BUCKETS.forEach((le, i) => {
            below += t.inBucket[i]!;
            out.push({ labels: { le, endpoint: t.endpoint }, value: below, metricName: `${name}_bucket` });
          });
          out.push(
            { labels: { le: '+Inf', endpoint: t.endpoint }, value: t.n, metricName: `${name}_bucket` },
            { labels: { endpoint: t.endpoint }, value: t.sum, metricName: `${name}_sum` },
            { labels: { endpoint: t.endpoint }, value: t.n, metricName: `${name}_count` },
          );
        }
        return out;
      },
      reset: () => timings.clear(),
    });
  }

  /** Counts `res` when it closes: a status of 0 if nothing was sent before the client went. */
  count(res: ServerResponse, endpoint: string): void {
    const started = performance.now();
    res.once('close', () => {
      this.record(
        endpoint,
        res.headersSent ? res.statusCode : 0,
        errorCodeOf(res) ?? '',
        (performance.now() - started) / 1000,
      );
    });
  }

  private record(endpoint: string, status: number, code: string, seconds: number): void {
    const key = `${endpoint} ${status} ${code}`;
    const tally = this.tallies.get(key);
    if (tally) tally.n++;
    else this.tallies.set(key, { labels: { endpoint, status: String(status), code }, n: 1 });
    let t = this.timings.get(endpoint);
    if (!t) {
      t = { endpoint, inBucket: new Array<number>(DURATION_BUCKETS.length + 1).fill(0), sum: 0, n: 0 };
      this.timings.set(endpoint, t);
    }
    let b = 0;
    while (b < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[b]!) b++;
    t.inBucket[b]!++;
    t.sum += seconds;
    t.n++;
  }
}

/** A metric whose values are read at each scrape, in the shape prom-client's registry shows. */
function register(
  registry: Registry,
  m: {
    name: string;
    help: string;
    type: 'counter' | 'histogram';
    values: () => MetricValue[];
    reset: () => void;
  },
): void {
  const metric = {
    name: m.name,
    help: m.help,
    type: m.type,
    aggregator: 'sum',
    get: async () => ({ name: m.name, help: m.help, type: m.type, aggregator: 'sum', values: m.values() }),
    reset: m.reset,
  };
  registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0]);
}
