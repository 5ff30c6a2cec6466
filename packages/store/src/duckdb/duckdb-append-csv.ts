import { unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { CALL_STATUSES, TallyError } from '@tally/core';
import { CALL_CSV_COLUMNS, CALL_CSV_TYPES, type CsvCallBatch } from '../call-csv.js';
import type { WriteResult } from '../store.js';
import { type DuckDbDatabase, isDuplicateKey } from './duckdb-database.js';
import { inTransaction } from './duckdb-sql.js';

/** A field by name in SQL (user is a keyword). */
const col = (name: string) => (name === 'user' ? '"user"' : name);
/** How a CSV field becomes its column's value, where it is not the field itself. */
const SELECT_AS: Record<string, string> = {
  time: 'epoch_ms(time)::TIMESTAMPTZ',
  tags: 'tags::JSON',
};
const SELECT = CALL_CSV_COLUMNS.map(([name]) => SELECT_AS[name] ?? col(name)).join(', ');

// A batch from outside the process (a gateway replica's) is read as text, each field checked at
// least as strictly as the server checks a call sent as JSON, then cast. A row that fails raises,
// and the caller then checks the batch call by call.
const AS_TEXT = `{${CALL_CSV_COLUMNS.map(([name]) => `"${name}": 'VARCHAR'`).join(', ')}}`;
const CHECKED_SELECT = CALL_CSV_COLUMNS.map(([name, type]) =>
  name === 'time'
    ? 'epoch_ms(time::BIGINT)::TIMESTAMPTZ'
    : (SELECT_AS[name] ?? (type === 'VARCHAR' ? col(name) : `${name}::${type}`)),
).join(', ');
const MAYBE_TEXT = [
  'project',
  'team',
  'user',
  'use_case',
  'task_id',
  'key_id',
  'model_served',
  'price_version',
  'error_type',
  'route_tier',
];
const TEXT = ['provider', 'api', 'model_requested'];
const quoted = (v: string) => `'${v.replaceAll("'", "''")}'`;
const matches = (c: string, re: string) => `regexp_full_match(${c}, ${quoted(re)})`;
const NANO = '-?[0-9]{1,20}';
// Digits enough for any latency, and an exponent that keeps it finite.
const MS = '[0-9]{1,20}([.][0-9]{1,20})?([eE][+-]?[0-9]{1,2})?';
const COUNTS = CALL_CSV_COLUMNS.filter(([, t]) => t === 'INTEGER').map(([name]) => name);

/** Whether a row read as text is a call that the JSON check would take, of this tenant. Numbers
 * are matched as text: DuckDB's own CSV number parser takes 1.5 (rounded), 0x10 and 5_000 for an
 * integer, where the JSON check takes digits. */
function validRow(tenant: string, withTasks: boolean): string {
  return [
    `tenant = ${quoted(tenant)}`,
    'strlen(id) BETWEEN 1 AND 256',
    '(request_id IS NULL OR strlen(request_id) BETWEEN 1 AND 256)',
    matches('time', '[0-9]{1,16}'),
    // strlen counts UTF-8 bytes, never fewer than the UTF-16 units that the JSON check counts.
    ...MAYBE_TEXT.map((c) => `(${col(c)} IS NULL OR strlen(${col(c)}) <= 1024)`),
    ...TEXT.map((c) => `strlen(${c}) <= 1024`),
    ...COUNTS.map((c) => matches(c, '[0-9]{1,10}')),
    `(cost_list_nano IS NULL OR ${matches('cost_list_nano', NANO)})`,
    `(cost_effective_nano IS NULL OR ${matches('cost_effective_nano', NANO)})`,
    matches('saved_nano', NANO),
    `(latency_ms IS NULL OR ${matches('latency_ms', MS)})`,
    `(ttft_ms IS NULL OR ${matches('ttft_ms', MS)})`,
    "pricing_status IN ('priced', 'estimated', 'unpriced')",
    `status IN (${CALL_STATUSES.map((x) => `'${x}'`).join(', ')})`,
    "cache IN ('miss', 'exact', 'semantic')",
    // Tags: a JSON object of strings; most calls have none.
    "CASE WHEN tags = '{}' THEN true ELSE json_valid(tags) AND json_type(tags::JSON) = 'OBJECT' AND " +
      `(json_structure(tags::JSON) = '"JSON"' OR list_bool_and(list_transform(map_values(json_transform(json_structure(tags::JSON), '"MAP(VARCHAR, VARCHAR)"')), v -> v = 'VARCHAR'))) END`,
    // A batch said to carry no task is held to it: its rollups are then not marked.
    ...(withTasks ? [] : ['(use_case IS NULL OR task_id IS NULL)']),
  ].join(' AND ');
}

// One thread parses a batch's file: it is a few hundred kilobytes, and splitting it across threads
// cost more in coordination than it saved. Its buffer is 4 MB, not DuckDB's 32 MB: a full batch is
// about 2 MB, and the larger buffer is 28 MB more that each write must find under the memory limit.
const READ_OPTIONS =
  "header = false, delim = ',', quote = '\"', escape = '\"', new_line = '\\n', " +
  'allow_quoted_nulls = false, auto_detect = false, strict_mode = true, parallel = false, ' +
  'buffer_size = 4194304';

let seq = 0;

/** DuckDB's messages for a row it cannot take as it stands (as opposed to a store that fails). */
const REFUSED_ROW = /^(Invalid Input|Conversion|Constraint) Error/;

/**
 * Appends a batch through its CSV file and read_csv: DuckDB parses and inserts on its own
 * threads. The ids of metered calls are new, so the fast path is one INSERT that the primary key
 * guards. If it fails (a retried batch, whose first write did commit, or an id repeated within
 * it), the same file is inserted again without the ids already stored or repeated, and those
 * count as duplicates.
 *
 * With `tenant`, the batch came from outside the process: every row must be a valid call of that
 * tenant, or nothing is written and `invalid_event` is thrown. Without it, a row DuckDB cannot
 * take throws `invalid_event` too, and nothing is written: the caller checks the calls one by one.
 */
export async function appendCallBatch(
  db: DuckDbDatabase,
  batch: CsvCallBatch,
  tenant?: string,
): Promise<WriteResult> {
  if (batch.rows === 0) return { inserted: 0, duplicates: 0 };
  const dir = db.location === ':memory:' ? os.tmpdir() : dirname(db.location);
  const file = join(dir, `.append-${process.pid}-${++seq}.csv`);
  await writeFile(file, batch.bytes);
  try {
    const path = quoted(file);
    const source = `read_csv(${path}, columns = ${CALL_CSV_TYPES}, ${READ_OPTIONS})`;
    const rows =
      tenant === undefined
        ? source
        : `(SELECT * FROM read_csv(${path}, columns = ${AS_TEXT}, ${READ_OPTIONS}) ` +
          `WHERE CASE WHEN ${validRow(tenant, batch.withTasks)} THEN true ELSE error('a call of the batch is not valid') END)`;
    const select = tenant === undefined ? SELECT : CHECKED_SELECT;
    const dirty = `INSERT INTO task_rollup_dirty SELECT tenant, use_case, task_id FROM ${source} WHERE use_case IS NOT NULL AND task_id IS NOT NULL`;
    try {
      await db.write((conn) =>
        inTransaction(conn, async () => {
          await conn.run(`INSERT INTO calls SELECT ${select} FROM ${rows}`);
          // Calls that carry a task change that task's rollup (AI used). Most gateway traffic
          // carries none, and this second pass over the file is skipped.
          if (batch.withTasks) await conn.run(dirty);
        }),
      );
      return { inserted: batch.rows, duplicates: 0 };
    } catch {
      try {
        const inserted = await db.write((conn) =>
          inTransaction(conn, async () => {
            const r = await conn.run(
              `INSERT INTO calls SELECT ${select} FROM (SELECT DISTINCT ON (tenant, id) * FROM ${rows}) s ` +
                'WHERE NOT EXISTS (SELECT 1 FROM calls c WHERE c.tenant = s.tenant AND c.id = s.id)',
            );
            if (batch.withTasks) await conn.run(dirty);
            return r.rowsChanged;
          }),
        );
        return { inserted, duplicates: batch.rows - inserted };
      } catch (err) {
        // These rows were filtered against the table and each other: a duplicate here is an id
        // that a failed commit left in the index. Reopening rebuilds it, and the batch's retry
        // then goes in.
        if (isDuplicateKey(err)) await db.recover();
        else if (REFUSED_ROW.test((err as Error).message)) {
          throw new TallyError(
            'invalid_event',
            `A call of the batch is not valid: ${(err as Error).message}`,
          );
        }
        throw err;
      }
    }
  } finally {
    await unlink(file).catch(() => undefined);
  }
}
