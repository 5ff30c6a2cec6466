import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, type Spawned, spawnTally, stopProcess, TALLY_BIN } from '../testing/spawn-server.js';

const run = promisify(execFile);

describe('tally use-case and tally ledger', () => {
  const dir = mkdtempSync(join(os.tmpdir(), 'tally-uc-'));
  const env = {
    ...process.env,
    TALLY_DATA_DIR: dir,
    TALLY_ADMIN_KEY: 'tk-admin-uc-test-0123456789',
    TALLY_LOG_LEVEL: 'warn',
  };
  let server: Spawned;
  let url: string;
  beforeAll(async () => {
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    server = await spawnTally(['start', '--port', String(port)], env as Record<string, string>);
  });
  afterAll(async () => {
    if (server) await stopProcess(server.child);
  });
  const tally = (...args: string[]) => run(process.execPath, [TALLY_BIN, ...args, '--url', url], { env });
  const fails = (...args: string[]) =>
    tally(...args).then(
      () => {
        throw new Error('expected a failure');
      },
      (e: { stderr: string; code: number }) => e,
    );

  it('registers a use case, shows its gate, refuses a failing stage change and moves once it passes', async () => {
    const made = JSON.parse(
      (
        await tally(
          'use-case',
          'create',
          '--id',
          'triage',
          '--name',
          'Support triage',
          '--holdout-share',
          '0.2',
        )
      ).stdout,
    );
    expect(made).toMatchObject({ id: 'triage', stage: 'idea', holdout: { share: 0.2 } });
    expect((await tally('use-case', 'list')).stdout).toMatch(/^triage\s+idea\s+Support triage/);

    const refused = await fails('use-case', 'stage', 'triage', 'readiness');
    expect(refused.stderr).toMatch(/error \[gate_failed\]/);
    expect(refused.stderr).toMatch(/FAIL smart: missing: task, metric, baseline, target, time_box/);
    expect(refused.stderr).toMatch(/hint:/);
    expect(refused.stderr).not.toMatch(/at .*\.js:\d+/);

    const card = join(dir, 'card.json');
    writeFileSync(
      card,
      JSON.stringify({
        smart: {
          task: 'route tickets',
          metric: 'handling time',
          baseline: '8 min',
          target: '6 min',
          time_box: 'Q1',
        },
      }),
    );
    await tally('use-case', 'update', 'triage', '--file', card);
    const moved = await tally('use-case', 'stage', 'triage', 'readiness', '--reason', 'card done');
    expect(moved.stdout).toMatch(/idea → readiness: passed/);
    expect(moved.stdout).toMatch(/triage is now at readiness/);
    const shown = await tally('use-case', 'show', 'triage');
    expect(shown.stdout).toMatch(/readiness → pilot: not passed/);
    expect(shown.stdout).toMatch(/FAIL owners: no product, finance, data owner/);
  });

  it('adds ledger entries and lists monthly totals', async () => {
    await tally(
      'ledger',
      'add',
      '--use-case',
      'triage',
      '--month',
      '2026-11',
      '--category',
      'infrastructure',
      '--amount-usd',
      '1200.50',
    );
    await tally(
      'ledger',
      'add',
      '--use-case',
      'triage',
      '--month',
      '2026-11',
      '--category',
      'licences',
      '--amount-usd',
      '99.50',
    );
    const listed = await tally('ledger', 'list', '--use-case', 'triage');
    expect(listed.stdout).toMatch(/triage\s+2026-11\s+\$1300\s+infrastructure \$1200\.5, licences \$99\.5/);
    const bad = await fails(
      'ledger',
      'add',
      '--use-case',
      'triage',
      '--month',
      'Nov',
      '--category',
      'infrastructure',
      '--amount-usd',
      '1',
    );
    expect(bad.stderr).toMatch(/error \[invalid_request\].*month/);
  });
});
