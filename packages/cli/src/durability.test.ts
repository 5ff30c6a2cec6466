import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { MockUpstream, SKIP_WITHOUT_RECORDINGS } from '@tally/gateway/testing';
import { createDuckDbStore } from '@tally/store';
import { Pool } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, spawnTally, stopProcess } from './testing/spawn-server.js';

const KEY = 'tk-admin-durability-0123456789';
const BATCH = 250;
const dir = mkdtempSync(join(os.tmpdir(), 'tally-kill-'));

function batch(sender: number, n: number): { ids: string[]; body: string } {
  const ids: string[] = [];
  const events = [];
  for (let i = 0; i < BATCH; i++) {
    const id = `s${sender}-b${n}-e${i}`;
    ids.push(id);
    events.push({
      id,
      type: i % 5 === 0 ? 'task.completed' : 'llm.call',
      time: new Date(Date.UTC(2026, 10, 1, 0, 0, i)).toISOString(),
      use_case: 'triage',
      task_id: `T-${sender}-${n}-${i}`,
      outcome: 'success',
      project: 'support',
      provider: 'openai',
      api: 'openai-chat',
      model: 'gpt-4o',
      usage: { prompt_tokens: 100 + i, completion_tokens: 10 },
    });
  }
  return { ids, body: JSON.stringify({ events }) };
}

async function post(pool: Pool, body: string): Promise<number> {
  const res = await pool.request({
    path: '/v1/events',
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
    body,
  });
  await res.body.dump();
  return res.statusCode;
}

/** Every stored call and task event id, read from the store file while no server holds it. */
async function storedIds(
  at = dir,
): Promise<{ calls: string[]; tasks: string[]; users: string[]; interrupted: string[] }> {
  const store = await createDuckDbStore({ path: join(at, 'tally.duckdb') });
  try {
    const calls: string[] = [];
    const users: string[] = [];
    const interrupted: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await store.listCalls({ tenant: 'default', limit: 1000, ...(cursor ? { cursor } : {}) });
      for (const c of page.rows) {
        calls.push(c.id);
        if (c.user) users.push(c.user);
        if (c.user && c.error_type === 'gateway_interrupted')
          interrupted.push(`${c.user}:${c.tokens.output > 0}`);
      }
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    const tasks = (await store.listTaskEvents('default', 'triage')).map((t) => t.id);
    return { calls, tasks, users, interrupted };
  } finally {
    await store.close();
  }
}

const isTask = (id: string) => Number(id.split('-e')[1]) % 5 === 0;

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('durability', () => {
  it('keeps every acknowledged event through kill -9, and counts none twice after retries', async () => {
    const port = await freePort();
    const env = { TALLY_DATA_DIR: dir, TALLY_ADMIN_KEY: KEY, TALLY_LOG_LEVEL: 'warn' };
    const first = await spawnTally(['start', '--port', String(port)], env);
    const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 4 });
    const sent: { ids: string[]; body: string }[] = [];
    const acked = new Set<string>();
    let killed = false;
    const senders = Array.from({ length: 4 }, async (_, s) => {
      for (let n = 0; !killed; n++) {
        const b = batch(s, n);
        sent.push(b);
        try {
          if ((await post(pool, b.body)) === 200) for (const id of b.ids) acked.add(id);
        } catch {
          return; // the server died under this request
        }
      }
    });
    // Kill once a good number of batches is acknowledged, with requests still in flight.
    while (acked.size < 40 * BATCH) await new Promise((r) => setTimeout(r, 5));
    killed = true;
    first.child.kill('SIGKILL');
    await Promise.all(senders);
    await pool.destroy();
    await stopProcess(first.child);

    // Every acknowledged event is there, once.
    const after = await storedIds();
    const stored = new Set([...after.calls, ...after.tasks]);
    expect(stored.size).toBe(after.calls.length + after.tasks.length);
    for (const id of acked) expect(stored.has(id), id).toBe(true);
    expect(after.tasks.length).toBeGreaterThan(0);

    // The client retries every batch, acknowledged or not: nothing is counted twice.
    const second = await spawnTally(['start', '--port', String(port)], env);
    const retry = new Pool(`http://127.0.0.1:${port}`, { connections: 4 });
    try {
      for (const b of sent) expect(await post(retry, b.body)).toBe(200);
    } finally {
      await retry.close();
      await stopProcess(second.child);
    }
    const final = await storedIds();
    const all = sent.flatMap((b) => b.ids);
    expect(final.calls.length).toBe(new Set(all.filter((id) => !isTask(id))).size);
    expect(final.tasks.length).toBe(new Set(all.filter(isTask)).size);
    expect(new Set(final.calls).size).toBe(final.calls.length);
  }, 120_000);
});

describe.skipIf(SKIP_WITHOUT_RECORDINGS)("durability of the gateway's metering", () => {
  const mock = new MockUpstream();
  const roots: string[] = [];
  afterAll(async () => {
    await mock.stop();
    for (const r of roots) rmSync(r, { recursive: true, force: true });
  });

  it.each([
    ['tally start', false],
    ['a tally gateway replica', true],
  ])(
    '%s meters every answered call through kill -9, and the calls under way: the next start writes what its journal kept, once',
    async (_name, replica) => {
      if (!mock.url.startsWith('http')) await mock.start();
      const root = mkdtempSync(join(os.tmpdir(), 'tally-kill-gw-'));
      roots.push(root);
      const serverDir = join(root, 'server');
      const serverPort = await freePort();
      const base = {
        TALLY_ADMIN_KEY: KEY,
        TALLY_GATEWAY_KEY: `${KEY}-gateway`,
        TALLY_LOG_LEVEL: 'warn',
        OPENAI_BASE_URL: `${mock.url}/v1`,
        OPENAI_API_KEY: 'sk-upstream',
      };
      const serverEnv = { ...base, TALLY_DATA_DIR: serverDir };
      const server = await spawnTally(['start', '--port', String(serverPort)], serverEnv);
      // The process under test, killed and started again: the server itself, or a replica of it.
      const port = replica ? await freePort() : serverPort;
      const gwEnv = {
        ...base,
        TALLY_DATA_DIR: join(root, 'replica'),
        TALLY_SERVER_URL: `http://127.0.0.1:${serverPort}`,
      };
      const startGateway = () =>
        replica
          ? spawnTally(['gateway', '--port', String(port)], gwEnv)
          : spawnTally(['start', '--port', String(port)], serverEnv);
      let first = replica ? await startGateway() : server;
      const admin = new Pool(`http://127.0.0.1:${serverPort}`, { connections: 1 });
      const made = await admin.request({
        path: '/v1/keys',
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
        body: JSON.stringify({ project: 'support' }),
      });
      const { key } = (await made.body.json()) as { key: string };
      await admin.close();
      const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 4 });
      // Each call is told apart by its user header; half of them are streamed. Resolves with the
      // status, or null if the process died under the call.
      const chat = async (user: string, model: string, stream: boolean): Promise<number | null> => {
        try {
          const res = await pool.request({
            path: '/v1/chat/completions',
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              authorization: `Bearer ${key}`,
              'x-tally-user': user,
            },
            body: JSON.stringify({
              model,
              stream,
              messages: [{ role: 'user', content: 'Say a few words.' }],
            }),
          });
          await res.body.text();
          return res.statusCode;
        } catch {
          return null;
        }
      };
      const answered: string[] = [];
      let sent = 0;
      let killed = false;
      const senders = Array.from({ length: 4 }, async () => {
        while (!killed) {
          const user = `u-${sent++}`;
          const status = await chat(user, 'gpt-4o', sent % 2 === 0);
          if (status === null) return;
          if (status === 200) answered.push(user);
        }
      });
      while (answered.length < 400) await new Promise((r) => setTimeout(r, 5));
      // Two streams that take a second each, under way at the kill.
      const slow = ['slow-1', 'slow-2'].map((user) => chat(user, 'fault-slow', true));
      // The journal is appended every 20 ms: what was answered 200 ms before the kill is on disk.
      const before = answered.slice();
      await new Promise((r) => setTimeout(r, 200));
      killed = true;
      first.child.kill('SIGKILL');
      await Promise.all([...senders, ...slow]);
      await pool.destroy();
      await stopProcess(first.child);
      // Many of them were still in memory, waiting for their batch (written once a second): with
      // the journal off, this test fails.
      first = await startGateway();
      const health = async () => {
        const h = (await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as {
          spooled_calls?: number;
          checks?: { metering: { spooled_calls: number } };
        };
        return h.spooled_calls ?? h.checks!.metering.spooled_calls;
      };
      // The first look at the spool comes a second after the start.
      await new Promise((r) => setTimeout(r, 1500));
      for (let i = 0; i < 200 && (await health()) > 0; i++) await new Promise((r) => setTimeout(r, 50));
      await stopProcess(first.child);
      await stopProcess(server.child);
      const after = await storedIds(serverDir);
      const users = new Set(after.users);
      for (const u of before) expect(users.has(u), u).toBe(true);
      // The streams under way are metered too, as cut off by the crash: their prompt, and the
      // output relayed before the kill, estimated.
      expect(after.interrupted.filter((u) => u.startsWith('slow-')).sort()).toEqual([
        'slow-1:true',
        'slow-2:true',
      ]);
      expect(users.size).toBe(after.users.length);
      expect(after.calls.length).toBeLessThanOrEqual(sent);
    },
    120_000,
  );
});
