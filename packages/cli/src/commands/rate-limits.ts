import type { Command } from 'commander';
import {
  apiCall as call,
  positiveInt as int,
  commaList as list,
  listAndDelete,
  apiTarget as target,
  withApiOptions,
} from '../api.js';

export function registerRateLimits(program: Command): void {
  const limits = program
    .command('rate-limits')
    .description(
      "requests and tokens a minute, and calls in flight, for a scope's calls, shared by every key that makes them",
    );

  withApiOptions(
    limits
      .command('create')
      .description('make (or replace, with the same --id) a rate limit, as POST /v1/rate-limits')
      .option('--id <id>', 'its id (made up when absent; the same id replaces a rate limit)')
      .requiredOption('--scope <s>', 'tenant, project, team, user, key, or tag')
      .option('--subject <s>', 'the project, team, user or key id it holds; for a tag, name=value')
      .option('--rpm <n>', 'requests a minute', int('rpm'))
      .option('--tpm <n>', 'tokens a minute (prompt and output)', int('tpm'))
      .option('--max-parallel <n>', 'calls in flight at once', int('max-parallel'))
      .option(
        '--models <a,b>',
        'only the calls to these models (names or patterns, such as claude-opus-*)',
        list,
      ),
  ).action(async (o: Record<string, unknown>) => {
    const body: Record<string, unknown> = { scope: o['scope'] };
    for (const f of ['id', 'subject', 'rpm', 'tpm', 'models'] as const)
      if (o[f] !== undefined) body[f] = o[f];
    if (o['maxParallel'] !== undefined) body['max_parallel'] = o['maxParallel'];
    const out = await call(target(program, o), 'POST', '/v1/rate-limits', body);
    process.stdout.write(`${JSON.stringify(out)}\n`);
  });

  listAndDelete(program, limits, '/v1/rate-limits', {
    list: 'every rate limit, with the requests and tokens left of its minute and its calls in flight',
    delete: 'delete a rate limit',
  });
}
