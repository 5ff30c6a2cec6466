import { TallyError } from '@tally/core';
import type { Command } from 'commander';
import { request } from 'undici';
import { loadConfig } from '../load-config.js';

interface ApiTarget {
  url: string;
  adminKey: string;
}

/** Keys are made by the running server (the embedded store belongs to it), through its API. */
function target(program: Command, opts: { url?: string; adminKey?: string }): ApiTarget {
  const global = program.opts<{ config?: string }>();
  const config = loadConfig({
    cwd: process.cwd(),
    env: process.env,
    ...(global.config ? { file: global.config } : {}),
  });
  const adminKey = opts.adminKey ?? config.admin_key;
  if (!adminKey) {
    throw new TallyError('unauthorized', 'An admin key is needed: pass --admin-key or set TALLY_ADMIN_KEY.');
  }
  const host = config.host === '0.0.0.0' ? '127.0.0.1' : config.host;
  return { url: opts.url ?? `http://${host}:${config.port}`, adminKey };
}

async function call(
  t: ApiTarget,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  body?: unknown,
): Promise<unknown> {
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(`${t.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${t.adminKey}`,
        ...(body ? { 'content-type': 'application/json' } : {}),
      },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
  } catch (err) {
    throw new TallyError(
      'store_unavailable',
      `Cannot reach the Tally server at ${t.url}: ${(err as Error).message}. Is "tally start" running?`,
    );
  }
  const json = (await res.body.json()) as { error?: { code: string; message: string } };
  if (res.statusCode >= 400) {
    const code = (json.error?.code ?? 'internal') as ConstructorParameters<typeof TallyError>[0];
    throw new TallyError(code, json.error?.message);
  }
  return json;
}

const list = (v: string) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
const int = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0)
    throw new TallyError('invalid_request', `--${name} must be a positive integer.`);
  return n;
};

export function registerKeys(program: Command): void {
  const keys = program.command('keys').description('virtual keys for the gateway');
  const common = (c: Command) =>
    c
      .option('--url <url>', 'the Tally server (default: from config, http://127.0.0.1:4000)')
      .option('--admin-key <key>', 'admin key (default: TALLY_ADMIN_KEY)');

  common(
    keys
      .command('create')
      .description('make a virtual key; it is printed once')
      .option('--project <p>')
      .option('--team <t>')
      .option('--user <u>')
      .option('--budget-usd <n>', 'spend limit per period, in USD')
      .option('--period <p>', 'day, week or month', 'month')
      .option('--rpm <n>', 'requests per minute', int('rpm'))
      .option('--tpm <n>', 'tokens per minute', int('tpm'))
      .option('--models <a,b>', 'models the key may use', list)
      .option('--expires <time>', 'RFC 3339 expiry'),
  ).action(async (o: Record<string, unknown>) => {
    const body: Record<string, unknown> = { period: o['period'] };
    for (const f of ['project', 'team', 'user', 'rpm', 'tpm', 'models'] as const)
      if (o[f] !== undefined) body[f] = o[f];
    if (o['budgetUsd'] !== undefined) body['budget_usd'] = String(o['budgetUsd']);
    if (o['expires'] !== undefined) body['expires_at'] = o['expires'];
    const out = (await call(target(program, o), 'POST', '/v1/keys', body)) as { id: string; key: string };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  });

  common(keys.command('list').description('list keys (never the secrets)')).action(
    async (o: Record<string, unknown>) => {
      const out = (await call(target(program, o), 'GET', '/v1/keys')) as { data: Record<string, unknown>[] };
      for (const k of out.data) process.stdout.write(`${JSON.stringify(k)}\n`);
    },
  );

  common(keys.command('revoke <id>').description('revoke a key')).action(
    async (id: string, o: Record<string, unknown>) => {
      const out = await call(target(program, o), 'DELETE', `/v1/keys/${encodeURIComponent(id)}`);
      process.stdout.write(`${JSON.stringify(out)}\n`);
    },
  );
}
