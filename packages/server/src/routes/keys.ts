import { randomUUID } from 'node:crypto';
import { isObject, TallyError, tagSubject } from '@tally/core';
import type { KeyPatch, KeyRecord } from '@tally/store';
import type { FastifyPluginAsync } from 'fastify';
import { generateKey, hashKey, type Role } from '../auth.js';
import type { AppContext } from '../context.js';
import { budgetLimit, modelList, optPositiveInt, refuseUnknownFields } from '../serialize.js';
import { budgetStatus } from './budgets.js';
import { rateLimitStanding } from './rate-limits.js';

const PERIODS = ['day', 'week', 'month'] as const;

function optString(body: Record<string, unknown>, field: string): string | null {
  const v = body[field];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || v === '' || v.length > 128) {
    throw new TallyError('invalid_request', `${field} must be a non-empty string.`);
  }
  return v;
}

const FIELDS = [
  'role',
  'name',
  'project',
  'team',
  'user',
  'budget_usd',
  'period',
  'rpm',
  'tpm',
  'max_parallel',
  'models',
  'tags',
  'expires_at',
];

const ROLES = ['virtual', 'admin', 'finance', 'member', 'gateway'] as const satisfies readonly Role[];

/** What any key may carry: a name and an expiry. */
const EVERY_KEY = ['name', 'expires_at'];

/** The fields a key of each role may carry besides its role: only a virtual key calls models, so
 * only it has a budget, limits and models; a member key is held to its project. */
const ROLE_FIELDS: Record<Role, readonly string[]> = {
  // Every field but its role.
  virtual: FIELDS.filter((f) => f !== 'role'),
  member: [...EVERY_KEY, 'project'],
  admin: EVERY_KEY,
  finance: EVERY_KEY,
  gateway: EVERY_KEY,
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
    (f) => f !== 'role' && body[f] !== undefined && body[f] !== null && !allowed.includes(f),
  );
  if (other) {
    throw new TallyError(
      'invalid_request',
      r === 'member'
        ? `A member key takes a project, a name and expires_at only, not ${other}.`
        : `A ${r} key takes a name and expires_at only, not ${other}: budgets, limits and models are for virtual keys.`,
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

/** The most tags a key may give its calls. */
const MAX_KEY_TAGS = 32;

/** A key's tags: an object of strings, names of 1 to 256 characters, values of at most 1,024. */
function tagsOf(value: unknown): Record<string, string> {
  const problem = 'tags must be an object of strings, such as {"app": "checkout"}';
  if (!isObject(value)) throw new TallyError('invalid_request', `${problem}.`);
  const entries = Object.entries(value);
  if (entries.length > MAX_KEY_TAGS)
    throw new TallyError(
      'invalid_request',
      `A key takes at most ${MAX_KEY_TAGS} tags; got ${entries.length}.`,
    );
  for (const [k, v] of entries)
    if (typeof v !== 'string' || k.length === 0 || k.length > 256 || v.length > 1024)
      throw new TallyError(
        'invalid_request',
        `${problem}: names of 1 to 256 characters, values of at most 1,024 (not ${JSON.stringify(k.slice(0, 60))}).`,
      );
  return value as Record<string, string>;
}

function periodOf(value: unknown): (typeof PERIODS)[number] {
  if (!(PERIODS as readonly unknown[]).includes(value)) {
    throw new TallyError('invalid_request', `period must be one of ${PERIODS.join(', ')}.`);
  }
  return value as (typeof PERIODS)[number];
}

/** An expiry in the future, as epoch ms. */
function expiryOf(value: unknown, now: number): number {
  const at =
    typeof value === 'string' && RFC3339.test(value) && realDay(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(at))
    throw new TallyError(
      'invalid_request',
      'expires_at must be an RFC 3339 time, such as 2027-01-31T00:00:00Z.',
    );
  if (at <= now) throw new TallyError('invalid_request', 'expires_at must be in the future.');
  return at;
}

/** The part of a key shown to recognise it: the role's part and five random characters (the
 * random part is the last 32). */
function prefixOf(key: string): string {
  return key.slice(0, key.length - 27);
}

/** A tenant's key that is not revoked, or not_found. */
async function activeKey(ctx: AppContext, tenant: string, id: string): Promise<KeyRecord> {
  const key = (await ctx.store.listKeys(tenant)).find((k) => k.id === id && k.revoked_at === null);
  if (!key) throw new TallyError('not_found', `No active key ${id}.`);
  return key;
}

/** A key as the API shows it: never its secret. */
function keyView(k: KeyRecord): Record<string, unknown> {
  return {
    id: k.id,
    prefix: k.prefix,
    name: k.name,
    role: k.role,
    project: k.project,
    team: k.team,
    user: k.user,
    models: k.models,
    tags: k.tags,
    rpm: k.rpm,
    tpm: k.tpm,
    max_parallel: k.max_parallel ?? null,
    budget_id: k.budget_id,
    created_at: new Date(k.created_at).toISOString(),
    expires_at: k.expires_at === null ? null : new Date(k.expires_at).toISOString(),
    revoked_at: k.revoked_at === null ? null : new Date(k.revoked_at).toISOString(),
  };
}

/** A key's own budget (scope key), made with it or later. */
function keyBudget(
  tenant: string,
  keyId: string,
  limitNano: bigint,
  period: (typeof PERIODS)[number],
  now: number,
) {
  return {
    tenant,
    id: `budget_${keyId}`,
    scope: 'key' as const,
    subject: keyId,
    limit_nano: limitNano,
    period,
    time_zone: 'UTC',
    thresholds: [0.5, 0.8, 1],
    action: 'block' as const,
    downgrade_model: null,
    models: [],
    created_at: now,
  };
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
    const models = modelList(body['models'] ?? []);
    const tags = tagsOf(body['tags'] ?? {});
    const period = periodOf(body['period'] ?? 'month');
    const budget = body['budget_usd'];
    const budgetNano =
      budget === undefined || budget === null ? null : budgetLimit('budget_usd', budget, '10 or "12.50"');
    const now = ctx.clock.now();
    const expires = body['expires_at'];
    const expiresAt = expires === undefined || expires === null ? null : expiryOf(expires, now);
    // Every field is checked before anything is written: a refused key leaves no budget behind.
    const owner = {
      name: optString(body, 'name'),
      project: optString(body, 'project'),
      team: optString(body, 'team'),
      user: optString(body, 'user'),
    };
    const limits = {
      rpm: optPositiveInt(body, 'rpm'),
      tpm: optPositiveInt(body, 'tpm'),
      max_parallel: optPositiveInt(body, 'max_parallel'),
    };
    const id = `key_${randomUUID().replace(/-/g, '').slice(0, 20)}`;
    const key = generateKey(role);
    let budgetId: string | null = null;
    if (budgetNano !== null) {
      const b = keyBudget(principal.tenant, id, budgetNano, period, now);
      budgetId = b.id;
      await ctx.store.putBudget(b);
    }
    await ctx.store.createKey({
      tenant: principal.tenant,
      id,
      hash: hashKey(key),
      prefix: prefixOf(key),
      role,
      ...owner,
      models,
      tags,
      ...limits,
      budget_id: budgetId,
      created_at: now,
      expires_at: expiresAt,
      revoked_at: null,
    });
    if (budgetId) ctx.budgets.invalidate(principal.tenant);
    return reply.status(201).send({ id, key });
  });

  // A virtual key's own view, for the application that holds it: its policy, and where it stands
  // on each budget that holds it by what it pins (a budget of a project or a user its calls name
  // by header holds those calls too), and on each rate limit of its scopes. The tenant's own budget
  // (or rate limit) is not shown: its spend is the whole
  // company's, which is no key holder's to read.
  app.get('/v1/key', async (request) => {
    const principal = await ctx.auth.authenticate(request, ['virtual']);
    const key = await ctx.auth.record(request);
    if (!key || key.id !== principal.keyId)
      throw new TallyError('unauthorized', 'The API key is not valid, revoked or expired.');
    const pinned: Record<string, string | null> = {
      project: key.project,
      team: key.team,
      user: key.user,
      key: key.id,
    };
    const tagged = (subject: string) => {
      const tag = tagSubject(subject);
      return tag !== null && key.tags[tag.key] === tag.value;
    };
    const holds = (b: { scope: string; subject: string }) =>
      b.scope === 'tag' ? tagged(b.subject) : pinned[b.scope] === b.subject;
    const budgets = await budgetStatus(ctx, principal.tenant, holds);
    const rateLimits = [];
    for (const r of await ctx.store.listRateLimits(principal.tenant))
      if (holds(r)) rateLimits.push(await rateLimitStanding(ctx, r));
    return { ...keyView(key), budgets, rate_limits: rateLimits };
  });

  app.get('/v1/keys', async (request) => {
    const principal = await ctx.auth.authenticate(request, ['admin']);
    const keys = await ctx.store.listKeys(principal.tenant);
    return { data: keys.map(keyView) };
  });

  // A key's owner and policy change in place: its holders keep the secret they have.
  app.patch('/v1/keys/:id', async (request) => {
    const principal = await ctx.auth.authenticate(request, ['admin']);
    const { id } = request.params as { id: string };
    const body = request.body;
    if (!isObject(body)) throw new TallyError('invalid_request', 'The body must be a JSON object.');
    refuseUnknownFields(body, FIELDS, 'a key');
    if (body['role'] !== undefined)
      throw new TallyError('invalid_request', "A key's role cannot change: make a new key.");
    const key = await activeKey(ctx, principal.tenant, id);
    const allowed = ROLE_FIELDS[key.role];
    const given = FIELDS.filter((f) => body[f] !== undefined);
    const other = given.find((f) => !allowed.includes(f));
    if (other) throw new TallyError('invalid_request', `A ${key.role} key has no ${other} to change.`);
    if (key.role === 'member' && body['project'] === null)
      throw new TallyError('invalid_request', 'A member key keeps a project: name another one.');
    // Every field is checked before anything is written.
    const now = ctx.clock.now();
    const patch: KeyPatch = {};
    for (const f of ['name', 'project', 'team', 'user'] as const)
      if (body[f] !== undefined) patch[f] = body[f] === null ? null : optString(body, f);
    if (body['models'] !== undefined) patch.models = modelList(body['models'] ?? []);
    if (body['tags'] !== undefined) patch.tags = tagsOf(body['tags'] ?? {});
    for (const f of ['rpm', 'tpm', 'max_parallel'] as const)
      if (body[f] !== undefined) patch[f] = optPositiveInt(body, f);
    if (body['expires_at'] !== undefined)
      patch.expires_at = body['expires_at'] === null ? null : expiryOf(body['expires_at'], now);
    const period = body['period'] === undefined ? undefined : periodOf(body['period']);
    const budget = body['budget_usd'];
    const limitNano =
      budget === undefined || budget === null ? null : budgetLimit('budget_usd', budget, '10 or "12.50"');
    const current = key.budget_id
      ? ((await ctx.store.listBudgets(principal.tenant)).find((b) => b.id === key.budget_id) ?? null)
      : null;
    if (period !== undefined && limitNano === null && (budget === null || !current))
      throw new TallyError('invalid_request', 'period is that of a budget: give budget_usd with it.');
    if (budget === null) {
      if (current) await ctx.store.deleteBudget(principal.tenant, current.id);
      patch.budget_id = null;
    } else if (limitNano !== null || period !== undefined) {
      const next = current
        ? { ...current, limit_nano: limitNano ?? current.limit_nano, period: period ?? current.period }
        : keyBudget(principal.tenant, id, limitNano!, period ?? 'month', now);
      await ctx.store.putBudget(next);
      patch.budget_id = next.id;
    }
    const updated = await ctx.store.updateKey(principal.tenant, id, patch);
    if (!updated) throw new TallyError('not_found', `No active key ${id}.`);
    ctx.auth.forget();
    if (budget !== undefined || period !== undefined) ctx.budgets.invalidate(principal.tenant);
    return keyView(updated);
  });

  // A new secret for a key, shown once: the old one stops working (on replicas, within their
  // cache time); its id, owner, policy and budget stay.
  app.post('/v1/keys/:id/rotate', async (request) => {
    const principal = await ctx.auth.authenticate(request, ['admin']);
    const { id } = request.params as { id: string };
    const current = await activeKey(ctx, principal.tenant, id);
    const key = generateKey(current.role);
    const rotated = await ctx.store.rotateKey(principal.tenant, id, {
      hash: hashKey(key),
      prefix: prefixOf(key),
    });
    if (!rotated) throw new TallyError('not_found', `No active key ${id}.`);
    ctx.auth.forget();
    return { id, key };
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
