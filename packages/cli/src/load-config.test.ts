import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from './load-config.js';

const tmp = () => mkdtempSync(join(os.tmpdir(), 'tally-cfg-'));

describe('loadConfig', () => {
  it('has defaults: port 4000, DuckDB in .tally', () => {
    const c = loadConfig({ cwd: tmp(), env: {} });
    expect(c).toMatchObject({ port: 4000, data_dir: '.tally', store: { kind: 'duckdb' }, source: null });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('reads yaml, then TALLY_* env, then flags', () => {
    const dir = tmp();
    writeFileSync(
      join(dir, 'tally.config.yaml'),
      'port: 5000\ntenant: acme\npricing:\n  azure_deployments: { prod: gpt-4o }\n',
    );
    const c = loadConfig({ cwd: dir, env: { TALLY_PORT: '6000', TALLY_LOG_LEVEL: 'warn' } });
    expect(c).toMatchObject({
      port: 6000,
      tenant: 'acme',
      log_level: 'warn',
      pricing: { azure_deployments: { prod: 'gpt-4o' } },
    });
    expect(loadConfig({ cwd: dir, env: { TALLY_PORT: '6000' }, overrides: { port: '7000' } }).port).toBe(
      7000,
    );
  });

  it('reads json from --config', () => {
    const dir = tmp();
    writeFileSync(join(dir, 'x.json'), JSON.stringify({ host: '0.0.0.0' }));
    expect(loadConfig({ cwd: dir, env: {}, file: 'x.json' }).host).toBe('0.0.0.0');
  });

  it('names the bad setting', () => {
    const dir = tmp();
    writeFileSync(join(dir, 'tally.config.json'), JSON.stringify({ port: 'many', colour: 'red' }));
    expect(() => loadConfig({ cwd: dir, env: {} })).toThrow(/port.*|colour/);
    try {
      loadConfig({ cwd: dir, env: {} });
    } catch (err) {
      expect((err as { code: string }).code).toBe('config_invalid');
    }
    writeFileSync(join(dir, 'tally.config.json'), '{');
    expect(() => loadConfig({ cwd: dir, env: {} })).toThrow(/not valid/);
    expect(() => loadConfig({ cwd: tmp(), env: { TALLY_ADMIN_KEY: 'short' } })).toThrow(/admin_key/);
    // A replica's key opens the control routes only: the admin key cannot double as it.
    const same = 'tk-admin-same-0123456789';
    expect(() => loadConfig({ cwd: tmp(), env: { TALLY_ADMIN_KEY: same, TALLY_GATEWAY_KEY: same } })).toThrow(
      /gateway_key must differ from admin_key/,
    );
    expect(
      loadConfig({ cwd: tmp(), env: { TALLY_GATEWAY_KEY: 'tk-gateway-0123456789abcdef' } }).gateway_key,
    ).toBe('tk-gateway-0123456789abcdef');
    // The embedded store cannot write under a few tens of MB.
    expect(() => loadConfig({ cwd: tmp(), env: { TALLY_STORE_MEMORY_LIMIT: '32MB' } })).toThrow(
      /memory_limit.*at least 64MB/,
    );
    expect(loadConfig({ cwd: tmp(), env: { TALLY_STORE_MEMORY_LIMIT: '1GiB' } }).store.memory_limit).toBe(
      '1GiB',
    );
  });

  it('refuses a repeated provider or route, and a provider URL that is not http(s)', () => {
    const write = (gateway: unknown) => {
      const dir = tmp();
      writeFileSync(join(dir, 'tally.config.json'), JSON.stringify({ gateway }));
      return dir;
    };
    const p = (id: string, base_url = 'http://127.0.0.1:9/v1') => ({ id, kind: 'openai', base_url });
    expect(() => loadConfig({ cwd: write({ providers: [p('a'), p('a')] }), env: {} })).toThrow(
      /provider id a is repeated/,
    );
    const route = { model: 'm', targets: [{ provider: 'a' }] };
    expect(() =>
      loadConfig({ cwd: write({ providers: [p('a')], routes: [route, route] }), env: {} }),
    ).toThrow(/route m is repeated/);
    expect(() => loadConfig({ cwd: write({ providers: [p('a', 'ftp://host/x')] }), env: {} })).toThrow(
      /http or https/,
    );
    // One deployment, one quota: the same limits wherever a route names it.
    const quoted = (model: string, rpm: number) => ({ model, targets: [{ provider: 'a', model: 'x', rpm }] });
    expect(() =>
      loadConfig({ cwd: write({ providers: [p('a')], routes: [quoted('m', 5), quoted('n', 6)] }), env: {} }),
    ).toThrow(/a\/x is given two quotas \(rpm 5, tpm none; rpm 6, tpm none\)/);
    expect(
      loadConfig({ cwd: write({ providers: [p('a')], routes: [quoted('m', 5), quoted('n', 5)] }), env: {} })
        .gateway.routes,
    ).toHaveLength(2);
  });

  it('says where a file fails to parse, and what, but never quotes it (a secret may stand there)', () => {
    const dir = tmp();
    const secret = 'sk-proj-SECRET0123456789';
    const cases: [string, string, RegExp][] = [
      [
        'tally.config.yaml',
        `gateway:\n  providers:\n    - id: openai\n      api_key: ${secret}: x\n`,
        /YAML error BLOCK_AS_IMPLICIT_KEY at line 4, column 16$/,
      ],
      [
        'flow.yaml',
        `gateway: { providers: [{ api_key: ${secret}: x }] }\n`,
        /YAML error \w+ at line 1, column \d+$/,
      ],
      ['a.json', `{\n  "secret_key": ${secret}\n}`, /JSON error \(Unexpected token\) at line 2, column 17$/],
      [
        'b.json',
        `{"secret_key": "${secret}" "port": 1}`,
        /JSON error \(Expected ',' or '}' after property value\) at line 1, column 43$/,
      ],
      ['c.json', `{"secret_key": "${secret}`, /JSON error \(Unterminated string\) at line 1, column 41$/],
    ];
    for (const [file, text, where] of cases) {
      writeFileSync(join(dir, file), text);
      let message = '';
      try {
        loadConfig({ cwd: dir, env: {}, file });
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message, file).toMatch(where);
      expect(message, file).not.toContain('SECRET');
    }
  });
});
