import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
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
async function storedIds(): Promise<{ calls: string[]; tasks: string[] }> {
  const store = await createDuckDbStore({ path: join(dir, 'tally.duckdb') });
  try {
    const calls: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await store.listCalls({ tenant: 'default', limit: 1000, ...(cursor ? { cursor } : {}) });
      for (const c of page.rows) calls.push(c.id);
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    const tasks = (await store.listTaskEvents('default', 'triage')).map((t) => t.id);
    return { calls, tasks };
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
