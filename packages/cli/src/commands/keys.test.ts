import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { freePort, spawnTally, stopProcess, TALLY_BIN } from '../testing/spawn-server.js';

const run = promisify(execFile);

describe('tally keys', () => {
  it('creates, lists and revokes virtual keys through the running server', async () => {
    const dir = mkdtempSync(join(os.tmpdir(), 'tally-keys-'));
    const port = await freePort();
    const env = {
      ...process.env,
      TALLY_DATA_DIR: dir,
      TALLY_ADMIN_KEY: 'tk-admin-keys-test-0123456789',
      TALLY_LOG_LEVEL: 'warn',
    };
    const server = await spawnTally(['start', '--port', String(port)], env as Record<string, string>);
    const url = `http://127.0.0.1:${port}`;
    try {
      const made = await run(
        process.execPath,
        [
          TALLY_BIN,
          'keys',
          'create',
          '--url',
          url,
          '--name',
          'support bot',
          '--project',
          'support',
          '--team',
          'cx',
          '--budget-usd',
          '25',
          '--rpm',
          '60',
          '--tpm',
          '100000',
          '--max-parallel',
          '4',
          '--models',
          'gpt-4o,gpt-4o-mini',
          '--tags',
          'app=checkout,env=prod',
        ],
        { env },
      );
      const { id, key } = JSON.parse(made.stdout);
      expect(key).toMatch(/^tk-/);
      const listed = await run(process.execPath, [TALLY_BIN, 'keys', 'list', '--url', url], { env });
      const row = listed.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
        .find((k) => k.id === id);
      expect(row).toMatchObject({
        name: 'support bot',
        project: 'support',
        team: 'cx',
        rpm: 60,
        tpm: 100000,
        max_parallel: 4,
        models: ['gpt-4o', 'gpt-4o-mini'],
        tags: { app: 'checkout', env: 'prod' },
      });
      expect(listed.stdout).not.toContain(key);
      const updated = await run(
        process.execPath,
        [
          TALLY_BIN,
          'keys',
          'update',
          id,
          '--url',
          url,
          '--rpm',
          '120',
          '--models',
          'gpt-4o*',
          '--clear',
          'tpm,team,tags,max_parallel',
        ],
        { env },
      );
      expect(JSON.parse(updated.stdout)).toMatchObject({
        id,
        rpm: 120,
        tpm: null,
        max_parallel: null,
        team: null,
        models: ['gpt-4o*'],
        tags: {},
      });
      const badTags = await run(
        process.execPath,
        [TALLY_BIN, 'keys', 'update', id, '--url', url, '--tags', 'app'],
        {
          env,
        },
      ).catch((e) => e);
      expect(badTags.stderr).toMatch(/error \[invalid_request\]: --tags must be name=value pairs/);
      const badUpdate = await run(
        process.execPath,
        [TALLY_BIN, 'keys', 'update', 'key_none', '--url', url, '--rpm', '5'],
        {
          env,
        },
      ).catch((e) => e);
      expect(badUpdate.stderr).toMatch(/error \[not_found\]: No active key key_none/);
      const rotated = await run(process.execPath, [TALLY_BIN, 'keys', 'rotate', id, '--url', url], { env });
      const fresh = JSON.parse(rotated.stdout) as { id: string; key: string };
      expect(fresh).toMatchObject({ id, key: expect.stringMatching(/^tk-/) });
      expect(fresh.key).not.toBe(key);
      const revoked = await run(process.execPath, [TALLY_BIN, 'keys', 'revoke', id, '--url', url], { env });
      expect(JSON.parse(revoked.stdout)).toEqual({ id, revoked: true });
      const again = await run(process.execPath, [TALLY_BIN, 'keys', 'revoke', id, '--url', url], {
        env,
      }).catch((e) => e);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/error \[not_found\]/);
      const bad = await run(process.execPath, [TALLY_BIN, 'keys', 'create', '--url', url, '--rpm', 'lots'], {
        env,
      }).catch((e) => e);
      expect(bad.stderr).toMatch(/error \[invalid_request\].*rpm/);
    } finally {
      await stopProcess(server.child);
    }
  });

  it('says when no server answers at --url, with a code and a hint, and no stack trace', async () => {
    const port = await freePort();
    const env = { ...process.env, TALLY_ADMIN_KEY: 'tk-admin-keys-test-0123456789' };
    const url = `http://127.0.0.1:${port}`;
    const out = await run(process.execPath, [TALLY_BIN, 'keys', 'create', '--url', url], { env }).catch(
      (e) => e,
    );
    expect(out.code).toBe(1);
    expect(out.stderr).toMatch(
      /error \[server_unreachable\]: Cannot reach the Tally server at http:\/\/127\.0\.0\.1/,
    );
    expect(out.stderr).toMatch(/hint: .*--url/);
    expect(out.stderr).not.toMatch(/at .*\.js:\d+/);
  });
});
