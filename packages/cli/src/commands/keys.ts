import { TallyError } from '@tally/core';
import type { Command } from 'commander';
import {
  apiCall as call,
  positiveInt as int,
  commaList as list,
  apiTarget as target,
  withApiOptions,
} from '../api.js';

/** `app=checkout,env=prod` as an object of tags (as the x-tally-tags header writes them). */
function tagList(value: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of value.split(',')) {
    const at = pair.indexOf('=');
    if (at <= 0)
      throw new TallyError(
        'invalid_request',
        `--tags must be name=value pairs, such as app=checkout,env=prod; got "${pair}".`,
      );
    out[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  return out;
}

export function registerKeys(program: Command): void {
  const keys = program.command('keys').description('virtual keys for the gateway, and keys for the API');
  const common = withApiOptions;

  common(
    keys
      .command('create')
      .description('make a key (a virtual key unless --role says otherwise); it is printed once')
      .option(
        '--role <role>',
        "virtual (calls models), admin, finance (spend and budgets), member (its --project), or gateway (a replica's key to the server)",
        'virtual',
      )
      .option('--name <n>', 'a name to tell the key apart in a list')
      .option('--project <p>')
      .option('--team <t>')
      .option('--user <u>')
      .option('--budget-usd <n>', 'spend limit per period, in USD')
      .option('--period <p>', 'day, week or month', 'month')
      .option('--rpm <n>', 'requests per minute', int('rpm'))
      .option('--tpm <n>', 'tokens per minute', int('tpm'))
      .option('--max-parallel <n>', 'calls in flight at once', int('max-parallel'))
      .option('--models <a,b>', 'models the key may use', list)
      .option('--tags <k=v,...>', 'tags every call of the key carries, e.g. app=checkout,env=prod', tagList)
      .option('--expires <time>', 'RFC 3339 expiry'),
  ).action(async (o: Record<string, unknown>) => {
    // The period's default is a virtual key's; other roles take no budget.
    const body: Record<string, unknown> =
      o['role'] === 'virtual' ? { period: o['period'] } : { role: o['role'] };
    for (const f of ['name', 'project', 'team', 'user', 'rpm', 'tpm', 'models', 'tags'] as const)
      if (o[f] !== undefined) body[f] = o[f];
    if (o['budgetUsd'] !== undefined) body['budget_usd'] = String(o['budgetUsd']);
    if (o['maxParallel'] !== undefined) body['max_parallel'] = o['maxParallel'];
    if (o['expires'] !== undefined) body['expires_at'] = o['expires'];
    const out = (await call(target(program, o), 'POST', '/v1/keys', body)) as { id: string; key: string };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  });

  common(
    keys
      .command('update <id>')
      .description("change a key's owner or policy in place: its holders keep the key they have")
      .option('--name <n>', 'a name to tell the key apart in a list')
      .option('--project <p>')
      .option('--team <t>')
      .option('--user <u>')
      .option('--budget-usd <n>', 'spend limit per period, in USD (makes the key a budget if it has none)')
      .option('--period <p>', 'day, week or month (of its budget)')
      .option('--rpm <n>', 'requests per minute', int('rpm'))
      .option('--tpm <n>', 'tokens per minute', int('tpm'))
      .option('--max-parallel <n>', 'calls in flight at once', int('max-parallel'))
      .option('--models <a,b>', 'models the key may use (names or patterns such as gpt-4o*)', list)
      .option('--tags <k=v,...>', 'the tags every call of the key carries (replacing its tags)', tagList)
      .option('--expires <time>', 'RFC 3339 expiry')
      .option(
        '--clear <fields>',
        'fields to clear, e.g. rpm,tpm,max_parallel,models,tags,budget_usd,expires_at,team',
        list,
      ),
  ).action(async (id: string, o: Record<string, unknown>) => {
    const body: Record<string, unknown> = {};
    for (const f of ['name', 'project', 'team', 'user', 'period', 'rpm', 'tpm', 'models', 'tags'] as const)
      if (o[f] !== undefined) body[f] = o[f];
    if (o['budgetUsd'] !== undefined) body['budget_usd'] = String(o['budgetUsd']);
    if (o['maxParallel'] !== undefined) body['max_parallel'] = o['maxParallel'];
    if (o['expires'] !== undefined) body['expires_at'] = o['expires'];
    for (const f of (o['clear'] as string[] | undefined) ?? []) body[f] = null;
    const out = await call(target(program, o), 'PATCH', `/v1/keys/${encodeURIComponent(id)}`, body);
    process.stdout.write(`${JSON.stringify(out)}\n`);
  });

  common(keys.command('list').description('list keys (never the secrets)')).action(
    async (o: Record<string, unknown>) => {
      const out = (await call(target(program, o), 'GET', '/v1/keys')) as { data: Record<string, unknown>[] };
      for (const k of out.data) process.stdout.write(`${JSON.stringify(k)}\n`);
    },
  );

  common(
    keys
      .command('rotate <id>')
      .description('give a key a new secret, printed once; the old one stops working'),
  ).action(async (id: string, o: Record<string, unknown>) => {
    const out = await call(target(program, o), 'POST', `/v1/keys/${encodeURIComponent(id)}/rotate`);
    process.stdout.write(`${JSON.stringify(out)}\n`);
  });

  common(keys.command('revoke <id>').description('revoke a key')).action(
    async (id: string, o: Record<string, unknown>) => {
      const out = await call(target(program, o), 'DELETE', `/v1/keys/${encodeURIComponent(id)}`);
      process.stdout.write(`${JSON.stringify(out)}\n`);
    },
  );
}
