import { TallyError } from '@tally/core';
import type { Command } from 'commander';
import {
  apiCall as call,
  commaList as list,
  listAndDelete,
  apiTarget as target,
  withApiOptions,
} from '../api.js';

/** `0.5,0.8,1` as the thresholds of a budget. */
function fractions(value: string): number[] {
  return value.split(',').map((v) => {
    const n = Number(v.trim());
    if (v.trim() === '' || !Number.isFinite(n))
      throw new TallyError(
        'invalid_request',
        `--thresholds must be fractions of the limit, such as 0.5,0.8,1; got "${value}".`,
      );
    return n;
  });
}

export function registerBudgets(program: Command): void {
  const budgets = program
    .command('budgets')
    .description('spend budgets: who they hold, their limit, and what happens past it');

  withApiOptions(
    budgets
      .command('create')
      .description('make (or replace, with the same --id) a budget, as POST /v1/budgets')
      .option('--id <id>', 'its id (made up when absent; the same id replaces a budget)')
      .requiredOption('--scope <s>', 'tenant, project, team, user, key, or tag')
      .option('--subject <s>', 'the project, team, user or key id it holds; for a tag, name=value')
      .requiredOption('--limit-usd <n>', 'the limit per period, in USD')
      .option('--period <p>', 'day, week or month', 'month')
      .option('--time-zone <zone>', 'the IANA time zone its periods start in', 'UTC')
      .option('--thresholds <a,b>', 'fractions of the limit that raise an alert', fractions)
      .option('--action <a>', 'past the limit: alert, downgrade or block', 'alert')
      .option('--downgrade-model <m>', 'the cheaper model a downgrade budget sends calls to')
      .option(
        '--models <a,b>',
        'only the calls to these models (names or patterns, such as claude-opus-*)',
        list,
      ),
  ).action(async (o: Record<string, unknown>) => {
    const body: Record<string, unknown> = {
      scope: o['scope'],
      limit_usd: String(o['limitUsd']),
      period: o['period'],
      time_zone: o['timeZone'],
      action: o['action'],
    };
    for (const [option, field] of [
      ['id', 'id'],
      ['subject', 'subject'],
      ['thresholds', 'thresholds'],
      ['downgradeModel', 'downgrade_model'],
      ['models', 'models'],
    ] as const)
      if (o[option] !== undefined) body[field] = o[option];
    const out = await call(target(program, o), 'POST', '/v1/budgets', body);
    process.stdout.write(`${JSON.stringify(out)}\n`);
  });

  listAndDelete(program, budgets, '/v1/budgets', {
    list: 'every budget, with what it has spent this period and when it resets',
    delete: 'delete a budget',
  });
}
