import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MockUpstream, SKIP_WITHOUT_RECORDINGS } from '@tally/gateway/testing';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, type Spawned, spawnTally, stopProcess, TALLY_BIN } from '../testing/spawn-server.js';

const ADMIN = 'tk-admin-replica-cli-0123456789';
const GATEWAY = 'tk-gateway-replica-cli-0123456789';

describe.skipIf(SKIP_WITHOUT_RECORDINGS)('tally gateway', () => {
  const mock = new MockUpstream();
  let server: Spawned;
  let replica: Spawned;
  let serverUrl: string;
  let replicaUrl: string;

  beforeAll(async () => {
    await mock.start();
    const env = {
      TALLY_DATA_DIR: mkdtempSync(join(os.tmpdir(), 'tally-replica-')),
      TALLY_ADMIN_KEY: ADMIN,
      TALLY_GATEWAY_KEY: GATEWAY,
      TALLY_LOG_LEVEL: 'warn',
      OPENAI_BASE_URL: `${mock.url}/v1`,
      OPENAI_API_KEY: 'sk-upstream',
    };
    const [sp, gp] = [await freePort(), await freePort()];
    serverUrl = `http://127.0.0.1:${sp}`;
    replicaUrl = `http://127.0.0.1:${gp}`;
    server = await spawnTally(['start', '--port', String(sp)], env);
    replica = await spawnTally(
      ['gateway', '--server', serverUrl, '--port', String(gp)],
      env,
      /gateway is listening/,
    );
  });
  afterAll(async () => {
    if (replica) await stopProcess(replica.child);
    if (server) await stopProcess(server.child);
    await mock.stop();
  });

  it('proxies with a key made on the server, and the server shows the call once the replica stops', async () => {
    expect(replica.output()).toContain(`reporting to ${serverUrl}`);
    const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
    const made = await fetch(`${serverUrl}/v1/keys`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ project: 'support', budget_usd: 5, period: 'month' }),
    });
    const { key } = (await made.json()) as { key: string };
    const openai = new OpenAI({ apiKey: key, baseURL: `${replicaUrl}/v1`, maxRetries: 0 });
    const out = await openai.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'Hello' }],
    });
    expect(out.choices.length).toBeGreaterThan(0);
    // Stopping the replica flushes its metering to the server.
    await stopProcess(replica.child);
    const calls = (await (await fetch(`${serverUrl}/v1/calls`, { headers: admin })).json()) as {
      data: { project: string; pricing_status: string }[];
    };
    expect(calls.data).toHaveLength(1);
    expect(calls.data[0]).toMatchObject({ project: 'support', pricing_status: 'priced' });
  });

  it('starts with a gateway key made by tally keys create --role gateway, and stops at once on an admin key', async () => {
    const env = { ...process.env, TALLY_ADMIN_KEY: ADMIN, TALLY_LOG_LEVEL: 'warn' };
    const made = await promisify(execFile)(
      process.execPath,
      [TALLY_BIN, 'keys', 'create', '--role', 'gateway', '--url', serverUrl],
      { env },
    );
    const { key } = JSON.parse(made.stdout) as { key: string };
    expect(key).toMatch(/^tk-gateway-/);
    const replicaEnv = {
      TALLY_DATA_DIR: mkdtempSync(join(os.tmpdir(), 'tally-replica-')),
      TALLY_LOG_LEVEL: 'warn',
    };
    const port = await freePort();
    const second = await spawnTally(
      ['gateway', '--server', serverUrl, '--port', String(port)],
      { ...replicaEnv, TALLY_GATEWAY_KEY: key },
      /gateway is listening/,
    );
    await stopProcess(second.child);
    const refused = await spawnTally(
      ['gateway', '--server', serverUrl, '--port', String(await freePort())],
      { ...replicaEnv, TALLY_GATEWAY_KEY: ADMIN },
      /hint/,
    )
      .then((s) => s.output())
      .catch((e: Error) => e.message);
    expect(refused).toMatch(
      /error \[gateway_key_refused\]: The Tally server at .* answered GET \/v1\/gateway\/providers with 403/,
    );
    expect(refused).toMatch(/hint: Set TALLY_GATEWAY_KEY/);
  });
});

describe('tally gateway without a gateway key', () => {
  it('says what to set, with a code and no stack trace', async () => {
    const port = await freePort();
    const run = spawnTally(['gateway', '--server', 'http://127.0.0.1:1', '--port', String(port)], {}, /hint/);
    const out = await run.then((s) => s.output()).catch((e: Error) => e.message);
    expect(out).toMatch(/error \[config_invalid\]/);
    expect(out).toMatch(/TALLY_GATEWAY_KEY/);
    expect(out).toMatch(/--role gateway/);
    expect(out).not.toMatch(/at .*\.js:\d+/);
  });

  it('says when the server cannot be reached', async () => {
    const port = await freePort();
    const run = spawnTally(
      ['gateway', '--server', 'http://127.0.0.1:1', '--port', String(port)],
      { TALLY_GATEWAY_KEY: 'tk-gateway-unreachable-0123456789' },
      /hint/,
    );
    const out = await run.then((s) => s.output()).catch((e: Error) => e.message);
    expect(out).toMatch(
      /error \[server_unreachable\]: Cannot reach the Tally server at http:\/\/127\.0\.0\.1:1/,
    );
    expect(out).not.toMatch(/at .*\.js:\d+/);
  });
});
