import type { Command } from 'commander';
import { apiCall as call, positiveInt, apiTarget as target, withApiOptions } from '../api.js';

/** The filters of GET /v1/calls, by option name (as commander names them) and query field. */
const FILTERS = [
  ['project', 'project'],
  ['team', 'team'],
  ['user', 'user'],
  ['model', 'model'],
  ['provider', 'provider'],
  ['useCase', 'use_case'],
  ['taskId', 'task_id'],
  ['keyId', 'key_id'],
  ['requestId', 'request_id'],
  ['errorType', 'error_type'],
  ['status', 'status'],
  ['tag', 'tag'],
  ['from', 'from'],
  ['to', 'to'],
] as const;

/** The most calls one page of the API holds. */
const PAGE = 1000;

export function registerCalls(program: Command): void {
  withApiOptions(
    program
      .command('calls')
      .description('metered calls, newest first, one JSON line each (as GET /v1/calls shows them)')
      .option('--project <p>')
      .option('--team <t>')
      .option('--user <u>')
      .option('--model <m>', 'the model the call asked for')
      .option('--provider <p>', 'the provider it is priced under')
      .option('--use-case <u>')
      .option('--task-id <t>')
      .option('--key-id <k>', "the virtual key's id")
      .option('--request-id <r>', 'the attempts of one gateway request (x-tally-request-id)')
      .option('--status <s>', 'ok, error, or refused (answered by the gateway without going upstream)')
      .option('--error-type <e>', 'calls whose error type starts so, e.g. upstream_429')
      .option('--tag <key:value>', 'calls with this tag (x-tally-tags), e.g. feature:summarize')
      .option('--from <time>', 'RFC 3339 or epoch ms')
      .option('--to <time>', 'RFC 3339 or epoch ms, not included')
      .option('--limit <n>', 'the most calls to print, page after page', positiveInt('limit'), 100),
  ).action(async (o: Record<string, unknown>) => {
    const t = target(program, o);
    const query = new URLSearchParams();
    for (const [option, field] of FILTERS) if (o[option] !== undefined) query.set(field, String(o[option]));
    let left = o['limit'] as number;
    while (left > 0) {
      query.set('limit', String(Math.min(left, PAGE)));
      const page = (await call(t, 'GET', `/v1/calls?${query}`)) as {
        data: Record<string, unknown>[];
        next_cursor: string | null;
      };
      for (const c of page.data) process.stdout.write(`${JSON.stringify(c)}\n`);
      left -= page.data.length;
      if (page.next_cursor === null || page.data.length === 0) break;
      query.set('cursor', page.next_cursor);
    }
  });
}
