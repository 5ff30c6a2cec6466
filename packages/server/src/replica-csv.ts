import type { CallRecord } from '@tally/core';
import type { SpoolCodec } from '@tally/gateway';
import {
  CALL_CSV_COLUMNS,
  CALL_CSV_FORMAT,
  CsvCallBatch,
  csvLineFields,
  csvLines,
  EARLIER_CALL_CSV,
} from '@tally/store';
import { type CallWire, callFromWire } from './replica-wire.js';

/**
 * Metered calls as a replica sends them: lines of the store's CSV layout (CALL_CSV_FORMAT), the
 * bytes the embedded store reads itself. Encoding one is about a third of the cost of its JSON, and
 * the server stores a batch without building its calls. It names its layout in this header: a
 * server reads its own layout and those of earlier versions (EARLIER_CALL_CSV), and refuses any
 * other (415) rather than misread it.
 */
export const CALLS_FORMAT_HEADER = 'x-tally-calls-format';
/** '0' when no call of the batch carries a task (use case and task id): the server then skips
 * marking task rollups, and holds the batch to it (a call with a task fails its check). */
export const CALLS_WITH_TASKS_HEADER = 'x-tally-calls-with-tasks';

const NUMBER = /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/;

/** A number where the field is one, else the field as it is (for the check to refuse). */
const num = (v: string | null): unknown => (v !== null && NUMBER.test(v) ? Number(v) : v);

function json(v: string | null): unknown {
  if (v === null) return null;
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}

/** One CSV line as the JSON wire has a call: checked by callFromWire like one sent as JSON. */
export function wireOfCsvLine(line: string): Record<string, unknown> | string {
  let f: (string | null)[];
  try {
    f = csvLineFields(line);
  } catch (err) {
    return `not a CSV line: ${(err as Error).message}`;
  }
  if (f.length !== CALL_CSV_COLUMNS.length) {
    return `a call has ${CALL_CSV_COLUMNS.length} fields, this line ${f.length}`;
  }
  const out: Record<string, unknown> = {};
  const tokens: Record<string, unknown> = {};
  CALL_CSV_COLUMNS.forEach(([name, type], i) => {
    const v = f[i] ?? null;
    if (name === 'tags') out[name] = json(v);
    // Amounts travel as decimal strings, as on the JSON wire.
    else if (type === 'VARCHAR' || name.endsWith('_nano')) out[name] = v;
    else if (type === 'INTEGER' && name !== 'fallback_hops') tokens[name.replace(/_tokens$/, '')] = num(v);
    else out[name] = num(v);
  });
  out['tokens'] = tokens;
  return out;
}

/** A CSV batch call by call: each line's call, or why it is not one. */
export function callsOfCsv(bytes: Buffer): (CallRecord | string)[] {
  return csvLines(bytes).map((line) => {
    const wire = wireOfCsvLine(line);
    return typeof wire === 'string' ? wire : callFromWire(wire);
  });
}

/** A CSV batch as the JSON body a server without CSV takes ({"calls": [...]}), or with another
 * layout of it: a server of an earlier version. Lines that are not calls are left out, and so is
 * request_id, which such a server's check refuses. */
export function jsonBodyOfCsv(bytes: Buffer): Buffer {
  const calls = csvLines(bytes)
    .map(wireOfCsvLine)
    .filter((w): w is Record<string, unknown> => typeof w !== 'string');
  // A server that takes no CSV predates request_id and the fields after it: it refuses
  // request_id, and its counts of the others are none.
  for (const c of calls) {
    delete c['request_id'];
    const tokens = c['tokens'] as Record<string, unknown>;
    for (const k of COUNTS_AFTER_REQUEST_ID) delete tokens[k];
  }
  return Buffer.from(JSON.stringify({ calls }));
}

/** The counts the layout gained after request_id (file searches, code containers, images). */
const COUNTS_AFTER_REQUEST_ID = CALL_CSV_COLUMNS.slice(
  CALL_CSV_COLUMNS.findIndex(([name]) => name === 'request_id') + 1,
).map(([name]) => name);

/** The calls of a chunk kept by a replica before it sent CSV ({"calls":[ one JSON call a line):
 * its whole lines. */
export function callsOfJsonChunk(bytes: Buffer): CallRecord[] {
  const out: CallRecord[] = [];
  const text = bytes.toString('utf8');
  for (const line of text.split('\n').slice(1)) {
    const body = line.startsWith(',') ? line.slice(1) : line;
    if (!body) continue;
    let raw: CallWire;
    try {
      raw = JSON.parse(body) as CallWire;
    } catch {
      continue; // the last line, cut off by a crash
    }
    const c = callFromWire(raw);
    if (typeof c !== 'string') out.push(c);
  }
  return out;
}

/** How a replica keeps its chunks in its spool: mirrored as they fill, and those it could not
 * send. Files of the JSON chunks of earlier versions are read too, and sent as CSV. */
export const REPLICA_SPOOL_CODEC: SpoolCodec<CsvCallBatch> = {
  format: `replica-${CALL_CSV_FORMAT}`,
  bytes: (c) => c.bytes,
  restore: (bytes) => new CsvCallBatch(bytes),
  earlier: {
    'replica-json-v2': (bytes) => {
      const batch = new CsvCallBatch();
      for (const c of callsOfJsonChunk(bytes)) batch.add(c);
      return batch;
    },
    ...Object.fromEntries(
      Object.entries(EARLIER_CALL_CSV).map(([format, convert]) => [
        `replica-${format}`,
        (bytes: Buffer) => new CsvCallBatch(convert(bytes)),
      ]),
    ),
  },
};
