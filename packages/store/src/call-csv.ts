import { createHash } from 'node:crypto';
import type { CallRecord } from '@tally/core';
import type { CallBatch } from './store.js';
import { TextBuffer } from './text-buffer.js';

/**
 * Metered calls as CSV: the embedded store's bulk format, and what a gateway replica sends its
 * server. No database here, so that a replica can encode calls without loading one.
 */

/** The fields of a line, in order, and the type each is read as. */
export const CALL_CSV_COLUMNS: readonly (readonly [name: string, type: string])[] = [
  ['tenant', 'VARCHAR'],
  ['id', 'VARCHAR'],
  ['time', 'BIGINT'],
  ['project', 'VARCHAR'],
  ['team', 'VARCHAR'],
  ['user', 'VARCHAR'],
  ['use_case', 'VARCHAR'],
  ['task_id', 'VARCHAR'],
  ['key_id', 'VARCHAR'],
  ['tags', 'VARCHAR'],
  ['provider', 'VARCHAR'],
  ['api', 'VARCHAR'],
  ['model_requested', 'VARCHAR'],
  ['model_served', 'VARCHAR'],
  ['input_tokens', 'INTEGER'],
  ['output_tokens', 'INTEGER'],
  ['cache_read_tokens', 'INTEGER'],
  ['cache_write_tokens', 'INTEGER'],
  ['cache_write_1h_tokens', 'INTEGER'],
  ['reasoning_tokens', 'INTEGER'],
  ['input_audio_tokens', 'INTEGER'],
  ['output_audio_tokens', 'INTEGER'],
  ['cache_audio_read_tokens', 'INTEGER'],
  ['web_searches', 'INTEGER'],
  ['cost_list_nano', 'BIGINT'],
  ['cost_effective_nano', 'BIGINT'],
  ['pricing_status', 'VARCHAR'],
  ['price_version', 'VARCHAR'],
  ['latency_ms', 'DOUBLE'],
  ['ttft_ms', 'DOUBLE'],
  ['status', 'VARCHAR'],
  ['error_type', 'VARCHAR'],
  ['cache', 'VARCHAR'],
  ['route_tier', 'VARCHAR'],
  ['fallback_hops', 'INTEGER'],
  ['saved_nano', 'BIGINT'],
  ['request_id', 'VARCHAR'],
  ['file_searches', 'INTEGER'],
  ['code_containers', 'INTEGER'],
  ['image_generations', 'INTEGER'],
  ['characters', 'INTEGER'],
  ['audio_seconds', 'INTEGER'],
];

/** A layout's fields and their types as a read_csv `columns` struct. */
const typesOf = (columns: readonly (readonly [string, string])[]) =>
  `{${columns.map(([n, t]) => `"${n}": '${t}'`).join(', ')}}`;
/** A layout's name: bytes are read back (from a spool, or from a replica) only under the same
 * columns, or converted from a layout of an earlier version (EARLIER_CALL_CSV). */
const formatOf = (columns: readonly (readonly [string, string])[]) =>
  `duckdb-csv-${createHash('sha256').update(typesOf(columns)).digest('hex').slice(0, 12)}`;

/** The fields and their types as a read_csv `columns` struct. */
export const CALL_CSV_TYPES = typesOf(CALL_CSV_COLUMNS);

/** Names this layout. */
export const CALL_CSV_FORMAT = formatOf(CALL_CSV_COLUMNS);

/**
 * The layouts of earlier versions, by name, each with what makes its bytes this layout's: a spool
 * written before an upgrade, or a replica not yet upgraded, is read, not left aside. Each added
 * the columns after it at the end of the line, so a line of it is this layout's with those fields
 * as that version knew them: a text empty (null), a count 0.
 */
/** How many leading fields of this layout each earlier layout has: each later one added fields at
 * the end. Before request_id (2026-12-05): no request id, and none of the counts after it. Before
 * file_searches, code_containers and image_generations (2026-12-05): none of those
 * counts from it on. Before characters and audio_seconds (2026-12-05): neither counted. */
const EARLIER_FIELDS: ReadonlyMap<string, number> = new Map(
  [6, 5, 4, 3, 2]
    .map((dropped) => CALL_CSV_COLUMNS.length - dropped)
    .map((kept) => [formatOf(CALL_CSV_COLUMNS.slice(0, kept)), kept]),
);

export const EARLIER_CALL_CSV: Readonly<Record<string, (bytes: Buffer) => Buffer>> = Object.freeze(
  Object.fromEntries(
    [...EARLIER_FIELDS.values()].map((kept) => {
      const pad = CALL_CSV_COLUMNS.slice(kept)
        .map(([, type]) => (type === 'INTEGER' ? ',0' : ','))
        .join('');
      const convert = (bytes: Buffer): Buffer => {
        const lines = csvLines(bytes);
        return Buffer.from(lines.map((l) => `${l}${pad}\n`).join(''), 'utf8');
      };
      return [formatOf(CALL_CSV_COLUMNS.slice(0, kept)), convert];
    }),
  ),
);

/**
 * This layout's bytes in an earlier one (EARLIER_CALL_CSV), for a server of that version: each
 * line without the fields that came after it. Null for a layout it does not know.
 */
export function earlierCallCsv(format: string, bytes: Buffer): Buffer | null {
  const kept = EARLIER_FIELDS.get(format);
  if (kept === undefined) return null;
  const out: string[] = [];
  for (const line of csvLines(bytes)) {
    // The comma that ends the last field kept: one outside quotes (a quoted field's own, and its
    // doubled quotes, are inside them).
    let commas = 0;
    let quoted = false;
    let end = line.length;
    for (let i = 0; i < line.length; i++) {
      const ch = line.charCodeAt(i);
      if (ch === 34) quoted = !quoted;
      else if (ch === 44 && !quoted && ++commas === kept) {
        end = i;
        break;
      }
    }
    out.push(`${line.slice(0, end)}\n`);
  }
  return Buffer.from(out.join(''), 'utf8');
}

/** `bytes` in this layout, from this layout or an earlier one; null for a layout it does not know. */
export function callCsvOf(format: string, bytes: Buffer): Buffer | null {
  if (format === CALL_CSV_FORMAT) return bytes;
  return EARLIER_CALL_CSV[format]?.(bytes) ?? null;
}

// Every text value is quoted, with its quotes doubled, so commas, quotes and newlines inside it
// are its own; an empty unquoted field is NULL (and a quoted empty one the empty string).
const s = (v: string | null): string =>
  v === null ? '' : v.includes('"') ? `"${v.replaceAll('"', '""')}"` : `"${v}"`;
const n = (v: number | null): string => (v !== null && Number.isFinite(v) ? String(v) : '');
const big = (v: bigint | null): string => (v === null ? '' : String(v));
/** A count as the INTEGER column takes it. Counts are checked where usage is read; one that got
 * past that must not keep its batch out of the store, so it is held to the column's range. */
const int = (v: number): string =>
  Number.isInteger(v) && v >= 0 && v <= 2_147_483_647
    ? String(v)
    : String(Math.min(2_147_483_647, Math.max(0, Math.round(v) || 0)));
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const wellFormed = (v: string): string => v.replace(LONE_SURROGATE, '\ufffd');
/** Tags as JSON. JSON.stringify writes a lone surrogate (from a header, say) as an escape that
 * DuckDB's JSON refuses, which would refuse the whole batch: it becomes U+FFFD. */
const tagsJson = (tags: Record<string, string>): string => {
  const j = JSON.stringify(tags);
  if (j.length === 2 || !/\\ud[89a-f]/i.test(j)) return j;
  return JSON.stringify(
    Object.fromEntries(Object.entries(tags).map(([k, v]) => [wellFormed(k), wellFormed(String(v))])),
  );
};

/** One CSV line, in CALL_CSV_COLUMNS' order. It runs for every metered call on the event loop:
 * without field names, it is a third of the text an NDJSON line was, and three times cheaper to
 * build. */
export function callCsvLine(c: CallRecord): string {
  const t = c.tokens;
  return (
    `${s(c.tenant)},${s(c.id)},${c.time},${s(c.project)},${s(c.team)},${s(c.user)},` +
    `${s(c.use_case)},${s(c.task_id)},${s(c.key_id)},${s(tagsJson(c.tags))},${s(c.provider)},` +
    `${s(c.api)},${s(c.model_requested)},${s(c.model_served)},${int(t.input)},${int(t.output)},` +
    `${int(t.cache_read)},${int(t.cache_write)},${int(t.cache_write_1h)},${int(t.reasoning)},${int(t.input_audio)},` +
    `${int(t.output_audio)},${int(t.cache_audio_read)},${int(t.web_searches)},${big(c.cost_list_nano)},` +
    `${big(c.cost_effective_nano)},${s(c.pricing_status)},${s(c.price_version)},${n(c.latency_ms)},` +
    `${n(c.ttft_ms)},${s(c.status)},${s(c.error_type)},${s(c.cache)},${s(c.route_tier)},` +
    `${c.fallback_hops},${c.saved_nano},${s(c.request_id)},${int(t.file_searches)},` +
    `${int(t.code_containers)},${int(t.image_generations)},${int(t.characters)},${int(t.audio_seconds)}\n`
  );
}

/** The records in CSV text that ends each with a newline: how many, and where the last whole one
 * ends. A newline inside a quoted field is the field's own. */
export function csvRecords(bytes: Buffer): { rows: number; end: number } {
  // From quote to newline by indexOf (native, and most of a line is quoted text), not byte by byte.
  let rows = 0;
  let end = 0;
  let at = 0;
  for (;;) {
    const nl = bytes.indexOf(10, at);
    if (nl < 0) return { rows, end };
    const q = bytes.indexOf(34, at);
    if (q < 0 || q > nl) {
      rows++;
      end = nl + 1;
      at = nl + 1;
      continue;
    }
    // A quoted field: its end is the next quote (a doubled quote is two fields' worth of the same).
    const close = bytes.indexOf(34, q + 1);
    if (close < 0) return { rows, end };
    at = close + 1;
  }
}

/** The whole records of CSV text, each without its newline (a record cut off at the end is left
 * out). A newline inside a quoted field stays in its record. */
export function csvLines(bytes: Buffer): string[] {
  // Only a newline outside quotes ends a line, so a record cut off at the end is never pushed.
  const text = bytes.toString('utf8');
  const lines: string[] = [];
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 34) quoted = !quoted;
    else if (ch === 10 && !quoted) {
      lines.push(text.slice(start, i));
      start = i + 1;
    }
  }
  return lines;
}

/**
 * The fields of one record, as callCsvLine writes them: a quoted field is its text (its doubled
 * quotes single), an empty unquoted one null, any other unquoted one its text. Throws on text
 * that is not such a record (a quote that does not close, text after a closing quote). For
 * checking a batch call by call; the store reads the bytes themselves.
 */
export function csvLineFields(line: string): (string | null)[] {
  const fields: (string | null)[] = [];
  let i = 0;
  for (;;) {
    if (line.charCodeAt(i) === 34) {
      let out = '';
      let from = i + 1;
      for (;;) {
        const q = line.indexOf('"', from);
        if (q < 0) throw new Error(`a quoted field opened at character ${i} does not close`);
        out += line.slice(from, q);
        if (line.charCodeAt(q + 1) !== 34) {
          i = q + 1;
          break;
        }
        out += '"';
        from = q + 2;
      }
      fields.push(out);
    } else {
      const comma = line.indexOf(',', i);
      const end = comma < 0 ? line.length : comma;
      if (line.lastIndexOf('"', end - 1) >= i)
        throw new Error(`a quote inside an unquoted field at character ${i}`);
      fields.push(end === i ? null : line.slice(i, end));
      i = end;
    }
    if (i === line.length) return fields;
    if (line.charCodeAt(i) !== 44) throw new Error(`text after a quoted field at character ${i}`);
    i++;
  }
}

/**
 * Calls as CSV lines in one growing off-heap buffer, encoded as each is added: a metering buffer
 * then holds bytes, not records that the garbage collector would trace and copy.
 */
export class CsvCallBatch implements CallBatch {
  readonly format = CALL_CSV_FORMAT;
  private readonly text: TextBuffer;
  rows = 0;
  /** Whether any call carries a task (whose rollup it then changes). */
  withTasks = false;

  constructor(bytes?: Buffer) {
    if (!bytes) {
      this.text = new TextBuffer();
      return;
    }
    // A batch read back from bytes: its whole records (a record cut off by a crash is left out),
    // and it may carry tasks, whose rollups are then marked (a pass over it).
    const { rows, end } = csvRecords(bytes);
    this.text = TextBuffer.adopt(bytes.subarray(0, end));
    this.rows = rows;
    this.withTasks = true;
  }

  add(c: CallRecord): void {
    this.text.append(callCsvLine(c));
    this.rows++;
    if (c.use_case !== null && c.task_id !== null) this.withTasks = true;
  }

  get bytes(): Buffer {
    return this.text.bytes;
  }
}
