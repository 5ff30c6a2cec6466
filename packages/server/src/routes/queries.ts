import { CALL_STATUSES, TallyError } from '@tally/core';
import {
  type CallQuery,
  SPEND_GROUPS,
  type SpendInterval,
  type SpendQuery,
  type TagFilter,
} from '@tally/store';
import type { FastifyPluginAsync } from 'fastify';
import type { AppContext } from '../context.js';
import { callToJson, enumParam, parseTimeParam, spendRowToJson, stringParam } from '../serialize.js';

const READERS = ['admin', 'finance', 'member'] as const;
const CALL_FILTERS = [
  'project',
  'team',
  'user',
  'model',
  'provider',
  'use_case',
  'task_id',
  'key_id',
  'request_id',
  'error_type',
] as const;
const INTERVALS: readonly SpendInterval[] = ['hour', 'day', 'week', 'month'];

/** `group_by=tag:KEY` groups spend by a tag's value. */
const TAG_GROUP = 'tag:';

/** A tag key as a query names it: 1 to 256 characters. */
function tagKey(key: string, name: string): string {
  if (key.length === 0 || key.length > 256)
    throw new TallyError(
      'invalid_query',
      `${name} must name a tag key of 1 to 256 characters, as in tag:env.`,
    );
  return key;
}

/** `tag=KEY:VALUE`: the calls whose tags give KEY that value (split at the first colon). */
function tagParam(v: unknown): TagFilter | undefined {
  const s = stringParam('tag', v);
  if (s === undefined) return undefined;
  const at = s.indexOf(':');
  if (at < 0) throw new TallyError('invalid_query', 'tag must be KEY:VALUE, as in tag=env:prod.');
  return { key: tagKey(s.slice(0, at), 'tag'), value: s.slice(at + 1) };
}

export const queryRoutes: FastifyPluginAsync<AppContext> = async (app, ctx) => {
  app.get('/v1/calls', async (request) => {
    const principal = await ctx.auth.authenticate(request, READERS);
    const q = request.query as Record<string, unknown>;
    const limitRaw = stringParam('limit', q['limit']);
    const limit = limitRaw === undefined ? 100 : Number(limitRaw);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      throw new TallyError('invalid_query', 'limit must be an integer from 1 to 1000.');
    }
    const query: CallQuery = { tenant: principal.tenant, limit };
    for (const f of CALL_FILTERS) {
      const v = stringParam(f, q[f]);
      if (v !== undefined) query[f] = v;
    }
    const from = parseTimeParam('from', q['from']);
    const to = parseTimeParam('to', q['to']);
    if (from !== undefined) query.from = from;
    if (to !== undefined) query.to = to;
    const status = enumParam('status', q['status'], CALL_STATUSES);
    if (status) query.status = status;
    const tag = tagParam(q['tag']);
    if (tag) query.tag = tag;
    const cursor = stringParam('cursor', q['cursor']);
    if (cursor) query.cursor = cursor;
    if (principal.role === 'member') query.project = principal.project ?? '\u0000';
    const page = await ctx.store.listCalls(query);
    return { data: page.rows.map(callToJson), next_cursor: page.nextCursor };
  });

  // One call by its id: the gateway answers each call with it in `x-tally-call-id`. A call shows
  // here once its batch is written (within about a second).
  app.get('/v1/calls/:id', async (request) => {
    const principal = await ctx.auth.authenticate(request, READERS);
    const { id } = request.params as { id: string };
    const call = await ctx.store.getCall(principal.tenant, id);
    if (!call || (principal.role === 'member' && call.project !== principal.project)) {
      throw new TallyError(
        'not_found',
        `No call ${id} in this tenant. A call the gateway just answered is stored within about a second.`,
      );
    }
    return callToJson(call);
  });

  app.get('/v1/spend', async (request) => {
    const principal = await ctx.auth.authenticate(request, ['admin', 'finance']);
    const q = request.query as Record<string, unknown>;
    const query: SpendQuery = { tenant: principal.tenant };
    const groupBy = stringParam('group_by', q['group_by']);
    if (groupBy?.startsWith(TAG_GROUP))
      query.groupByTag = tagKey(groupBy.slice(TAG_GROUP.length), 'group_by');
    else {
      const group = enumParam('group_by', groupBy, SPEND_GROUPS);
      if (group) query.groupBy = group;
    }
    const tag = tagParam(q['tag']);
    if (tag) query.tag = tag;
    const interval = enumParam('interval', q['interval'], INTERVALS);
    if (interval) query.interval = interval;
    const from = parseTimeParam('from', q['from']);
    const to = parseTimeParam('to', q['to']);
    if (from !== undefined) query.from = from;
    if (to !== undefined) query.to = to;
    if (from !== undefined && to !== undefined && from >= to) {
      throw new TallyError('invalid_query', 'from must be before to.');
    }
    const tz = stringParam('tz', q['tz']);
    if (tz) {
      try {
        new Intl.DateTimeFormat('en-US', { timeZone: tz });
      } catch {
        throw new TallyError('invalid_query', `tz "${tz}" is not an IANA time zone.`);
      }
      query.timeZone = tz;
    }
    const rows = await ctx.store.spend(query);
    return { rows: rows.map((r) => spendRowToJson(r, groupBy)) };
  });
};
