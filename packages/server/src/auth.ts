import { createHash, randomBytes } from 'node:crypto';
import { type Clock, TallyError } from '@tally/core';
import type { VirtualKey } from '@tally/gateway';
import type { KeyRecord, Store } from '@tally/store';
import type { FastifyRequest } from 'fastify';

export type Role = KeyRecord['role'];

export interface Principal {
  tenant: string;
  role: Role;
  keyId: string;
  project: string | null;
}

export function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** A new key: `tk-` and 32 random characters for a virtual key, and the role's name after `tk-`
 * for any other (`tk-admin-…`, `tk-gateway-…`), so that a leaked one says what it opens. */
export function generateKey(role: Role): string {
  return `${role === 'virtual' ? 'tk-' : `tk-${role}-`}${randomBytes(24).toString('base64url')}`;
}

function bearer(request: FastifyRequest): string | null {
  const h = request.headers.authorization;
  if (h !== undefined && h.length > 7 && h.slice(0, 7).toLowerCase() === 'bearer ') return h.slice(7).trim();
  const x = request.headers['x-api-key'];
  return typeof x === 'string' ? x : null;
}

/**
 * Resolves a request's key to a principal. Lookups are cached briefly by hash, so a hot key costs
 * one SHA-256 and a map read; revocation takes effect within the cache lifetime.
 */
export class Authenticator {
  private readonly cache = new Map<string, { rec: KeyRecord | null; at: number }>();

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly tenant: string,
    /** The hashes of the config's own keys: `admin_key`, and `gateway_key`, the replicas' key to
     * the control routes. */
    private readonly configKeys: { admin: string | null; gateway: string | null },
    private readonly cacheMs = 5_000,
  ) {}

  async authenticate(request: FastifyRequest, allowed: readonly Role[]): Promise<Principal> {
    const key = bearer(request);
    if (!key) throw new TallyError('unauthorized');
    const hash = hashKey(key);
    let principal: Principal | null = null;
    if (this.configKeys.admin !== null && hash === this.configKeys.admin) {
      principal = { tenant: this.tenant, role: 'admin', keyId: 'config-admin', project: null };
    } else if (this.configKeys.gateway !== null && hash === this.configKeys.gateway) {
      principal = { tenant: this.tenant, role: 'gateway', keyId: 'config-gateway', project: null };
    } else {
      const rec = await this.lookup(hash);
      const now = this.clock.now();
      if (rec && rec.revoked_at === null && (rec.expires_at === null || rec.expires_at > now)) {
        principal = { tenant: rec.tenant, role: rec.role, keyId: rec.id, project: rec.project };
      }
    }
    if (!principal) throw new TallyError('unauthorized', 'The API key is not valid, revoked or expired.');
    if (!allowed.includes(principal.role)) throw new TallyError('forbidden');
    return principal;
  }

  /** The gateway's view of a key: virtual keys, and admin keys for trying the gateway out. */
  async gatewayKey(hash: string): Promise<VirtualKey | null> {
    if (this.configKeys.admin !== null && hash === this.configKeys.admin) {
      return {
        id: 'config-admin',
        tenant: this.tenant,
        project: null,
        team: null,
        user: null,
        models: [],
        tags: {},
        rpm: null,
        tpm: null,
      };
    }
    const rec = await this.lookup(hash);
    if (!rec || rec.revoked_at !== null || (rec.expires_at !== null && rec.expires_at <= this.clock.now()))
      return null;
    if (rec.role !== 'virtual' && rec.role !== 'admin') return null;
    // One view a record, for as long as the record is the one looked up: made once, not a call.
    let view = this.views.get(rec);
    if (!view) {
      view = this.viewOf(rec);
      this.views.set(rec, view);
    }
    return view;
  }

  private readonly views = new WeakMap<KeyRecord, VirtualKey>();

  private viewOf(rec: KeyRecord): VirtualKey {
    return {
      id: rec.id,
      tenant: rec.tenant,
      project: rec.project,
      team: rec.team,
      user: rec.user,
      models: rec.models,
      tags: rec.tags,
      rpm: rec.rpm,
      tpm: rec.tpm,
      maxParallel: rec.max_parallel ?? null,
    };
  }

  /** The stored key a request presents (as lately looked up), or null for none or a config key. */
  async record(request: FastifyRequest): Promise<KeyRecord | null> {
    const key = bearer(request);
    return key ? this.lookup(hashKey(key)) : null;
  }

  forget(): void {
    this.cache.clear();
  }

  private async lookup(hash: string): Promise<KeyRecord | null> {
    const now = this.clock.now();
    const hit = this.cache.get(hash);
    if (hit && now - hit.at < this.cacheMs) return hit.rec;
    const rec = await this.store.findKeyByHash(hash);
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(hash, { rec, at: now });
    return rec;
  }
}
