import { readFileSync } from 'node:fs';
import { TallyError } from '@tally/core';
import type { Command } from 'commander';
import { apiCall, apiTarget, withApiOptions } from '../api.js';

type Opts = Record<string, unknown>;

const share = (v: string) => {
  const n = Number(v);
  if (!(n >= 0 && n <= 0.5))
    throw new TallyError('invalid_request', '--holdout-share must be between 0 and 0.5.');
  return n;
};

/** Register fields from a JSON file (--file), then the flags on top. */
function fields(o: Opts): Record<string, unknown> {
  let body: Record<string, unknown> = {};
  if (typeof o['file'] === 'string') {
    try {
      body = JSON.parse(readFileSync(o['file'], 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new TallyError('invalid_request', `Cannot read ${o['file']} as JSON: ${(err as Error).message}`);
    }
  }
  const flags: [string, string][] = [
    ['id', 'id'],
    ['name', 'name'],
    ['department', 'department'],
    ['holdoutShare', 'holdout_share'],
    ['unitValueUsd', 'unit_value_usd'],
    ['reviewerHourlyUsd', 'reviewer_hourly_usd'],
  ];
  for (const [flag, field] of flags) if (o[flag] !== undefined) body[field] = o[flag];
  return body;
}

const print = (v: unknown) => process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);

function gateLines(gate: {
  from: string;
  to: string;
  passed: boolean;
  checks: { check: string; passed: boolean; detail: string }[];
}): string {
  const head = `${gate.from} → ${gate.to}: ${gate.passed ? 'passed' : 'not passed'}`;
  return [head, ...gate.checks.map((c) => `  ${c.passed ? 'ok  ' : 'FAIL'} ${c.check}: ${c.detail}`)].join(
    '\n',
  );
}

export function registerUseCases(program: Command): void {
  const uc = program.command('use-case').description('the use-case register and its stage gates');
  const register = (c: Command) =>
    withApiOptions(c)
      .option('--file <json>', 'register fields as JSON (owners, smart, baseline, data_readiness, ...)')
      .option('--name <name>')
      .option('--department <d>')
      .option('--holdout-share <f>', 'fraction of units kept without AI (0 to 0.5)', share)
      .option('--unit-value-usd <usd>', 'what one successful outcome is worth')
      .option('--reviewer-hourly-usd <usd>', "a reviewer's cost an hour");

  register(uc.command('create').description('register a use case (it starts at the idea stage)'))
    .option('--id <id>', 'lowercase id, e.g. support-triage')
    .action(async (o: Opts) => {
      print(await apiCall(apiTarget(program, o), 'POST', '/v1/use-cases', fields(o)));
    });

  register(uc.command('update <id>').description('change register fields')).action(
    async (id: string, o: Opts) => {
      print(
        await apiCall(apiTarget(program, o), 'PATCH', `/v1/use-cases/${encodeURIComponent(id)}`, fields(o)),
      );
    },
  );

  withApiOptions(uc.command('list').description('every use case, a line each')).action(async (o: Opts) => {
    const out = (await apiCall(apiTarget(program, o), 'GET', '/v1/use-cases')) as {
      data: { id: string; stage: string; name: string; department: string | null }[];
    };
    for (const u of out.data) {
      process.stdout.write(
        `${u.id.padEnd(24)} ${u.stage.padEnd(11)} ${u.name}${u.department ? ` (${u.department})` : ''}\n`,
      );
    }
  });

  withApiOptions(uc.command('show <id>').description('a use case, and the gate to its next stage')).action(
    async (id: string, o: Opts) => {
      const t = apiTarget(program, o);
      const path = `/v1/use-cases/${encodeURIComponent(id)}`;
      print(await apiCall(t, 'GET', path));
      const gate = (await apiCall(t, 'GET', `${path}/gate`)) as Parameters<typeof gateLines>[0];
      if (gate.from !== gate.to) process.stdout.write(`${gateLines(gate)}\n`);
    },
  );

  withApiOptions(
    uc
      .command('stage <id> <to>')
      .description('move a use case to a stage; forward moves must pass the gate')
      .option('--reason <text>', 'why (kept in the history; needed with --force)')
      .option('--force', 'move although the gate fails (admin; recorded as forced)'),
  ).action(async (id: string, to: string, o: Opts) => {
    const body: Record<string, unknown> = { to };
    if (o['reason'] !== undefined) body['reason'] = o['reason'];
    if (o['force']) body['force'] = true;
    const out = (await apiCall(
      apiTarget(program, o),
      'POST',
      `/v1/use-cases/${encodeURIComponent(id)}/stage`,
      body,
    )) as {
      stage: string;
      gate: Parameters<typeof gateLines>[0];
    };
    process.stdout.write(`${gateLines(out.gate)}\n${id} is now at ${out.stage}.\n`);
  });

  const ledger = program
    .command('ledger')
    .description('the hidden-cost ledger: monthly amounts per use case');
  withApiOptions(
    ledger
      .command('add')
      .description('add a monthly amount')
      .requiredOption('--use-case <id>')
      .requiredOption('--month <YYYY-MM>')
      .requiredOption(
        '--category <c>',
        'infrastructure, data_engineering, monitoring_retraining, human_review_qa, security_compliance, change_management_training, licences or other',
      )
      .requiredOption('--amount-usd <usd>')
      .option('--id <id>', 'an id makes a retried add count once')
      .option('--note <text>'),
  ).action(async (o: Opts) => {
    const body: Record<string, unknown> = {
      use_case: o['useCase'],
      month: o['month'],
      category: o['category'],
      amount_usd: o['amountUsd'],
    };
    if (o['id'] !== undefined) body['id'] = o['id'];
    if (o['note'] !== undefined) body['note'] = o['note'];
    print(await apiCall(apiTarget(program, o), 'POST', '/v1/ledger', body));
  });

  withApiOptions(
    ledger
      .command('list')
      .description('entries, and monthly totals with human review time priced')
      .option('--use-case <id>'),
  ).action(async (o: Opts) => {
    const q = o['useCase'] ? `?use_case=${encodeURIComponent(String(o['useCase']))}` : '';
    const out = (await apiCall(apiTarget(program, o), 'GET', `/v1/ledger${q}`)) as {
      months: { use_case: string; month: string; by_category: Record<string, string>; total_usd: string }[];
    };
    for (const m of out.months) {
      const parts = Object.entries(m.by_category).map(([c, v]) => `${c} $${v}`);
      process.stdout.write(
        `${m.use_case.padEnd(20)} ${m.month}  $${m.total_usd.padEnd(14)} ${parts.join(', ')}\n`,
      );
    }
  });
}
