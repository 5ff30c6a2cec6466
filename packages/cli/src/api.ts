import { TallyError } from '@tally/core';
import type { Command } from 'commander';
import { request } from 'undici';
import { loadConfig } from './load-config.js';

export interface ApiTarget {
  url: string;
  adminKey: string;
}

/** Commands that change data go through the running server's API: the embedded store belongs to
 * it. The server's address and the admin key come from the config, or from flags. */
export function apiTarget(program: Command, opts: { url?: string; adminKey?: string }): ApiTarget {
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

export async function apiCall(
  t: ApiTarget,
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
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
    throw unreachable(t, err);
  }
  const json = (await res.body.json()) as { error?: { code: string; message: string } };
  if (res.statusCode >= 400) {
    const code = (json.error?.code ?? 'internal') as ConstructorParameters<typeof TallyError>[0];
    throw new TallyError(
      code,
      json.error?.message,
      (json.error as { details?: unknown } | undefined)?.details,
    );
  }
  return json;
}

function unreachable(t: ApiTarget, err: unknown): TallyError {
  return new TallyError(
    'server_unreachable',
    `Cannot reach the Tally server at ${t.url}: ${(err as Error).message}. Is "tally start" running?`,
  );
}

export const commaList = (v: string) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/** A parser for an option that takes a positive integer. */
export const positiveInt = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0)
    throw new TallyError('invalid_request', `--${name} must be a positive integer.`);
  return n;
};

/** --url and --admin-key, on every command that calls the server. */
export function withApiOptions(c: Command): Command {
  return c
    .option('--url <url>', 'the Tally server (default: from config, http://127.0.0.1:4000)')
    .option('--admin-key <key>', 'admin key (default: TALLY_ADMIN_KEY)');
}

/** `list` and `delete <id>` of a collection of the API (`/v1/budgets`, `/v1/rate-limits`): a JSON
 * line for each item listed, and the deletion's answer. */
export function listAndDelete(
  program: Command,
  group: Command,
  path: string,
  describe: { list: string; delete: string },
): void {
  withApiOptions(group.command('list').description(describe.list)).action(
    async (o: Record<string, unknown>) => {
      const out = (await apiCall(apiTarget(program, o), 'GET', path)) as { data: Record<string, unknown>[] };
      for (const item of out.data) process.stdout.write(`${JSON.stringify(item)}\n`);
    },
  );
  withApiOptions(group.command('delete <id>').description(describe.delete)).action(
    async (id: string, o: Record<string, unknown>) => {
      const out = await apiCall(apiTarget(program, o), 'DELETE', `${path}/${encodeURIComponent(id)}`);
      process.stdout.write(`${JSON.stringify(out)}\n`);
    },
  );
}

/** A GET whose answer is text (a report); errors as apiCall. */
export async function apiText(t: ApiTarget, path: string): Promise<string> {
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(`${t.url}${path}`, { headers: { authorization: `Bearer ${t.adminKey}` } });
  } catch (err) {
    throw unreachable(t, err);
  }
  const text = await res.body.text();
  if (res.statusCode >= 400) {
    const json = JSON.parse(text) as { error?: { code: string; message: string } };
    throw new TallyError(
      (json.error?.code ?? 'internal') as ConstructorParameters<typeof TallyError>[0],
      json.error?.message,
    );
  }
  return text;
}
