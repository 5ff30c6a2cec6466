import { randomUUID } from 'node:crypto';
import {
  type BudgetAction,
  type BudgetPeriod,
  type BudgetScope,
  isObject,
  nanoToUsd,
  periodWindow,
  TallyError,
  tagSubject,
} from '@tally/core';
import { windowKey } from '@tally/gateway';
import type { BudgetRecord } from '@tally/store';
import type { FastifyPluginAsync } from 'fastify';
import type { AppContext } from '../context.js';
import { budgetLimit, modelList, refuseUnknownFields } from '../serialize.js';

/** What a budget, or a rate limit, may hold the calls of. */
export const SCOPES: readonly BudgetScope[] = ['tenant', 'project', 'team', 'user', 'key', 'tag'];
const PERIODS: readonly BudgetPeriod[] = ['day', 'week', 'month'];
const ACTIONS: readonly BudgetAction[] = ['alert', 'downgrade', 'block'];
const FIELDS = [
  'id',
  'scope',
  'subject',
  'limit_usd',
  'period',
  'time_zone',
  'thresholds',
  'action',
  'downgrade_model',
  'models',
];

/** A field that must be one of `values` (or `fallback` when absent). */
export function pick<T extends string>(
  body: Record<string, unknown>,
  field: string,
  values: readonly T[],
  fallback?: T,
): T {
  const v = body[field] ?? fallback;
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
    throw new TallyError('invalid_request', `${field} must be one of ${values.join(', ')}.`);
  }
  return v as T;
}

function budgetJson(
  b: BudgetRecord,
  usage?: { spentNano: bigint; reservedNano: bigint },
  period?: string,
  resetAt?: number,
) {
  return {
    id: b.id,
    scope: b.scope,
    subject: b.subject,
    limit_usd: nanoToUsd(b.limit_nano),
    period: b.period,
    time_zone: b.time_zone,
    thresholds: b.thresholds,
    action: b.action,
    downgrade_model: b.downgrade_model,
    models: b.models,
    ...(usage
      ? {
          current_period: period,
          spent_usd: nanoToUsd(usage.spentNano),
          in_flight_usd: nanoToUsd(usage.reservedNano),
          ...(resetAt === undefined ? {} : { resets_at: new Date(resetAt).toISOString() }),
        }
      : {}),
  };
}

/** The tenant's budgets that `which` picks, each with where it stands in its current period:
 * spent, held by calls in flight, and when it resets. */
export async function budgetStatus(
  ctx: AppContext,
  tenant: string,
  which: (b: BudgetRecord) => boolean,
): Promise<ReturnType<typeof budgetJson>[]> {
  const now = ctx.clock.now();
  // Read through the gateway's cache first: a budget this process has not seen yet is then given
  // its spend so far, as a call would give it.
  await ctx.budgets.rules(tenant);
  const data = [];
  for (const b of (await ctx.store.listBudgets(tenant)).filter(which)) {
    const p = periodWindow(b.period, b.time_zone, now);
    const usage = await ctx.state.usage({
      budgetId: b.id,
      key: windowKey(tenant, b.id, p.label),
      limitNano: b.limit_nano,
      resetAt: p.end,
    });
    data.push(budgetJson(b, usage, p.label, p.end));
  }
  return data;
}

/** Budgets: tenant > project > team > user or key, each with a period, a time zone, thresholds and
 * an action when exhausted. */
export const budgetRoutes: FastifyPluginAsync<AppContext> = async (app, ctx) => {
  app.post('/v1/budgets', async (request, reply) => {
    const principal = await ctx.auth.authenticate(request, ['admin']);
    const body = request.body;
    if (!isObject(body)) throw new TallyError('invalid_request', 'The body must be a JSON object.');
    refuseUnknownFields(body, FIELDS, 'a budget');
    const scope = pick(body, 'scope', SCOPES);
    const subject = scope === 'tenant' ? principal.tenant : body['subject'];
    if (typeof subject !== 'string' || subject === '')
      throw new TallyError('invalid_request', 'subject is required.');
    if (scope === 'tag' && tagSubject(subject) === null)
      throw new TallyError(
        'invalid_request',
        "A tag budget's subject is the tag as name=value, such as feature=summarize.",
      );
    const limit = budgetLimit('limit_usd', body['limit_usd'], '"500"');
    const zone = body['time_zone'] ?? 'UTC';
    if (typeof zone !== 'string')
      throw new TallyError('invalid_request', 'time_zone must be an IANA time zone name.');
    const timeZone = zone;
    try {
      new Intl.DateTimeFormat('en-US', { timeZone });
    } catch {
      throw new TallyError('invalid_request', `time_zone "${timeZone}" is not an IANA time zone.`);
    }
    const thresholds = body['thresholds'] ?? [0.5, 0.8, 1];
    if (
      !Array.isArray(thresholds) ||
      thresholds.length === 0 ||
      thresholds.some((t) => typeof t !== 'number' || t <= 0 || t > 10) ||
      new Set(thresholds).size !== thresholds.length
    ) {
      throw new TallyError(
        'invalid_request',
        'thresholds must be distinct fractions of the limit, at least one, such as [0.5, 0.8, 1].',
      );
    }
    const action = pick(body, 'action', ACTIONS, 'alert');
    const downgrade = body['downgrade_model'];
    if (action === 'downgrade' && (typeof downgrade !== 'string' || downgrade === '')) {
      throw new TallyError('invalid_request', 'downgrade_model is required when action is downgrade.');
    }
    if (action === 'downgrade') {
      const problem = ctx.downgradeProblem?.(downgrade as string, principal.tenant) ?? null;
      if (problem !== null)
        throw new TallyError('invalid_request', `downgrade_model ${JSON.stringify(downgrade)} ${problem}.`);
    }
    const models = modelList(body['models'] ?? []);
    const id = body['id'];
    if (id !== undefined && (typeof id !== 'string' || id === '' || id.length > 128)) {
      throw new TallyError('invalid_request', 'id must be a non-empty string of at most 128 characters.');
    }
    const rec: BudgetRecord = {
      tenant: principal.tenant,
      id: id ?? `budget_${randomUUID().slice(0, 8)}`,
      scope,
      subject,
      limit_nano: limit,
      period: pick(body, 'period', PERIODS, 'month'),
      time_zone: timeZone,
      thresholds: (thresholds as number[]).slice().sort((a, b) => a - b),
      action,
      downgrade_model: action === 'downgrade' ? (downgrade as string) : null,
      models,
      created_at: ctx.clock.now(),
    };
    await ctx.store.putBudget(rec);
    ctx.budgets.invalidate(principal.tenant);
    return reply.status(201).send(budgetJson(rec));
  });

  app.get('/v1/budgets', async (request) => {
    const principal = await ctx.auth.authenticate(request, ['admin', 'finance']);
    return { data: await budgetStatus(ctx, principal.tenant, () => true) };
  });

  app.delete('/v1/budgets/:id', async (request) => {
    const principal = await ctx.auth.authenticate(request, ['admin']);
    const { id } = request.params as { id: string };
    if (!(await ctx.store.deleteBudget(principal.tenant, id)))
      throw new TallyError('not_found', `No budget ${id}.`);
    ctx.budgets.invalidate(principal.tenant);
    return { id, deleted: true };
  });

  app.get('/v1/alerts', async (request) => {
    const principal = await ctx.auth.authenticate(request, ['admin', 'finance']);
    const limit = Number((request.query as Record<string, unknown>)['limit'] ?? 100);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      throw new TallyError('invalid_query', 'limit must be an integer from 1 to 1000.');
    }
    await ctx.alerts.stored();
    const rows = await ctx.store.listAlerts(principal.tenant, limit);
    return {
      data: rows.map((a) => ({ id: a.id, kind: a.kind, time: new Date(a.time).toISOString(), ...a.payload })),
    };
  });
};
