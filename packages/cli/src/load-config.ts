import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { TallyError } from '@tally/core';
import { configSchema, type TallyConfig } from '@tally/server/config';

const FILES = ['tally.config.json', 'tally.config.yaml', 'tally.config.yml'];

/** The YAML parser, loaded only for a YAML config file (about 40 ms to import on its own). */
function parseYaml(text: string): unknown {
  const yaml: typeof import('yaml') = createRequire(import.meta.url)('yaml');
  try {
    return yaml.parse(text);
  } catch (err) {
    // The parser's message quotes the line, which may hold a secret: only its kind and place go on.
    const e = err as { code?: string; linePos?: { line: number; col: number }[] };
    const at = e.linePos?.[0];
    throw new SyntaxError(
      `YAML error ${e.code ?? 'unknown'}${at ? ` at line ${at.line}, column ${at.col}` : ''}`,
    );
  }
}

/** JSON.parse, failing with where and what, without the text around the error that V8 quotes (a
 * secret may stand there). */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const message = headOf((err as Error).message);
    const at = /at position (\d+)/.exec(message);
    const { line, col } = lineCol(text, at ? Number(at[1]) : errorPosition(text, message));
    const kind = message.startsWith('Unexpected token')
      ? 'Unexpected token'
      : message.replace(/\s*(in JSON )?at position \d+.*$/s, '');
    throw new SyntaxError(`JSON error (${kind}) at line ${line}, column ${col}`);
  }
}

/** A JSON.parse message without the text it quotes (`Unexpected token 'x', ..."text"...`). */
const headOf = (message: string) => message.split(/, (\.\.\.)?"/)[0]!;

/** Where JSON.parse found the error it reports with `head` but did not place: the shortest start
 * of the text that fails so ends just past it (none does when the text ends too soon, as every
 * start then fails so). */
function errorPosition(text: string, head: string): number {
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (failsAs(text.slice(0, mid), head)) hi = mid;
    else lo = mid + 1;
  }
  return lo === 0 ? text.length : lo - 1;
}

function failsAs(text: string, head: string): boolean {
  try {
    JSON.parse(text);
    return false;
  } catch (err) {
    return headOf((err as Error).message) === head;
  }
}

function lineCol(text: string, at: number): { line: number; col: number } {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < at; i = text.indexOf('\n', i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, col: at - start + 1 };
}

/** TALLY_* variables and the config keys they set. */
const ENV: Record<string, (cfg: Record<string, unknown>, v: string) => void> = {
  TALLY_PORT: (c, v) => {
    c['port'] = v;
  },
  TALLY_HOST: (c, v) => {
    c['host'] = v;
  },
  TALLY_DATA_DIR: (c, v) => {
    c['data_dir'] = v;
  },
  TALLY_TENANT: (c, v) => {
    c['tenant'] = v;
  },
  TALLY_ADMIN_KEY: (c, v) => {
    c['admin_key'] = v;
  },
  TALLY_GATEWAY_KEY: (c, v) => {
    c['gateway_key'] = v;
  },
  TALLY_SECRET_KEY: (c, v) => {
    c['secret_key'] = v;
  },
  TALLY_LOG_LEVEL: (c, v) => {
    c['log_level'] = v;
  },
  TALLY_TLS_CERT: (c, v) => {
    c['tls'] = { ...(c['tls'] as object | undefined), cert_file: v };
  },
  TALLY_TLS_KEY: (c, v) => {
    c['tls'] = { ...(c['tls'] as object | undefined), key_file: v };
  },
  TALLY_CORS_ORIGINS: (c, v) => {
    c['cors_origins'] = v
      .split(',')
      .map((o) => o.trim())
      .filter((o) => o !== '');
  },
  TALLY_STORE_PATH: (c, v) => {
    c['store'] = { ...(c['store'] as object | undefined), path: v };
  },
  TALLY_STORE_THREADS: (c, v) => {
    c['store'] = { ...(c['store'] as object | undefined), threads: Number(v) };
  },
  TALLY_STORE_MEMORY_LIMIT: (c, v) => {
    c['store'] = { ...(c['store'] as object | undefined), memory_limit: v };
  },
  TALLY_SERVER_URL: (c, v) => {
    c['gateway'] = { ...(c['gateway'] as object | undefined), server_url: v };
  },
  TALLY_STATE_URL: (c, v) => {
    c['gateway'] = { ...(c['gateway'] as object | undefined), state: { kind: 'redis', url: v } };
  },
};

/**
 * Without configured providers, the usual variables set them up, so that
 * `OPENAI_BASE_URL=http://127.0.0.1:9999/v1 npx tally start` proxies to that upstream.
 */
function addProvidersFromEnv(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): void {
  raw['gateway'] ??= {};
  const gw = raw['gateway'] as Record<string, unknown>;
  const existing = gw['providers'];
  if (Array.isArray(existing) && existing.length > 0) return;
  const providers: Record<string, unknown>[] = [];
  if (env['OPENAI_API_KEY'] || env['OPENAI_BASE_URL']) {
    providers.push({
      id: 'openai',
      kind: 'openai',
      base_url: env['OPENAI_BASE_URL'] || 'https://api.openai.com/v1',
      ...(env['OPENAI_API_KEY'] ? { api_key: env['OPENAI_API_KEY'] } : {}),
    });
  }
  if (env['ANTHROPIC_API_KEY'] || env['ANTHROPIC_BASE_URL']) {
    providers.push({
      id: 'anthropic',
      kind: 'anthropic',
      base_url: env['ANTHROPIC_BASE_URL'] || 'https://api.anthropic.com',
      ...(env['ANTHROPIC_API_KEY'] ? { api_key: env['ANTHROPIC_API_KEY'] } : {}),
    });
  }
  if (env['GEMINI_API_KEY']) {
    providers.push({
      id: 'gemini',
      kind: 'openai-compatible',
      base_url: 'https://generativelanguage.googleapis.com/v1beta/openai',
      api_key: env['GEMINI_API_KEY'],
      price_provider: 'google',
    });
  }
  if (providers.length > 0) gw['providers'] = providers;
}

export interface LoadConfigOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** An explicit config file (--config); otherwise the first of FILES found in cwd. */
  file?: string;
  /** Flags that win over file and env (e.g. --port). */
  overrides?: Record<string, unknown>;
}

/** Reads the config once: file, then TALLY_* env, then flags; validated by the server's schema and frozen. */
export function loadConfig(opts: LoadConfigOptions): TallyConfig & { source: string | null } {
  let raw: Record<string, unknown> = {};
  const envFile = opts.env['TALLY_CONFIG'];
  const file = opts.file ?? envFile ?? FILES.map((f) => resolve(opts.cwd, f)).find((f) => existsSync(f));
  if (file) {
    const path = resolve(opts.cwd, file);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      throw new TallyError('config_invalid', `Cannot read the config file ${path}.`);
    }
    try {
      const parsed: unknown = path.endsWith('.json') ? parseJson(text) : parseYaml(text);
      if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
        raw = parsed as Record<string, unknown>;
      } else if (parsed !== null && parsed !== undefined) {
        throw new Error('not an object');
      }
    } catch (err) {
      throw new TallyError('config_invalid', `${path} is not valid: ${(err as Error).message}`);
    }
  }
  for (const [name, apply] of Object.entries(ENV)) {
    const v = opts.env[name];
    if (v !== undefined && v !== '') apply(raw, v);
  }
  const { gateway: gatewayOverrides, ...overrides } = opts.overrides ?? {};
  Object.assign(raw, overrides);
  if (gatewayOverrides)
    raw['gateway'] = { ...(raw['gateway'] as object | undefined), ...(gatewayOverrides as object) };
  addProvidersFromEnv(raw, opts.env);
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new TallyError('config_invalid', `The configuration is not valid: ${issues}`);
  }
  return Object.freeze({ ...result.data, source: file ? resolve(opts.cwd, file) : null });
}
