import { randomUUID } from 'node:crypto';
import { isObject, TallyError } from '@tally/core';
import type { FastifyPluginAsync } from 'fastify';
import { generateKey, hashKey, type Role } from '../auth.js';
import type { AppContext } from '../context.js';
import { budgetLimit, refuseUnknownFields } from '../serialize.js';

const PERIODS = ['day', 'week', 'month'] as const;

function optString(body: Record<string, unknown>, field: string): string | null {
  const v = body[field];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || v === '' || v.length > 128) {
    throw new TallyError('invalid_request', `${field} must be a non-empty string.`);
  }
  return v;
}

function optPositiveInt(body: Record<string, unknown>, field: string): number | null {
  const v = body[field];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0 || v > 2_147_483_647) {
    throw new TallyError('invalid_request', `${field} must be a positive integer below 2^31.`);
  }
  return v;
}

const FIELDS = [
  'role',
  'project',
  'team',
  'user',
  'budget_usd',
  'period',
  'rpm',
  'tpm',
  'models',
  'expires_at',
];

const ROLES = ['virtual', 'admin', 'finance', 'member', 'gateway'] as const satisfies readonly Role[];

/** The fields a key of each role may carry besides `role` and `expires_at`: only a virtual key
 * calls models, so only it has a budget, limits and models; a member key is held to its project. */
const ROLE_FIELDS: Record<Role, readonly string[]> = {
  virtual: ['project', 'team', 'user', 'budget_usd', 'period', 'rpm', 'tpm', 'models'],
  member: ['project'],
  admin: [],
  finance: [],
  gateway: [],
};

/** The role asked for (virtual by default), with the fields that role does not take refused. */
function roleOf(body: Record<string, unknown>): Role {
  const role = body['role'] ?? 'virtual';
  if (!(ROLES as readonly unknown[]).includes(role)) {
    throw new TallyError('invalid_request', `role must be one of ${ROLES.join(', ')}.`);
  }
  const r = role as Role;
  const allowed = ROLE_FIELDS[r];
  const other = FIELDS.find(
    (f) =>
      f !== 'role' && f !== 'expires_at' && body[f] !== undefined && body[f] !== null && !allowed.includes(f),
  );
  if (other) {
    throw new TallyError(
      'invalid_request',
      r === 'member'
        ? `A member key takes a project and expires_at only, not ${other}.`
        : `A ${r} key takes expires_at only, not ${other}: budgets, limits and models are for virtual keys.`,
    );
  }
  if (r === 'member' && (body['project'] === undefined || body['project'] === null)) {
    throw new TallyError('invalid_request', 'A member key needs the project it may read.');
  }
  return r;
}

/** An RFC 3339 time with its offset: Date.parse alone takes "March 7" (as 2001) and "2027". */
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})$/;

/** Whether the time's date is a day of the calendar: Date.parse moves 2027-02-30 to March 2. */
function realDay(time: string): boolean {
  const [y, m, d] = time.slice(0, 10).split('-').map(Number) as [number, number, number];
  const day = new Date(Date.UTC(y, m - 1, d));
  return day.getUTCMonth() === m - 1 && day.getUTCDate() === d;
}

/** Keys, virtual ones (the default) and keys of the API's roles: made by an admin, shown once,
 * stored as a SHA-256 hash. */
export const keyRoutes: FastifyPluginAsync<AppContext> = async (app, ctx) => {
  app.post('/v1/keys', async (request, reply) => {
    const principal = await ctx.auth.authenticate(request, ['admin']);
    const body = request.body;
    if (!isObject(body)) throw new TallyError('invalid_request', 'The body must be a JSON object.');
    refuseUnknownFields(body, FIELDS, 'a key');
    const role = roleOf(body);
    const models = body['models'] ?? [];
    if (!Array.isArray(models) || models.some((m) => typeof m !== 'string' || m === '')) {
      throw new TallyError('invalid_request', 'models must be an array of model names.');
    }
    const period = body['period'] ?? 'month';
    if (!(PERIODS as readonly unknown[]).includes(period)) {
      throw new TallyError('invalid_request', `period must be one of ${PERIODS.join(', ')}.`);
    }
    const budget = body['budget_usd'];
    const budgetNano =
      budget === undefined || budget === null ? null : budgetLimit('budget_usd', budget, '10 or "12.50"');
    const now = ctx.clock.now();
    let expiresAt: number | null = null;
    const expires = body['expires_at'];
    if (expires !== undefined && expires !== null) {
      expiresAt =
        typeof expires === 'string' && RFC3339.test(expires) && realDay(expires)
          ? Date.parse(expires)
          : Number.NaN;
      if (Number.isNaN(expiresAt))
        throw new TallyError(
          'invalid_request',
          'expires_at must be an RFC 3339 time, such as 2027-01-31T00:00:00Z.',
        );
      if (expiresAt <= now) throw new TallyError('invalid_request', 'expires_at must be in the future.');
    }
    // Every field is checked before anything is written: a refused key leaves no budget behind.
    const owner = {
      project: optString(body, 'project'),
      team: optString(body, 'team'),
      user: optString(body, 'user'),
    };
    const limits = { rpm: optPositiveInt(body, 'rpm'), tpm: optPositiveInt(body, 'tpm') };
    const id = `key_${randomUUID().replace(/-/g, '').slice(0, 20)}`;
    const key = generateKey(role);
    let budgetId: string | null = null;
    if (budgetNano !== null) {
      budgetId = `budget_${id}`;
      await ctx.store.putBudget({
        tenant: principal.tenant,
        id: budgetId,
        scope: 'key',
        subject: id,
        limit_nano: budgetNano,
        period: period as (typeof PERIODS)[number],
        time_zone: 'UTC',
        thresholds: [0.5, 0.8, 1],
        action: 'block',
        downgrade_model: null,
        created_at: now,
      });
    }
    await ctx.store.createKey({
      tenant: principal.tenant,
      id,
      hash: hashKey(key),
      // The role's part and five random characters (the random part is the last 32).
      prefix: key.slice(0, key.length - 27),
      role,
      ...owner,
      models: models as string[],
      ...limits,
      budget_id: budgetId,
      created_at: now,
      expires_at: expiresAt,
      revoked_at: null,
    });
    if (budgetId) ctx.budgets.invalidate(principal.tenant);
    return reply.status(201).send({ id, key });
  });

  app.get('/v1/keys', async (request) => {
    const principal = await ctx.auth.authenticate(request, ['admin']);
    const keys = await ctx.store.listKeys(principal.tenant);
    return {
      data: keys.map((k) => ({
        id: k.id,
        prefix: k.prefix,
        role: k.role,
        project: k.project,
        team: k.team,
        user: k.user,
        models: k.models,
        rpm: k.rpm,
        tpm: k.tpm,
        budget_id: k.budget_id,
        created_at: new Date(k.created_at).toISOString(),
        expires_at: k.expires_at === null ? null : new Date(k.expires_at).toISOString(),
        revoked_at: k.revoked_at === null ? null : new Date(k.revoked_at).toISOString(),
      })),
    };
  });

  app.delete('/v1/keys/:id', async (request) => {
    const principal = await ctx.auth.authenticate(request, ['admin']);
    const { id } = request.params as { id: string };
    const revoked = await ctx.store.revokeKey(principal.tenant, id, ctx.clock.now());
    if (!revoked) throw new TallyError('not_found', `No active key ${id}.`);
    ctx.auth.forget();
    return { id, revoked: true };
  });
};
