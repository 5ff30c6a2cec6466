import type { CallRecord } from '@tally/core';
import { isObject, isTallyError, TallyError } from '@tally/core';
import { CALL_CSV_FORMAT, type CallBatch, CsvCallBatch, csvRecords, EARLIER_CALL_CSV } from '@tally/store';
import type { FastifyPluginAsync } from 'fastify';
import type { Role } from '../auth.js';
import type { AppContext } from '../context.js';
import { CALLS_FORMAT_HEADER, CALLS_WITH_TASKS_HEADER, callsOfCsv } from '../replica-csv.js';
import { alertSchema, callFromWire, REPLICA_MAX_BATCH, ruleToWire } from '../replica-wire.js';
import { toProviderConfig } from './providers.js';

/** Only a replica's key opens these routes: the providers' secrets are among them, which no other
 * key reads, an admin's included; and a replica's key opens nothing else. */
const REPLICA: readonly Role[] = ['gateway'];

/**
 * What a gateway replica (`tally gateway`) needs from the server: key lookups, budget rules,
 * rate limits, providers added through the API, and a place for its metering and alerts. Every route takes a
 * gateway key (`gateway_key` in config, or one made with `--role gateway`) and answers for that
 * key's tenant only.
 */
export const replicaControlRoutes: FastifyPluginAsync<AppContext> = async (app, ctx) => {
  app.get('/v1/gateway/keys/:hash', async (request) => {
    const principal = await ctx.auth.authenticate(request, REPLICA);
    const { hash } = request.params as { hash: string };
    if (!/^[0-9a-f]{64}$/.test(hash))
      throw new TallyError('invalid_request', 'hash must be a SHA-256 in hex.');
    const key = await ctx.auth.gatewayKey(hash);
    if (!key || key.tenant !== principal.tenant) throw new TallyError('not_found', 'No such key.');
    return { key };
  });

  app.get('/v1/gateway/budgets', async (request) => {
    const principal = await ctx.auth.authenticate(request, REPLICA);
    return { data: (await ctx.budgets.rules(principal.tenant)).map(ruleToWire) };
  });

  app.get('/v1/gateway/rate-limits', async (request) => {
    const principal = await ctx.auth.authenticate(request, REPLICA);
    return { data: await ctx.rateLimits.get(principal.tenant) };
  });

  app.get('/v1/gateway/providers', async (request) => {
    const principal = await ctx.auth.authenticate(request, REPLICA);
    const stored = await ctx.store.listProviders();
    return {
      data: stored.filter((p) => p.tenant === principal.tenant).map((p) => toProviderConfig(p, ctx.secrets)),
    };
  });

  // A replica's metering comes as CSV (replica-csv.ts), bytes the store reads as they are.
  app.addContentTypeParser('text/csv', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  app.post('/v1/gateway/calls', async (request, reply) => {
    const principal = await ctx.auth.authenticate(request, REPLICA);
    const body = request.body;
    if (Buffer.isBuffer(body)) {
      const format = request.headers[CALLS_FORMAT_HEADER];
      let csv = body;
      if (format !== CALL_CSV_FORMAT) {
        // A replica of an earlier version: its layout is read as this one's.
        const earlier = typeof format === 'string' ? EARLIER_CALL_CSV[format] : undefined;
        if (!earlier) {
          throw new TallyError(
            'unsupported_media_type',
            `Metered calls as CSV must be of layout ${CALL_CSV_FORMAT} (${CALLS_FORMAT_HEADER}), not ${String(format)}: the replica and the server run different versions.`,
            // A replica of a later version sends its calls in this layout, if it knows it.
            { layout: CALL_CSV_FORMAT },
          );
        }
        checkWhole(body);
        csv = earlier(body);
      }
      const withTasks = request.headers[CALLS_WITH_TASKS_HEADER] !== '0';
      return reply.send(await writeCsv(ctx, principal.tenant, csv, withTasks));
    }
    if (!isObject(body) || !Array.isArray(body['calls']))
      throw new TallyError('invalid_request', 'The body must be {"calls": [...]}.');
    const raw = body['calls'] as unknown[];
    checkSize(raw.length);
    return reply.send(
      await writeChecked(
        ctx,
        principal.tenant,
        raw.map((r) => callFromWire(r)),
      ),
    );
  });

  app.post('/v1/gateway/alerts', async (request) => {
    const principal = await ctx.auth.authenticate(request, REPLICA);
    const body = request.body;
    if (!isObject(body) || !Array.isArray(body['alerts']))
      throw new TallyError('invalid_request', 'The body must be {"alerts": [...]}.');
    let accepted = 0;
    for (const raw of body['alerts'] as unknown[]) {
      const a = alertSchema.safeParse(raw);
      if (!a.success) throw new TallyError('invalid_request', `An alert is not valid: ${a.error.message}`);
      ctx.alerts.emit({ ...a.data, tenant: principal.tenant });
      accepted++;
    }
    return { accepted };
  });
};

interface CallsWritten {
  accepted: number;
  duplicates: number;
  rejected: { index: number; code: string; message: string }[];
}

const bodyCutOff = () =>
  new TallyError('invalid_request', 'The body ends inside a call: every line must end with a newline.');

/** How many calls a CSV body holds; `invalid_request` if it ends inside one. */
function checkWhole(bytes: Buffer): number {
  const { rows, end } = csvRecords(bytes);
  if (end !== bytes.length) throw bodyCutOff();
  return rows;
}

function checkSize(rows: number): void {
  if (rows > REPLICA_MAX_BATCH) {
    throw new TallyError('batch_too_large', `At most ${REPLICA_MAX_BATCH} calls a batch; got ${rows}.`);
  }
}

/**
 * A CSV batch: handed to the store as it is, which checks every line (a call of this tenant, each
 * field as the JSON form is checked) as it appends. If any line fails, nothing was written, and
 * the batch is checked call by call, so that the good calls are kept and each bad one named.
 */
async function writeCsv(
  ctx: AppContext,
  tenant: string,
  bytes: Buffer,
  withTasks: boolean,
): Promise<CallsWritten> {
  let batch: CallBatch | null = null;
  try {
    batch = ctx.store.restoreCallBatch(CALL_CSV_FORMAT, bytes);
  } catch (err) {
    // A store of another layout: the batch is checked and written call by call.
    if (!isTallyError(err) || err.code !== 'invalid_request') throw err;
  }
  const rows = batch ? batch.rows : checkWhole(bytes);
  if (batch && batch.bytes.length !== bytes.length) throw bodyCutOff();
  checkSize(rows);
  if (rows === 0) return { accepted: 0, duplicates: 0, rejected: [] };
  if (batch) {
    if (batch instanceof CsvCallBatch) batch.withTasks = withTasks;
    try {
      const written = await ctx.store.appendCallBatch(batch, { tenant });
      ctx.metrics.eventsAccepted.inc({ kind: 'gateway_call' }, written.inserted);
      return { accepted: rows, duplicates: written.duplicates, rejected: [] };
    } catch (err) {
      // A line failed its check, and nothing was written.
      if (!isTallyError(err) || err.code !== 'invalid_event') throw err;
    }
  }
  return writeChecked(ctx, tenant, callsOfCsv(bytes));
}

/** Calls checked one by one: the good ones stored (idempotent by id), the others listed. */
async function writeChecked(
  ctx: AppContext,
  tenant: string,
  checked: (CallRecord | string)[],
): Promise<CallsWritten> {
  const calls: CallRecord[] = [];
  const rejected: CallsWritten['rejected'] = [];
  checked.forEach((c, index) => {
    if (typeof c === 'string') rejected.push({ index, code: 'invalid_event', message: c });
    else if (c.tenant !== tenant)
      rejected.push({ index, code: 'forbidden', message: `tenant ${c.tenant} is not this key's` });
    else calls.push(c);
  });
  // Fast append for new ids; a retried batch falls back to the idempotent path, so a replica
  // that resends after a timeout counts nothing twice.
  const written = calls.length > 0 ? await ctx.store.appendCalls(calls) : { inserted: 0, duplicates: 0 };
  ctx.metrics.eventsAccepted.inc({ kind: 'gateway_call' }, written.inserted);
  return { accepted: calls.length, duplicates: written.duplicates, rejected };
}
