import { writeFileSync } from 'node:fs';
import { TallyError } from '@tally/core';
import type { Command } from 'commander';
import { apiCall, apiTarget, apiText, withApiOptions } from '../api.js';

type Opts = Record<string, unknown>;

/** The query string of --from and --to, and of the extra parameters given. */
function query(o: Opts, extra: Record<string, string | undefined> = {}): string {
  const q = new URLSearchParams();
  for (const k of ['from', 'to'] as const) if (typeof o[k] === 'string') q.set(k, o[k] as string);
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

interface Finding {
  flag: string;
  severity: string;
  subject: { use_case?: string; project?: string };
  message: string;
  evidence: { numbers: Record<string, unknown>; query: string };
  fix: string;
}

export function registerAnalytics(program: Command): void {
  withApiOptions(
    program
      .command('audit')
      .description('the red-flag audit: each finding with its severity, evidence and fix')
      .option('--from <time>', 'RFC 3339 (default: eight weeks ago)')
      .option('--to <time>', 'RFC 3339 (default: now)')
      .option('--use-case <id>', 'only this use case')
      .option('--json', 'the findings as JSON, with the SQL behind each'),
  ).action(async (o: Opts) => {
    const out = (await apiCall(
      apiTarget(program, o),
      'GET',
      `/v1/audit${query(o, { use_case: o['useCase'] as string | undefined })}`,
    )) as {
      findings: Finding[];
    };
    if (o['json']) {
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      return;
    }
    if (out.findings.length === 0) process.stdout.write('No red flags.\n');
    for (const f of out.findings) {
      const who = f.subject.use_case ?? f.subject.project ?? '';
      const numbers = Object.entries(f.evidence.numbers)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ');
      process.stdout.write(
        `${f.severity.toUpperCase().padEnd(6)} ${f.flag} (${who})\n  ${f.message}\n  evidence: ${numbers}\n  fix: ${f.fix}\n`,
      );
    }
    // Like a linter: high-severity findings make the command fail, so CI can gate on it.
    if (out.findings.some((f) => f.severity === 'high')) process.exitCode = 3;
  });

  withApiOptions(
    program
      .command('report')
      .description('an executive one-pager for a use case: scorecard, ROI, red flags, next steps')
      .requiredOption('--use-case <id>')
      .option('--from <time>', 'RFC 3339 (default: eight weeks ago)')
      .option('--to <time>', 'RFC 3339 (default: now)')
      .option('--format <f>', 'md or html', 'html')
      .option('--out <file>', 'write it here (default: standard output)'),
  ).action(async (o: Opts) => {
    const format = String(o['format']);
    if (format !== 'md' && format !== 'html')
      throw new TallyError('invalid_request', '--format must be md or html.');
    const text = await apiText(
      apiTarget(program, o),
      `/v1/use-cases/${encodeURIComponent(String(o['useCase']))}/report${query(o, { format })}`,
    );
    if (typeof o['out'] === 'string') {
      writeFileSync(o['out'], text);
      process.stdout.write(`wrote ${o['out']}\n`);
    } else process.stdout.write(text);
  });

  withApiOptions(
    program
      .command('scorecard <use-case>')
      .description("a use case's scorecard as JSON")
      .option('--from <time>')
      .option('--to <time>')
      .option('--sequential', 'always-valid intervals (safe to look at before the pilot ends)'),
  ).action(async (id: string, o: Opts) => {
    const out = await apiCall(
      apiTarget(program, o),
      'GET',
      `/v1/use-cases/${encodeURIComponent(id)}/scorecard${query(o, { sequential: o['sequential'] ? 'true' : undefined })}`,
    );
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  });
}
