import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { nanoToUsd, simulateCompany, systemClock } from '@tally/core';
import type { Command } from 'commander';
import { demoCalls } from '../demo-data.js';
import { configFromFlags, type ListenFlags, startServer, untilSignal } from './start.js';

const DEMO_FILE = 'demo.duckdb';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('run Tally with a month of realistic demo data (a separate store, rebuilt each run)')
    .option('-p, --port <port>', 'port to listen on (default 4000)')
    .option('--host <host>', 'address to bind (default 127.0.0.1)')
    .option('--days <n>', 'days of history', '30')
    .action(async (opts: ListenFlags & { days: string }) => {
      const config = configFromFlags(program, opts);
      const cwd = process.cwd();
      const file = resolve(cwd, config.data_dir, DEMO_FILE);
      for (const f of [file, `${file}.wal`]) rmSync(f, { force: true });
      let summary = '';
      const server = await startServer(config, cwd, {
        file: DEMO_FILE,
        async prepare(store, price) {
          const { calls, fromTrace } = demoCalls({
            cwd,
            tenant: config.tenant,
            now: systemClock.now(),
            days: Math.max(1, Math.min(365, Number(opts.days) || 30)),
            price,
          });
          for (let i = 0; i < calls.length; i += 10_000) {
            await store.ingest({ calls: calls.slice(i, i + 10_000), tasks: [] });
          }
          const total = calls.reduce((n, c) => n + (c.cost_effective_nano ?? 0n), 0n);
          // Four use cases with known truths, eight weeks of their task events and calls: a real
          // holdout result, a null one, a cost that rises with volume, and a double claim.
          const { loadCompanyIntoStore } = await import('@tally/server');
          const now = systemClock.now();
          const company = simulateCompany({ seed: 42, end: now, weeks: 8 });
          const loaded = await loadCompanyIntoStore(store, company, { tenant: config.tenant, price, now });
          await store.putBudget({
            tenant: config.tenant,
            id: 'budget-support-triage',
            scope: 'project',
            subject: 'support-triage',
            limit_nano: 2_000_000_000_000n,
            period: 'month',
            time_zone: 'UTC',
            thresholds: [0.5, 0.8, 1],
            action: 'alert',
            downgrade_model: null,
            models: [],
            created_at: now,
          });
          summary =
            `Loaded ${calls.length.toLocaleString('en-US')} demo calls (${nanoToUsd(total)} USD) ` +
            `${fromTrace ? 'replayed from the Azure LLM inference trace 2023 (CC-BY-4.0, Patel et al., Splitwise, ISCA 2024)' : 'from a seeded generator'}, ` +
            `and ${loaded.useCases} use cases with ${loaded.tasks.toLocaleString('en-US')} task events and ${loaded.calls.toLocaleString('en-US')} calls of a simulated company.`;
        },
      });
      process.stdout.write(`${summary}\nTally (demo) is listening on ${server.url}\n`);
      if (server.adminKey) {
        process.stdout.write(
          `\nAdmin key for this demo store:\n  ${server.adminKey}\n\n` +
            `Try:\n  curl -s "${server.url}/v1/spend?group_by=project" -H "authorization: Bearer ${server.adminKey}"\n` +
            `  curl -s "${server.url}/v1/use-cases/support-triage/scorecard" -H "authorization: Bearer ${server.adminKey}"\n` +
            `  TALLY_ADMIN_KEY=${server.adminKey} npx tally audit --url ${server.url}\n` +
            `  TALLY_ADMIN_KEY=${server.adminKey} npx tally report --use-case support-triage --url ${server.url} --out report.html\n\n`,
        );
      }
      await untilSignal(server);
    });
}
