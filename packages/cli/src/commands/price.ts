import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import {
  type Catalog,
  exactToUsd,
  HOSTED_TOOL_CALLS,
  isHostedToolCall,
  isTallyError,
  type PriceInput,
  TallyError,
} from '@tally/core';
import type { Command } from 'commander';
import { loadConfig } from '../load-config.js';
import { loadCatalog } from '../pricer.js';

type Obj = Record<string, unknown>;

/** Prices one input line; never throws: every problem becomes an error line. */
export function priceLine(catalog: Catalog, line: string, defaultTime: number | undefined): Obj {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch {
    return errorLine(new TallyError('invalid_json', 'The line is not valid JSON.'));
  }
  try {
    if (typeof req !== 'object' || req === null || Array.isArray(req)) {
      throw new TallyError('invalid_request', 'Each line must be a JSON object.');
    }
    const r = req as Obj;
    const provider = r['provider'];
    const model = r['model'];
    if (typeof provider !== 'string' || provider === '') {
      throw new TallyError('invalid_request', 'provider must be a non-empty string.');
    }
    if (typeof model !== 'string' || model === '')
      throw new TallyError('invalid_request', 'model must be a non-empty string.');
    const api = r['api'];
    if (api !== undefined && typeof api !== 'string')
      throw new TallyError('invalid_request', 'api must be a string.');
    const usage = r['usage'];
    const tokens = r['tokens'];
    if (usage === undefined && tokens === undefined) {
      throw new TallyError('invalid_request', 'usage (the provider usage object) is required.');
    }
    let time = defaultTime;
    if (r['time'] !== undefined) {
      const t = typeof r['time'] === 'string' ? Date.parse(r['time']) : Number.NaN;
      if (Number.isNaN(t)) throw new TallyError('invalid_request', 'time must be an RFC 3339 time.');
      time = t;
    }
    const toolCalls = r['tool_calls'];
    if (
      toolCalls !== undefined &&
      (typeof toolCalls !== 'object' ||
        toolCalls === null ||
        Array.isArray(toolCalls) ||
        !Object.keys(toolCalls).every(isHostedToolCall))
    ) {
      throw new TallyError(
        'invalid_request',
        `tool_calls must be an object of counts: ${HOSTED_TOOL_CALLS.join(', ')}.`,
      );
    }
    const out = catalog.price({
      provider,
      api: typeof api === 'string' ? api : null,
      model,
      usage,
      tokens: (tokens as Obj | undefined) ?? null,
      ...(time !== undefined ? { time } : {}),
      ...(typeof r['tenant'] === 'string' ? { tenant: r['tenant'] } : {}),
      batch: r['batch'] === true,
      service_tier: typeof r['service_tier'] === 'string' ? r['service_tier'] : null,
      tool_calls: (toolCalls as PriceInput['tool_calls']) ?? null,
    });
    if (out.status === 'unpriced') return { status: 'unpriced', reason: out.reason, tokens: out.tokens };
    return {
      status: 'priced',
      input_usd: exactToUsd(out.input),
      output_usd: exactToUsd(out.output),
      total_usd: exactToUsd(out.total),
      effective_usd: exactToUsd(out.effective),
      tokens: out.tokens,
      price_source: out.source,
      effective_source: out.effectiveSource,
      price_version: out.version,
      provider: out.provider,
      model: out.model,
    };
  } catch (err) {
    if (isTallyError(err)) return errorLine(err);
    return errorLine(new TallyError('internal', (err as Error).message));
  }
}

function errorLine(err: TallyError): Obj {
  return { status: 'error', error: { code: err.code, message: err.message } };
}

export async function priceStream(
  catalog: Catalog,
  input: Readable,
  output: Writable,
  at?: number,
): Promise<number> {
  const rl = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  let n = 0;
  let buf = '';
  for await (const line of rl) {
    if (line.trim() === '') continue;
    buf += `${JSON.stringify(priceLine(catalog, line, at))}\n`;
    n++;
    if (buf.length > 64 * 1024) {
      if (!output.write(buf)) await new Promise((r) => output.once('drain', r));
      buf = '';
    }
  }
  if (buf) output.write(buf);
  return n;
}

export function registerPrice(program: Command): void {
  program
    .command('price')
    .description('price provider usage objects: JSON lines on stdin, one JSON line out per line')
    .option('--at <time>', 'price as of this RFC 3339 time (default: now, or each line\'s "time")')
    .action(async (opts: { at?: string }) => {
      const global = program.opts<{ config?: string }>();
      const config = loadConfig({
        cwd: process.cwd(),
        env: process.env,
        ...(global.config ? { file: global.config } : {}),
      });
      let at: number | undefined;
      if (opts.at !== undefined) {
        at = Date.parse(opts.at);
        if (Number.isNaN(at)) throw new TallyError('invalid_request', '--at must be an RFC 3339 time.');
      }
      await priceStream(loadCatalog(config), process.stdin, process.stdout, at);
    });
}
