import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CallRecord, type Pricer, ZERO_TOKENS } from '@tally/core';

export interface TraceRow {
  /** Milliseconds into the trace's hour. */
  offset: number;
  input: number;
  output: number;
}

/** The Azure LLM inference trace 2023 (CC-BY-4.0; Patel et al., "Splitwise", ISCA 2024): the copy
 * this package carries (data/azure-llm-2023, with its licence and datasheet), or the public data
 * beside the checkout. */
export function readAzureTrace(cwd: string): { code: TraceRow[]; conv: TraceRow[] } | null {
  const dirs = [
    fileURLToPath(new URL('../data/azure-llm-2023', import.meta.url)),
    resolve(cwd, '../shared/data/traces/azure-llm-2023'),
    resolve(cwd, 'shared/data/traces/azure-llm-2023'),
  ];
  const dir = dirs.find((d) => existsSync(resolve(d, 'AzureLLMInferenceTrace_conv.csv')));
  if (!dir) return null;
  const read = (file: string): TraceRow[] => {
    const lines = readFileSync(resolve(dir, file), 'utf8').trim().split('\n').slice(1);
    const rows = lines.map((l) => {
      const [ts, ctx, gen] = l.split(',');
      return {
        t: Date.parse(`${ts!.slice(0, 23).replace(' ', 'T')}Z`),
        input: Number(ctx),
        output: Number(gen),
      };
    });
    const t0 = rows[0]!.t;
    return rows.map((r) => ({ offset: r.t - t0, input: r.input, output: r.output }));
  };
  return { code: read('AzureLLMInferenceTrace_code.csv'), conv: read('AzureLLMInferenceTrace_conv.csv') };
}

/** A seeded generator (mulberry32), so the demo is the same on every machine. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Without the trace: rows drawn from log-normals fitted to its means (conversation: 1,155 in /
 * 211 out; code: 2,048 in / 28 out). */
function syntheticRows(rand: () => number, n: number, meanIn: number, meanOut: number): TraceRow[] {
  const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const logn = (mean: number, sigma: number) =>
    Math.max(1, Math.round(mean * Math.exp(sigma * normal() - (sigma * sigma) / 2)));
  return Array.from({ length: n }, (_, i) => ({
    offset: Math.floor((i / n) * 3_600_000),
    input: logn(meanIn, 1),
    output: logn(meanOut, 0.9),
  }));
}

interface Workload {
  use_case: string;
  project: string;
  team: string;
  models: [provider: string, api: string, model: string, share: number][];
  trace: 'code' | 'conv';
}

const WORKLOADS: Workload[] = [
  {
    // The trace's traffic runs beside the simulated company's use cases, under names of its own, so
    // that it does not mix into their scorecards.
    use_case: 'support-chat',
    project: 'support',
    team: 'customer-experience',
    trace: 'conv',
    models: [
      ['openai', 'openai-chat', 'gpt-4o-mini', 0.7],
      ['openai', 'openai-chat', 'gpt-4o', 0.3],
    ],
  },
  {
    use_case: 'code-assist',
    project: 'engineering',
    team: 'platform',
    trace: 'code',
    models: [
      ['anthropic', 'anthropic-messages', 'claude-sonnet-4-6', 0.8],
      ['anthropic', 'anthropic-messages', 'claude-haiku-4-5', 0.2],
    ],
  },
  {
    use_case: 'campaign-ideas',
    project: 'marketing',
    team: 'growth',
    trace: 'conv',
    models: [['google', 'gemini', 'gemini-2.5-flash', 1]],
  },
  {
    use_case: 'search-answers',
    project: 'search',
    team: 'discovery',
    trace: 'conv',
    models: [
      ['openai', 'openai-chat', 'gpt-4.1-mini', 0.6],
      ['aws', 'bedrock-converse', 'us.anthropic.claude-3-5-haiku-20241022-v1:0', 0.4],
    ],
  },
];

function usageFor(api: string, input: number, output: number, cached: number): Record<string, unknown> {
  switch (api) {
    case 'anthropic-messages':
      return { input_tokens: input - cached, cache_read_input_tokens: cached, output_tokens: output };
    case 'gemini':
      return { promptTokenCount: input, cachedContentTokenCount: cached, candidatesTokenCount: output };
    case 'bedrock-converse':
      return { inputTokens: input - cached, cacheReadInputTokens: cached, outputTokens: output };
    default:
      return {
        prompt_tokens: input,
        completion_tokens: output,
        prompt_tokens_details: { cached_tokens: cached },
      };
  }
}

/**
 * Demo calls: the trace's requests replayed over the last `days` days (each day follows the trace's
 * arrival pattern), attributed to four use cases, priced by the catalog like any ingested call.
 */
export function demoCalls(opts: {
  cwd: string;
  tenant: string;
  now: number;
  days: number;
  price: Pricer;
  seed?: number;
}): { calls: CallRecord[]; fromTrace: boolean } {
  const rand = seeded(opts.seed ?? 42);
  const trace = readAzureTrace(opts.cwd);
  const rows = trace ?? {
    code: syntheticRows(rand, 8819, 2048, 28),
    conv: syntheticRows(rand, 19366, 1155, 211),
  };
  const dayMs = 86_400_000;
  const start = Math.floor(opts.now / dayMs) * dayMs - (opts.days - 1) * dayMs;
  const calls: CallRecord[] = [];
  let n = 0;
  WORKLOADS.forEach((w, wi) => {
    const src = rows[w.trace];
    const perDay = Math.max(1, Math.floor(src.length / opts.days / (w.trace === 'conv' ? 3 : 1)));
    for (let d = 0; d < opts.days; d++) {
      // Volume grows through the month, as a pilot becomes production.
      const count = Math.round(perDay * (0.6 + (0.8 * d) / opts.days));
      for (let i = 0; i < count; i++) {
        // Each workload replays its own stretch of the trace.
        const r = src[(d * perDay + i + wi * 4099) % src.length]!;
        const time = start + d * dayMs + Math.floor((r.offset / 3_600_000) * dayMs);
        if (time > opts.now) continue;
        let pick = rand();
        let m = w.models[0]!;
        for (const cand of w.models) {
          if (pick < cand[3]) {
            m = cand;
            break;
          }
          pick -= cand[3];
        }
        const [provider, api, model] = m;
        const cached = rand() < 0.35 ? Math.floor(r.input * 0.6) : 0;
        const usage = usageFor(api, r.input, r.output, cached);
        const priced = opts.price({ provider, api, model, usage, time, tenant: opts.tenant });
        const ok = rand() > 0.01;
        calls.push({
          id: `demo-${n++}`,
          time,
          tenant: opts.tenant,
          project: w.project,
          team: w.team,
          user: `user-${Math.floor(rand() * 40)}`,
          use_case: w.use_case,
          task_id: null,
          key_id: null,
          tags: { env: 'prod' },
          provider,
          api,
          model_requested: model,
          model_served: priced.status === 'priced' ? priced.model : null,
          tokens: priced.tokens ?? { ...ZERO_TOKENS },
          cost_list_nano: priced.status === 'priced' ? priced.listNano : null,
          cost_effective_nano: priced.status === 'priced' ? priced.effectiveNano : null,
          pricing_status: priced.status === 'priced' ? 'priced' : 'unpriced',
          price_version: priced.version,
          latency_ms: Math.round(300 + r.output * 12 + rand() * 200),
          ttft_ms: Math.round(150 + rand() * 250),
          status: ok ? 'ok' : 'error',
          error_type: ok ? null : 'rate_limit',
          cache: 'miss',
          route_tier: null,
          fallback_hops: 0,
          saved_nano: 0n,
          request_id: null,
        });
      }
    }
  });
  return { calls, fromTrace: trace !== null };
}
