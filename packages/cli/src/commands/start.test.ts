import { chmodSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../load-config.js';
import { freePort, spawnTally, stopProcess } from '../testing/spawn-server.js';
import { openStore, secretKey } from './start.js';

describe('tally start', () => {
  it('serves on --port, prints an admin key once, and the key works', async () => {
    const dir = mkdtempSync(join(os.tmpdir(), 'tally-start-'));
    const port = await freePort();
    const env = { TALLY_DATA_DIR: dir, TALLY_LOG_LEVEL: 'warn' };
    const first = await spawnTally(['start', '--port', String(port)], env, /Admin key[\s\S]*tk-admin-\S+\n/);
    const key = /tk-admin-\S+/.exec(first.output())![0];
    try {
      const health = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(await health.json()).toMatchObject({ status: 'ok', store: 'duckdb' });
      const calls = await fetch(`http://127.0.0.1:${port}/v1/calls`, {
        headers: { authorization: `Bearer ${key}` },
      });
      expect(calls.status).toBe(200);
    } finally {
      await stopProcess(first.child);
    }
    const second = await spawnTally(['start', '--port', String(port)], env);
    try {
      await new Promise((r) => setTimeout(r, 100));
      expect(second.output()).not.toMatch(/Admin key/);
      const calls = await fetch(`http://127.0.0.1:${port}/v1/calls`, {
        headers: { authorization: `Bearer ${key}` },
      });
      expect(calls.status).toBe(200);
    } finally {
      await stopProcess(second.child);
    }
  });

  it("runs, as installed, with V8's young generation capped at 4 MB a semi-space", async () => {
    // The binary's first line starts Node with --max-semi-space-size=4: 8 MB of new space in all,
    // where Node's default grows to 32 MB under load (BENCHMARKS.md, 2026-12-04).
    const dir = mkdtempSync(join(os.tmpdir(), 'tally-start-'));
    const port = await freePort();
    const key = 'tk-admin-semi-space-0123456789';
    const env = { TALLY_DATA_DIR: dir, TALLY_LOG_LEVEL: 'warn', TALLY_ADMIN_KEY: key };
    const tally = await spawnTally(['start', '--port', String(port)], env, /listening on/, {
      asInstalled: true,
    });
    try {
      const metrics = await fetch(`http://127.0.0.1:${port}/metrics`, {
        headers: { authorization: `Bearer ${key}` },
      });
      const text = await metrics.text();
      const m = /tally_nodejs_heap_space_size_total_bytes\{space="new"\} (\d+)/.exec(text);
      expect(m).not.toBeNull();
      expect(Number(m![1])).toBeGreaterThan(0);
      expect(Number(m![1])).toBeLessThanOrEqual(8 * 2 ** 20);
    } finally {
      await stopProcess(tally.child);
    }
  });

  it('prints a bad config as a code and a hint, without a stack trace', async () => {
    const port = await freePort();
    const run = spawnTally(['start', '--port', String(port)], { TALLY_ADMIN_KEY: 'short' }, /hint/);
    const out = await run.then((s) => s.output()).catch((e: Error) => e.message);
    expect(out).toMatch(/error \[config_invalid\]/);
    expect(out).toMatch(/hint:/);
    expect(out).not.toMatch(/at .*\.js:\d+/);
  });

  it("makes the data folder the user's alone, and the secret key file too", async () => {
    const cwd = mkdtempSync(join(os.tmpdir(), 'tally-start-'));
    const config = loadConfig({ cwd, env: { TALLY_DATA_DIR: 'data/tally' } });
    const mode = (path: string) => statSync(path).mode & 0o777;
    const store = await openStore(config, cwd);
    await store.close();
    expect(mode(join(cwd, 'data'))).toBe(0o700);
    expect(mode(join(cwd, 'data/tally'))).toBe(0o700);
    await secretKey(config, cwd);
    expect(mode(join(cwd, 'data/tally/secret.key'))).toBe(0o600);
    // A key file others may read is made the user's alone, and still read.
    const other = mkdtempSync(join(os.tmpdir(), 'tally-start-'));
    writeFileSync(join(other, 'secret.key'), 'ab'.repeat(32));
    chmodSync(join(other, 'secret.key'), 0o644);
    const key = await secretKey(loadConfig({ cwd: other, env: { TALLY_DATA_DIR: '.' } }), other);
    expect(key.toString('hex')).toBe('ab'.repeat(32));
    expect(mode(join(other, 'secret.key'))).toBe(0o600);
  });
});
