import { unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import type { CallRecord } from '@tally/core';
import type { DuckDbDatabase } from './duckdb-database.js';

/** The calls table's columns as read_json reads them, and how each becomes the column's type. */
const COLUMNS: [name: string, jsonType: string, select: string][] = [
  ['tenant', 'VARCHAR', 'tenant'],
  ['id', 'VARCHAR', 'id'],
  ['time', 'BIGINT', 'epoch_ms(time)::TIMESTAMPTZ'],
  ['project', 'VARCHAR', 'project'],
  ['team', 'VARCHAR', 'team'],
  ['user', 'VARCHAR', '"user"'],
  ['use_case', 'VARCHAR', 'use_case'],
  ['task_id', 'VARCHAR', 'task_id'],
  ['key_id', 'VARCHAR', 'key_id'],
  ['tags', 'VARCHAR', 'tags::JSON'],
  ['provider', 'VARCHAR', 'provider'],
  ['api', 'VARCHAR', 'api'],
  ['model_requested', 'VARCHAR', 'model_requested'],
  ['model_served', 'VARCHAR', 'model_served'],
  ['input_tokens', 'INTEGER', 'input_tokens'],
  ['output_tokens', 'INTEGER', 'output_tokens'],
  ['cache_read_tokens', 'INTEGER', 'cache_read_tokens'],
  ['cache_write_tokens', 'INTEGER', 'cache_write_tokens'],
  ['cache_write_1h_tokens', 'INTEGER', 'cache_write_1h_tokens'],
  ['reasoning_tokens', 'INTEGER', 'reasoning_tokens'],
  ['input_audio_tokens', 'INTEGER', 'input_audio_tokens'],
  ['output_audio_tokens', 'INTEGER', 'output_audio_tokens'],
  ['cache_audio_read_tokens', 'INTEGER', 'cache_audio_read_tokens'],
  ['web_searches', 'INTEGER', 'web_searches'],
  ['cost_list_nano', 'VARCHAR', 'cost_list_nano::BIGINT'],
  ['cost_effective_nano', 'VARCHAR', 'cost_effective_nano::BIGINT'],
  ['pricing_status', 'VARCHAR', 'pricing_status'],
  ['price_version', 'VARCHAR', 'price_version'],
  ['latency_ms', 'DOUBLE', 'latency_ms'],
  ['ttft_ms', 'DOUBLE', 'ttft_ms'],
  ['status', 'VARCHAR', 'status'],
  ['error_type', 'VARCHAR', 'error_type'],
  ['cache', 'VARCHAR', 'cache'],
  ['route_tier', 'VARCHAR', 'route_tier'],
  ['fallback_hops', 'INTEGER', 'fallback_hops'],
  ['saved_nano', 'VARCHAR', 'saved_nano::BIGINT'],
];

const READ_COLUMNS = `{${COLUMNS.map(([n, t]) => `"${n}": '${t}'`).join(', ')}}`;
const SELECT = COLUMNS.map(([, , s]) => s).join(', ');

const q = JSON.stringify;
const n = (v: number | null): string => (v !== null && Number.isFinite(v) ? String(v) : 'null');
const big = (v: bigint | null): string => (v === null ? 'null' : `"${v}"`);

/** One NDJSON line, written out by hand: it runs for every metered call on the event loop, and a
 * template is several times cheaper than building an object for JSON.stringify. The names and
 * order are COLUMNS'. */
function line(c: CallRecord): string {
  const t = c.tokens;
  return (
    `{"tenant":${q(c.tenant)},"id":${q(c.id)},"time":${c.time},"project":${q(c.project)},` +
    `"team":${q(c.team)},"user":${q(c.user)},"use_case":${q(c.use_case)},"task_id":${q(c.task_id)},` +
    `"key_id":${q(c.key_id)},"tags":${q(q(c.tags))},"provider":${q(c.provider)},"api":${q(c.api)},` +
    `"model_requested":${q(c.model_requested)},"model_served":${q(c.model_served)},` +
    `"input_tokens":${t.input},"output_tokens":${t.output},"cache_read_tokens":${t.cache_read},` +
    `"cache_write_tokens":${t.cache_write},"cache_write_1h_tokens":${t.cache_write_1h},` +
    `"reasoning_tokens":${t.reasoning},"input_audio_tokens":${t.input_audio},` +
    `"output_audio_tokens":${t.output_audio},"cache_audio_read_tokens":${t.cache_audio_read},` +
    `"web_searches":${t.web_searches},"cost_list_nano":${big(c.cost_list_nano)},` +
    `"cost_effective_nano":${big(c.cost_effective_nano)},"pricing_status":${q(c.pricing_status)},` +
    `"price_version":${q(c.price_version)},"latency_ms":${n(c.latency_ms)},"ttft_ms":${n(c.ttft_ms)},` +
    `"status":${q(c.status)},"error_type":${q(c.error_type)},"cache":${q(c.cache)},` +
    `"route_tier":${q(c.route_tier)},"fallback_hops":${c.fallback_hops},"saved_nano":"${c.saved_nano}"}`
  );
}

let seq = 0;

/**
 * Appends calls through a newline-delimited JSON file and read_json: the event loop only writes
 * JSON text, and DuckDB parses and inserts on its own threads. Used for the gateway's metering,
 * whose ids are new; a batch that hits a stored id (a retried write) throws, and the caller falls
 * back to the idempotent ingest.
 */
export async function appendCallsJson(db: DuckDbDatabase, calls: readonly CallRecord[]): Promise<void> {
  const dir = db.location === ':memory:' ? os.tmpdir() : dirname(db.location);
  const file = join(dir, `.append-${process.pid}-${++seq}.ndjson`);
  let text = '';
  let withTasks = false;
  for (const c of calls) {
    text += `${line(c)}\n`;
    if (c.use_case !== null && c.task_id !== null) withTasks = true;
  }
  await writeFile(file, text);
  try {
    const path = file.replaceAll("'", "''");
    const source = `read_json('${path}', format = 'newline_delimited', columns = ${READ_COLUMNS})`;
    await db.write(async (conn) => {
      await conn.run('BEGIN TRANSACTION');
      try {
        await conn.run(`INSERT INTO calls SELECT ${SELECT} FROM ${source}`);
        // Calls that carry a task change that task's rollup (AI used). Most gateway traffic
        // carries none, and this second pass over the file is skipped.
        if (withTasks)
          await conn.run(
            `INSERT INTO task_rollup_dirty SELECT tenant, use_case, task_id FROM ${source} WHERE use_case IS NOT NULL AND task_id IS NOT NULL`,
          );
        await conn.run('COMMIT');
      } catch (err) {
        await conn.run('ROLLBACK').catch(() => undefined);
        throw err;
      }
    });
  } finally {
    await unlink(file).catch(() => undefined);
  }
}
