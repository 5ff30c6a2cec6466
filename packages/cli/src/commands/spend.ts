import { TallyError } from '@tally/core';
import type { Command } from 'commander';
import { apiCall, apiTarget, withApiOptions } from '../api.js';

/** The columns of a spend row, in the order a table or CSV shows them (after the group and the
 * bucket, when asked for). */
const COLUMNS = [
  'cost_usd',
  'list_cost_usd',
  'calls',
  'refused_calls',
  'unpriced_calls',
  'estimated_calls',
  'input_tokens',
  'output_tokens',
  'cache_read_tokens',
  'saved_usd',
] as const;

/** A CSV field: quoted when it holds a comma, a quote or a line break. */
const csvField = (v: unknown): string => {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
};

export function registerSpend(program: Command): void {
  withApiOptions(
    program
      .command('spend')
      .description('spend, exact in USD, as GET /v1/spend gives it: by a dimension or a tag, by period')
      .option('--group-by <g>', 'project, team, user, key, model, provider, use_case, or tag:KEY')
      .option('--interval <i>', 'hour, day, week or month')
      .option('--tz <zone>', 'the IANA time zone of the periods (default UTC)')
      .option('--tag <key:value>', 'only the calls with this tag')
      .option('--from <time>', 'RFC 3339 or epoch ms')
      .option('--to <time>', 'RFC 3339 or epoch ms, not included')
      .option('--format <f>', 'table, csv, or json (one line a row)', 'table'),
  ).action(async (o: Record<string, unknown>) => {
    const format = String(o['format']);
    if (!['table', 'csv', 'json'].includes(format))
      throw new TallyError('invalid_request', `--format must be table, csv or json; got "${format}".`);
    const query = new URLSearchParams();
    for (const [option, field] of [
      ['groupBy', 'group_by'],
      ['interval', 'interval'],
      ['tz', 'tz'],
      ['tag', 'tag'],
      ['from', 'from'],
      ['to', 'to'],
    ] as const)
      if (o[option] !== undefined) query.set(field, String(o[option]));
    const { rows } = (await apiCall(apiTarget(program, o), 'GET', `/v1/spend?${query}`)) as {
      rows: Record<string, unknown>[];
    };
    const group = o['groupBy'] === undefined ? [] : [String(o['groupBy'])];
    const head = [...group, ...(o['interval'] === undefined ? [] : ['bucket']), ...COLUMNS];
    if (format === 'json') {
      for (const r of rows) process.stdout.write(`${JSON.stringify(r)}\n`);
      return;
    }
    if (format === 'csv') {
      process.stdout.write(`${head.map(csvField).join(',')}\n`);
      for (const r of rows) process.stdout.write(`${head.map((c) => csvField(r[c])).join(',')}\n`);
      return;
    }
    const cells = rows.map((r) => head.map((c) => (r[c] === null ? '(none)' : String(r[c] ?? ''))));
    const widths = head.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i]!.length)));
    // Text to the left, figures to the right.
    const line = (row: string[]) =>
      row
        .map((v, i) => (i < head.length - COLUMNS.length ? v.padEnd(widths[i]!) : v.padStart(widths[i]!)))
        .join('  ')
        .trimEnd();
    process.stdout.write(`${line(head)}\n`);
    for (const row of cells) process.stdout.write(`${line(row)}\n`);
    if (rows.length === 0) process.stdout.write('(no calls)\n');
  });
}
