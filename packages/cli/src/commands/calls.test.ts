import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { freePort, spawnTally, stopProcess, TALLY_BIN } from '../testing/spawn-server.js';

const run = promisify(execFile);

describe('tally calls', () => {
  it('lists calls newest first with the API filters, page after page up to --limit', async () => {
    const dir = mkdtempSync(join(os.tmpdir(), 'tally-calls-'));
    const port = await freePort();
    const admin = 'tk-admin-calls-test-0123456789';
    const env = { ...process.env, TALLY_DATA_DIR: dir, TALLY_ADMIN_KEY: admin, TALLY_LOG_LEVEL: 'warn' };
    const server = await spawnTally(['start', '--port', String(port)], env as Record<string, string>);
    const url = `http://127.0.0.1:${port}`;
    const tally = async (...args: string[]) =>
      (await run(process.execPath, [TALLY_BIN, 'calls', '--url', url, ...args], { env })).stdout
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    try {
      // 1,200 calls, a second apart; two of them the attempts of one request.
      const t0 = Date.UTC(2026, 11, 1);
      for (let b = 0; b < 2; b++) {
        const events = Array.from({ length: b === 0 ? 1000 : 200 }, (_, j) => {
          const i = b * 1000 + j;
          return {
            id: `c-${String(i).padStart(4, '0')}`,
            type: 'llm.call',
            time: new Date(t0 + i * 1000).toISOString(),
            provider: 'openai',
            model: i % 2 ? 'gpt-4o' : 'gpt-4o-mini',
            tokens: { input: 100, output: 10 },
            project: 'support',
            tags: { feature: i % 4 === 0 ? 'summarize' : 'classify' },
            ...(i === 7 || i === 8 ? { request_id: 'req-7' } : {}),
          };
        });
        const r = await fetch(`${url}/v1/events`, {
          method: 'POST',
          headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
          body: JSON.stringify({ events }),
        });
        expect(r.status).toBe(200);
      }
      const attempts = await tally('--request-id', 'req-7');
      expect(attempts.map((c) => c['id'])).toEqual(['c-0008', 'c-0007']);
      expect(attempts[0]).toMatchObject({
        request_id: 'req-7',
        project: 'support',
        model_requested: 'gpt-4o-mini',
      });
      const many = await tally(
        '--limit',
        '1100',
        '--model',
        'gpt-4o-mini',
        '--from',
        new Date(t0).toISOString(),
      );
      expect(many.length).toBe(600);
      const all = await tally('--limit', '1100');
      expect(all.length).toBe(1100);
      expect(new Set(all.map((c) => c['id'])).size).toBe(1100);
      expect(all[0]!['id']).toBe('c-1199');
      expect(all[1099]!['id']).toBe('c-0100');
      expect((await tally()).length).toBe(100);
      const bad = await run(process.execPath, [TALLY_BIN, 'calls', '--url', url, '--status', 'maybe'], {
        env,
      }).catch((e) => e);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/error \[invalid_query\].*status/);
      const zero = await run(process.execPath, [TALLY_BIN, 'calls', '--url', url, '--limit', '0'], {
        env,
      }).catch((e) => e);
      expect(zero.stderr).toMatch(/error \[invalid_request\].*--limit must be a positive integer/);

      // tally spend: the same figures as GET /v1/spend, as a table, CSV or JSON lines.
      const spend = async (...args: string[]) =>
        (await run(process.execPath, [TALLY_BIN, 'spend', '--url', url, ...args], { env })).stdout;
      const api = (await (
        await fetch(`${url}/v1/spend?group_by=tag:feature`, { headers: { authorization: `Bearer ${admin}` } })
      ).json()) as { rows: Record<string, unknown>[] };
      const csv = (await spend('--group-by', 'tag:feature', '--format', 'csv')).trim().split('\n');
      expect(csv[0]).toBe(
        'tag:feature,cost_usd,list_cost_usd,calls,refused_calls,unpriced_calls,estimated_calls,input_tokens,output_tokens,cache_read_tokens,saved_usd',
      );
      expect(csv.slice(1)).toEqual(
        api.rows.map(
          (r) =>
            `${r['tag:feature']},${r['cost_usd']},${r['list_cost_usd']},${r['calls']},0,0,0,${r['input_tokens']},${r['output_tokens']},0,0`,
        ),
      );
      expect(api.rows.map((r) => [r['tag:feature'], r['calls']])).toEqual([
        ['classify', 900],
        ['summarize', 300],
      ]);
      const table = (await spend('--group-by', 'model', '--interval', 'day')).trim().split('\n');
      expect(table[0]).toMatch(/^model\s+bucket\s+cost_usd\s+list_cost_usd\s+calls/);
      expect(table.length).toBe(1 + 2);
      expect(table[1]).toMatch(/^gpt-4o\s+2026-12-01T00:00:00\.000Z\s+\d/);
      const lines = (await spend('--format', 'json', '--tag', 'feature:summarize')).trim().split('\n');
      expect(lines.map((l) => JSON.parse(l).calls)).toEqual([300]);
      const badFormat = await run(process.execPath, [TALLY_BIN, 'spend', '--url', url, '--format', 'xml'], {
        env,
      }).catch((e) => e);
      expect(badFormat.stderr).toMatch(/error \[invalid_request\].*--format must be table, csv or json/);

      // tally budgets: a project's budget on one model reads that model's spend this month.
      const budgets = async (...args: string[]) =>
        (await run(process.execPath, [TALLY_BIN, 'budgets', ...args, '--url', url], { env })).stdout.trim();
      const made = JSON.parse(
        await budgets(
          'create',
          '--id',
          'support-4o',
          '--scope',
          'project',
          '--subject',
          'support',
          '--limit-usd',
          '50',
          '--action',
          'block',
          '--thresholds',
          '0.5,0.9',
          '--models',
          'gpt-4o',
        ),
      );
      expect(made).toMatchObject({
        id: 'support-4o',
        models: ['gpt-4o'],
        thresholds: [0.5, 0.9],
        action: 'block',
      });
      const byModel = (await (
        await fetch(`${url}/v1/spend?group_by=model`, { headers: { authorization: `Bearer ${admin}` } })
      ).json()) as { rows: Record<string, unknown>[] };
      const listedBudget = (await budgets('list')).split('\n').map((l) => JSON.parse(l));
      expect(listedBudget.find((b) => b.id === 'support-4o')).toMatchObject({
        spent_usd: byModel.rows.find((r) => r['model'] === 'gpt-4o')!['cost_usd'],
      });
      expect(JSON.parse(await budgets('delete', 'support-4o'))).toEqual({ id: 'support-4o', deleted: true });
      const gone = await run(process.execPath, [TALLY_BIN, 'budgets', 'delete', 'support-4o', '--url', url], {
        env,
      }).catch((e) => e);
      expect(gone.stderr).toMatch(/error \[not_found\]: No budget support-4o/);

      // tally rate-limits: a team's requests and tokens a minute, listed with what is left.
      const limits = async (...args: string[]) =>
        (
          await run(process.execPath, [TALLY_BIN, 'rate-limits', ...args, '--url', url], { env })
        ).stdout.trim();
      const limit = JSON.parse(
        await limits(
          'create',
          '--id',
          'cx-rl',
          '--scope',
          'team',
          '--subject',
          'cx',
          '--rpm',
          '600',
          '--max-parallel',
          '8',
          '--models',
          'gpt-4o*',
        ),
      );
      expect(limit).toMatchObject({
        id: 'cx-rl',
        scope: 'team',
        subject: 'cx',
        rpm: 600,
        tpm: null,
        max_parallel: 8,
        models: ['gpt-4o*'],
      });
      const listedLimits = (await limits('list')).split('\n').map((l) => JSON.parse(l));
      expect(listedLimits).toEqual([
        expect.objectContaining({
          id: 'cx-rl',
          remaining_requests: 600,
          remaining_tokens: null,
          in_flight: 0,
        }),
      ]);
      const noLimit = await run(
        process.execPath,
        [TALLY_BIN, 'rate-limits', 'create', '--scope', 'team', '--subject', 'cx', '--url', url],
        { env },
      ).catch((e) => e);
      expect(noLimit.stderr).toMatch(
        /error \[invalid_request\]: A rate limit needs rpm, tpm, max_parallel or several/,
      );
      expect(JSON.parse(await limits('delete', 'cx-rl'))).toEqual({ id: 'cx-rl', deleted: true });
    } finally {
      await stopProcess(server.child);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
