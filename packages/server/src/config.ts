import { memoryLimitProblem } from '@tally/store';
import { z } from 'zod';
import { originProblem } from './cors.js';

const decimal = z.string().regex(/^\d+(\.\d+)?$/, 'must be a decimal string such as "2.5"');

/** A tenant's price for a model: either a discount off the list price, or explicit prices
 * (USD per million tokens) that also add models the catalog does not know. */
export const priceOverrideSchema = z
  .object({
    tenant: z.string().default('default'),
    provider: z.string(),
    model: z.string(),
    discount_pct: z.number().min(0).max(100).optional(),
    input_mtok: decimal.optional(),
    output_mtok: decimal.optional(),
    cache_read_mtok: decimal.optional(),
    cache_write_mtok: decimal.optional(),
    cache_write_1h_mtok: decimal.optional(),
    input_audio_mtok: decimal.optional(),
    output_audio_mtok: decimal.optional(),
    requests_kcount: decimal.optional(),
  })
  .strict();

const targetSchema = z
  .object({
    provider: z.string(),
    model: z.string().optional(),
    weight: z.number().positive().optional(),
    /** The deployment's own quota, requests and tokens a minute: past it, the route's next target. */
    rpm: z.number().int().positive().optional(),
    tpm: z.number().int().positive().optional(),
  })
  .strict();

export const providerSchema = z
  .object({
    id: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]*$/, 'must be lower-case letters, digits, dot, dash or underscore'),
    kind: z.enum(['openai', 'azure', 'anthropic', 'openai-compatible']),
    base_url: z.url({ protocol: /^https?$/, error: 'must be an http or https URL' }).refine(
      // Also run on a value the check before it refused.
      (u) => !URL.canParse(u) || (new URL(u).username === '' && new URL(u).password === ''),
      'must not hold a user name or password (they would be stored and shown as they are): give the key as api_key',
    ),
    /** Sent in a header as it is: printable ASCII only, as every provider's keys are. */
    api_key: z
      .string()
      .regex(
        /^[\x21-\x7e]*$/,
        'must be the key alone: printable ASCII, without spaces or line breaks (check for a newline copied with it)',
      )
      .optional(),
    api_version: z.string().optional(),
    /** OpenAI: the organization and project the calls are made for (never the client's choice). */
    organization: z
      .string()
      .regex(/^[\x21-\x7e]+$/, 'must be an organization id, such as org-...')
      .optional(),
    project: z
      .string()
      .regex(/^[\x21-\x7e]+$/, 'must be a project id, such as proj_...')
      .optional(),
    deployments: z.record(z.string(), z.string()).optional(),
    price_provider: z.string().optional(),
    timeout_ms: z.number().int().positive().optional(),
  })
  .strict();

export const gatewaySchema = z
  .object({
    /** Upstreams. Without any, OPENAI_* / ANTHROPIC_* / GEMINI_API_KEY set them up. */
    providers: z.array(providerSchema).default([]),
    routes: z
      .array(
        z
          .object({
            model: z.string(),
            targets: z.array(targetSchema).min(1),
            fallbacks: z.array(targetSchema).optional(),
            context_fallbacks: z.array(targetSchema).optional(),
            content_policy_fallbacks: z.array(targetSchema).optional(),
            retries: z.number().int().min(0).max(10).optional(),
          })
          .strict(),
      )
      .default([]),
    timeout_ms: z.number().int().positive().default(600_000),
    /** How many times an upstream is tried again (429, 5xx, timeout, connection error, an answer
     * that cannot be used) before the route's next one; a route's own `retries` wins. */
    retries: z.number().int().min(0).max(10).default(0),
    /** The wait before the first try again, doubled for each one after (with jitter)... */
    retry_backoff_ms: z.number().int().min(0).default(500),
    /** ...never longer than this; an upstream's retry-after is waited, up to this. */
    retry_max_wait_ms: z.number().int().min(0).default(10_000),
    /** Where budgets and rate limits are kept: this process, or Redis for several replicas. */
    state: z
      .object({
        kind: z.enum(['memory', 'redis']).default('memory'),
        url: z.string().default('redis://127.0.0.1:6379'),
      })
      .strict()
      .default({ kind: 'memory', url: 'redis://127.0.0.1:6379' }),
    default_max_output: z.number().int().positive().default(4096),
    /** The hosted searches a budget reserves for a Responses call that sets no max_tool_calls. */
    default_max_tool_calls: z.number().int().positive().default(10),
    /** A call to a model with no price cannot be held to a block budget: refused unless this is
     * set (then it goes, reserving nothing, and its cost counts as nothing). */
    allow_unpriced_under_budget: z.boolean().default(false),
    /** A background Responses call is watched until its response has ended: it is first asked
     * for after this (ms), then half as long again each time, up to a minute. */
    background_poll_ms: z.number().int().min(10).default(1000),
    /** A background response not ended after this many hours is metered as estimated
     * (background_unfinished) and no longer watched. */
    background_max_hours: z.number().positive().default(24),
    /** A batch (OpenAI's Batch API) is watched until it has ended, to meter its requests: it is
     * first asked for after this (ms), then half as long again each time, up to ten minutes. */
    batch_poll_ms: z.number().int().min(10).default(60_000),
    /** A batch not ended after this many hours is no longer watched, and its reservation goes back. */
    batch_max_hours: z.number().positive().default(72),
    /** The largest batch input file the gateway reads (to check its models and reserve its cost). */
    batch_input_max_bytes: z
      .number()
      .int()
      .positive()
      .default(200 * 1024 * 1024),
    /** The most the metering spool (calls waiting on disk while the store or the server cannot take
     * them) may hold, in MB. Past it, calls wait in memory, and past the memory bound are dropped
     * and counted. */
    spool_max_mb: z.number().positive().default(1024),
    /** Budget alerts are POSTed here (JSON), retried with backoff. */
    alert_webhook_url: z.url().optional(),
    /** Signs each alert POST (x-tally-signature), so that the receiver can tell it came from here. */
    alert_webhook_secret: z.string().min(16).optional(),
    body_limit_bytes: z
      .number()
      .int()
      .min(1024)
      .default(32 * 1024 * 1024),
    /** The largest upstream answer the gateway takes: past it, the upstream call is cut off and
     * the client answered 502 upstream_response_too_large, or, for a stream, cut short. */
    max_response_bytes: z
      .number()
      .int()
      .min(1024)
      .default(64 * 1024 * 1024),
    /** The Tally server that a gateway replica (`tally gateway`) reads keys, budgets and providers
     * from, and meters into. */
    server_url: z.url().optional(),
    /** How long a replica trusts what it read from the server: a revoked key or a changed budget
     * takes effect on the replica within this time. */
    replica_cache_ms: z.number().int().min(0).default(5000),
  })
  .strict()
  .superRefine((g, ctx) => {
    // A repeated id or route would leave one of them unused without a word.
    const once = (names: string[], list: string, field: string, what: string) => {
      const seen = new Set<string>();
      names.forEach((name, i) => {
        if (seen.has(name))
          ctx.addIssue({ code: 'custom', path: [list, i, field], message: `${what} ${name} is repeated` });
        seen.add(name);
      });
    };
    once(
      g.providers.map((p) => p.id),
      'providers',
      'id',
      'provider id',
    );
    once(
      g.routes.map((r) => r.model),
      'routes',
      'model',
      'route',
    );
    // A deployment's quota is one bucket, whichever route names it: two that give it different
    // limits would each refill it at its own rate.
    const quotas = new Map<string, string>();
    g.routes.forEach((r, i) => {
      for (const list of ['targets', 'fallbacks', 'context_fallbacks', 'content_policy_fallbacks'] as const) {
        (r[list] ?? []).forEach((t, j) => {
          if (t.rpm === undefined && t.tpm === undefined) return;
          const at = `${t.provider}/${t.model ?? r.model}`;
          const limits = `rpm ${t.rpm ?? 'none'}, tpm ${t.tpm ?? 'none'}`;
          const before = quotas.get(at);
          if (before !== undefined && before !== limits)
            ctx.addIssue({
              code: 'custom',
              path: ['routes', i, list, j],
              message: `${at} is given two quotas (${before}; ${limits}): give it one`,
            });
          quotas.set(at, before ?? limits);
        });
      }
    });
  });

export const configSchema = z
  .object({
    port: z.coerce.number().int().min(0).max(65535).default(4000),
    host: z.string().default('127.0.0.1'),
    data_dir: z.string().default('.tally'),
    tenant: z.string().default('default'),
    admin_key: z.string().min(16).optional(),
    /** The key gateway replicas (`tally gateway`) present to the server's control routes, set on
     * both: the server takes it as a `gateway` key, the replica sends it. A key made with
     * `tally keys create --role gateway` does the same and can be revoked. */
    gateway_key: z.string().min(16).optional(),
    log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** Serve HTTPS (and WSS, for realtime sessions) with this certificate and key, PEM files; a
     * path is from the working directory. Unset, plain HTTP. */
    tls: z
      .object({ cert_file: z.string().min(1), key_file: z.string().min(1) })
      .strict()
      .optional(),
    /** The origins whose pages may call the gateway and the API from a browser (CORS): each as a
     * browser sends it (`https://app.example.com`), or `*` for any. None by default. */
    cors_origins: z
      .array(
        z.string().superRefine((v, ctx) => {
          const problem = originProblem(v);
          if (problem) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} ${problem}` });
        }),
      )
      .default([]),
    store: z
      .object({
        kind: z.enum(['duckdb']).default('duckdb'),
        /** DuckDB file; defaults to <data_dir>/tally.duckdb. ':memory:' keeps nothing. */
        path: z.string().optional(),
        /** DuckDB memory_limit; it spills to disk beyond it, and checkpoints at a quarter of it.
         * Unset, DuckDB's own (80% of RAM): a query that runs out of memory next to the metering's
         * writes can leave DuckDB 1.5 unable to write (BENCHMARKS.md, 2026-12-02). */
        memory_limit: z
          .string()
          .regex(/^\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)$/i)
          .superRefine((v, ctx) => {
            const problem = memoryLimitProblem(v);
            if (problem) ctx.addIssue({ code: 'custom', message: problem });
          })
          .optional(),
        threads: z.number().int().positive().optional(),
      })
      .strict()
      .default({ kind: 'duckdb' }),
    ingest: z
      .object({
        max_batch: z.number().int().min(1).max(1000).default(1000),
        body_limit_bytes: z
          .number()
          .int()
          .min(1024)
          .default(16 * 1024 * 1024),
      })
      .strict()
      .default({ max_batch: 1000, body_limit_bytes: 16 * 1024 * 1024 }),
    pricing: z
      .object({
        overrides: z.array(priceOverrideSchema).default([]),
        /** Azure deployment name -> the model it serves. */
        azure_deployments: z.record(z.string(), z.string()).default({}),
      })
      .strict()
      .default({ overrides: [], azure_deployments: {} }),
    gateway: gatewaySchema.prefault({}),
    /** Hex or base64 32-byte key that encrypts provider secrets at rest; made on first start if absent. */
    secret_key: z.string().optional(),
  })
  .strict()
  .refine((c) => c.gateway_key === undefined || c.gateway_key !== c.admin_key, {
    path: ['gateway_key'],
    message: "gateway_key must differ from admin_key: a replica's key opens the control routes only",
  });

export type TallyConfig = Readonly<z.infer<typeof configSchema>>;
export type PriceOverrideConfig = z.infer<typeof priceOverrideSchema>;
export type ProviderSettings = z.infer<typeof providerSchema>;
