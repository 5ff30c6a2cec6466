import type { IncomingMessage, ServerResponse } from 'node:http';
import { rateLimited, rateLimitHeaders } from './policy.js';
import { upstreamFor } from './providers.js';
import { holdBack, passHeaders } from './relay.js';
import { type GatewayError, sendError, stateUnavailable } from './replies.js';
import type { GatewayDeps, ProviderConfig, VirtualKey } from './types.js';
import { Cancel, type Upstreams } from './upstream.js';
import {
  DEFAULT_MAX_RESPONSE_BYTES,
  errorAnswer,
  parseObject,
  readWhole,
  unusableError,
} from './upstream-answer.js';

/**
 * The Responses API's follow-ups on a stored response: retrieve it (`GET /v1/responses/{id}`, also
 * as a stream), delete it, cancel it, and list its input items. A response id names no provider,
 * and every response the gateway's provider accounts hold could be read with any key, so the
 * gateway keeps, for each response it passed on, which provider holds it and whose it is (the
 * tenant, and the key's project). A follow-up goes to that provider only, for a key of that
 * tenant (and project, for a key pinned to one); any other id is not found.
 */

/** How long the gateway keeps a stored response's owner: OpenAI keeps stored responses 30 days. */
export const RESPONSE_KEPT_MS = 30 * 86_400_000;

export type FollowUpKind = 'retrieve' | 'delete' | 'cancel' | 'input_items';

export interface FollowUp {
  id: string;
  kind: FollowUpKind;
  /** The query string, with its `?`, passed on as it came (`include[]`, `stream`, paging). */
  query: string;
}

/** Who a stored response belongs to, as the gateway keeps it. */
export interface ResponseOwner {
  /** The provider (its id in the config or the API) that holds the response. */
  provider: string;
  tenant: string;
  /** The project of the call that made it. */
  project: string | null;
}

const PREFIX = '/v1/responses/';
/** What OpenAI's ids look like (resp_ and hex): anything else is not an id it gave. */
const RESPONSE_ID = /^[A-Za-z0-9_-]{1,256}$/;

export const isResponseId = (id: string): boolean => RESPONSE_ID.test(id);

/** The follow-up a request is, or null when it is none. */
export function followUpOf(method: string | undefined, url: string | undefined): FollowUp | null {
  if (!url?.startsWith(PREFIX)) return null;
  const q = url.indexOf('?');
  const rest = url.slice(PREFIX.length, q < 0 ? undefined : q);
  const slash = rest.indexOf('/');
  const id = slash < 0 ? rest : rest.slice(0, slash);
  const tail = slash < 0 ? null : rest.slice(slash + 1);
  if (id === '') return null;
  let kind: FollowUpKind | null = null;
  if (tail === null) kind = method === 'GET' ? 'retrieve' : method === 'DELETE' ? 'delete' : null;
  else if (tail === 'cancel' && method === 'POST') kind = 'cancel';
  else if (tail === 'input_items' && method === 'GET') kind = 'input_items';
  return kind ? { id, kind, query: q < 0 ? '' : url.slice(q) } : null;
}

/** Where a response's owner is kept in the shared state: under its id alone, so that one of
 * another tenant's is told apart from one never seen. */
export const ownerKey = (id: string): string => `resp:${id}`;

export const encodeOwner = (o: ResponseOwner): string =>
  JSON.stringify({ p: o.provider, t: o.tenant, j: o.project });

function decodeOwner(text: string | null): ResponseOwner | null {
  if (text === null) return null;
  try {
    const o = JSON.parse(text) as { p?: unknown; t?: unknown; j?: unknown };
    if (typeof o.p !== 'string' || typeof o.t !== 'string') return null;
    return { provider: o.p, tenant: o.t, project: typeof o.j === 'string' ? o.j : null };
  } catch {
    return null;
  }
}

/** The owner of a response the gateway passed on, or null when it knows of none (made elsewhere,
 * deleted, past its 30 days). */
export async function ownerOf(deps: GatewayDeps, id: string): Promise<ResponseOwner | null> {
  return isResponseId(id) ? decodeOwner(await deps.state.recall(ownerKey(id))) : null;
}

/** Whether a key may reach a response of `owner`'s: one of its tenant, and of its project when the
 * key is pinned to one. */
export const reaches = (key: VirtualKey, owner: ResponseOwner): boolean =>
  owner.tenant === key.tenant && (key.project === null || owner.project === key.project);

const notFound = (id: string): GatewayError => ({
  status: 404,
  type: 'invalid_request_error',
  code: 'response_not_found',
  message: `No response with id '${id.slice(0, 256)}' was made through this gateway for this key (a response made elsewhere, deleted, or stored with store: false, or made more than 30 days ago, is not found).`,
});

/** What serving a follow-up needs from the gateway. */
export interface FollowUpEnv {
  deps: GatewayDeps;
  upstreams: Upstreams;
  /** A provider by id, as the tenant's calls reach it. */
  provider(id: string, tenant: string): ProviderConfig | undefined;
  /** Whether a tenant's background response is watched, and a response a follow-up answered
   * (retrieved or cancelled), for the watch to meter if it has ended. */
  watching(tenant: string, id: string): boolean;
  observed(tenant: string, id: string, response: Record<string, unknown> | null): void;
}

/**
 * Serves a follow-up for `key`: held to the key's requests a minute (it takes no tokens), then
 * passed to the provider that holds the response, and its answer back as it came (an error
 * without the provider's key). It costs nothing upstream, so nothing is metered.
 */
export async function serveFollowUp(
  env: FollowUpEnv,
  req: IncomingMessage,
  res: ServerResponse,
  key: VirtualKey,
  ask: FollowUp,
): Promise<void> {
  // None of these has a body worth reading (a cancel's is empty).
  req.resume();
  const headers: Record<string, string> = {};
  if (key.rpm !== null) {
    let limit: Awaited<ReturnType<GatewayDeps['state']['rateLimit']>>;
    try {
      limit = await env.deps.state.rateLimit({
        key: key.id,
        rpm: key.rpm,
        tpm: key.tpm,
        tokens: 0,
        now: env.deps.clock.now(),
      });
    } catch (err) {
      return sendError(res, 'openai', stateUnavailable(err));
    }
    if (!limit.ok) return sendError(res, 'openai', rateLimited(limit, key));
    Object.assign(headers, rateLimitHeaders(limit));
  }
  if (!isResponseId(ask.id)) return sendError(res, 'openai', notFound(ask.id));
  let owner: ResponseOwner | null;
  try {
    owner = await ownerOf(env.deps, ask.id);
  } catch (err) {
    return sendError(res, 'openai', stateUnavailable(err));
  }
  // Another tenant's, or another project's for a key pinned to one, is not found either.
  if (!owner || !reaches(key, owner)) return sendError(res, 'openai', notFound(ask.id));
  const provider = env.provider(owner.provider, key.tenant);
  if (!provider) {
    return sendError(res, 'openai', {
      ...notFound(ask.id),
      message: `Response '${ask.id}' is held by provider ${owner.provider}, which is no longer configured.`,
    });
  }
  const target = upstreamFor(provider, 'responses', '', req.headers);
  const suffix = ask.kind === 'cancel' ? '/cancel' : ask.kind === 'input_items' ? '/input_items' : '';
  const { 'content-type': _bodyless, ...upHeaders } = target.headers;
  const cancel = new Cancel();
  res.once('close', () => {
    if (!res.writableFinished) cancel.abort();
  });
  let up: Awaited<ReturnType<Upstreams['request']>>;
  try {
    up = await env.upstreams.request(target.origin, {
      path: `${target.path}/${ask.id}${suffix}${ask.query}`,
      method: ask.kind === 'delete' ? 'DELETE' : ask.kind === 'cancel' ? 'POST' : 'GET',
      headers: upHeaders,
      cancel,
      timeoutMs: provider.timeout_ms ?? env.deps.config.timeout_ms,
    });
  } catch (err) {
    if (cancel.aborted) return;
    const timeout = (err as { code?: string }).code?.includes('TIMEOUT') ?? false;
    return sendError(res, 'openai', {
      status: timeout ? 504 : 502,
      type: 'api_error',
      code: timeout ? 'upstream_timeout' : 'upstream_connection_error',
      message: `The upstream ${provider.id} did not answer.`,
      headers,
    });
  }
  const type = up.headers['content-type'] ?? 'application/json';
  if (up.statusCode === 200 && type.includes('event-stream')) {
    // A retrieve with stream=true: the response's events, passed on as they come.
    res.writeHead(200, {
      ...passHeaders(up.headers),
      ...headers,
      'content-type': type,
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
    });
    try {
      await up.body.read((chunk) => res.write(chunk) || holdBack(res, up.body));
      res.end();
    } catch {
      // The upstream broke off (or the client left): the client's connection is cut as it was.
      res.destroy();
    }
    return;
  }
  const limit = env.deps.config.max_response_bytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const read = await readWhole(up, limit);
  if (read.buf === null) return sendError(res, 'openai', unusableError(read.unusable, provider.id, limit));
  if (up.statusCode >= 300 && up.statusCode < 400)
    return sendError(res, 'openai', unusableError('upstream_redirect', provider.id, limit));
  let out = read.buf;
  if (up.statusCode >= 400)
    out = Buffer.from(errorAnswer(out, up.statusCode, type, 'openai', provider.id, provider.api_key).text);
  else if ((ask.kind === 'retrieve' || ask.kind === 'cancel') && env.watching(key.tenant, ask.id))
    env.observed(key.tenant, ask.id, parseObject(out.toString('utf8')));
  else if (ask.kind === 'delete') {
    // Deleted upstream, so gone here too.
    try {
      await env.deps.state.forget(ownerKey(ask.id));
    } catch (err) {
      env.deps.onError?.(err, 'forgetting a deleted response');
    }
  }
  res.writeHead(up.statusCode, {
    ...passHeaders(up.headers),
    ...headers,
    'content-type': up.statusCode >= 400 ? 'application/json' : type,
    'content-length': out.length,
  });
  res.end(out);
}
