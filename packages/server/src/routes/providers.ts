import { isObject, TallyError } from '@tally/core';
import type { ProviderConfig } from '@tally/gateway';
import type { ProviderRecord } from '@tally/store';
import type { FastifyPluginAsync } from 'fastify';
import { providerSchema } from '../config.js';
import type { AppContext } from '../context.js';
import type { SecretBox } from '../secrets.js';

/** Stored providers, decrypted, as the gateway takes them. */
export function toProviderConfig(rec: ProviderRecord, box: SecretBox): ProviderConfig {
  const s = rec.settings;
  const p: ProviderConfig = {
    id: rec.id,
    tenant: rec.tenant,
    kind: rec.kind as ProviderConfig['kind'],
    base_url: rec.base_url,
  };
  if (rec.secret_enc) p.api_key = box.decrypt(rec.secret_enc);
  if (typeof s['api_version'] === 'string') p.api_version = s['api_version'];
  if (typeof s['organization'] === 'string') p.organization = s['organization'];
  if (typeof s['project'] === 'string') p.project = s['project'];
  if (isObject(s['deployments'])) p.deployments = s['deployments'] as Record<string, string>;
  if (typeof s['price_provider'] === 'string') p.price_provider = s['price_provider'];
  if (typeof s['timeout_ms'] === 'number') p.timeout_ms = s['timeout_ms'];
  return p;
}

export type ProviderRefresh = () => Promise<void>;

/** Upstream providers managed through the API. Their keys are encrypted at rest, and never returned
 * by these routes; the replicas' route (/v1/gateway/providers) gives them, decrypted, to an admin
 * key, which a replica runs with. */
export const providerRoutes: FastifyPluginAsync<AppContext & { refreshProviders: ProviderRefresh }> = async (
  app,
  ctx,
) => {
  app.post('/v1/providers', async (request, reply) => {
    const principal = await ctx.auth.authenticate(request, ['admin']);
    if (!isObject(request.body)) throw new TallyError('invalid_request', 'The body must be a JSON object.');
    const parsed = providerSchema.safeParse(request.body);
    if (!parsed.success) {
      const issues = parsed.error.issues
        .map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`)
        .join('; ');
      throw new TallyError('invalid_request', `The provider is not valid: ${issues}`);
    }
    const p = parsed.data;
    const settings: Record<string, unknown> = {};
    for (const k of [
      'api_version',
      'organization',
      'project',
      'deployments',
      'price_provider',
      'timeout_ms',
    ] as const)
      if (p[k] !== undefined) settings[k] = p[k];
    await ctx.store.putProvider({
      tenant: principal.tenant,
      id: p.id,
      kind: p.kind,
      base_url: p.base_url,
      secret_enc: p.api_key ? ctx.secrets.encrypt(p.api_key) : null,
      settings,
      created_at: ctx.clock.now(),
    });
    await ctx.refreshProviders();
    return reply
      .status(201)
      .send({ id: p.id, kind: p.kind, base_url: p.base_url, has_key: Boolean(p.api_key), ...settings });
  });

  app.get('/v1/providers', async (request) => {
    const principal = await ctx.auth.authenticate(request, ['admin']);
    const list = (await ctx.store.listProviders()).filter((p) => p.tenant === principal.tenant);
    return {
      data: list.map((p) => ({
        id: p.id,
        kind: p.kind,
        base_url: p.base_url,
        has_key: p.secret_enc !== null,
        ...p.settings,
      })),
    };
  });

  app.delete('/v1/providers/:id', async (request) => {
    const principal = await ctx.auth.authenticate(request, ['admin']);
    const { id } = request.params as { id: string };
    if (!(await ctx.store.deleteProvider(principal.tenant, id)))
      throw new TallyError('not_found', `No provider ${id}.`);
    await ctx.refreshProviders();
    return { id, deleted: true };
  });
};
