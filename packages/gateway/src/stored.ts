import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { attribute } from './attribution.js';
import { rateLimited, rateLimitHeaders } from './policy.js';
import { upstreamFor } from './providers.js';
import { holdBack, passHeaders } from './relay.js';
import { type GatewayError, sendError, stateUnavailable, type Wire } from './replies.js';
import { readBody } from './request-body.js';
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
 * What the provider keeps between calls, and the calls that reach it again: a stored response's
 * follow-ups (retrieve it, also as a stream; delete it; cancel it; list its input items), a
 * conversation's (retrieve, update or delete it; list, add, retrieve or delete its items), and a
 * stored chat completion's (retrieve, update or delete it; list its messages). An id names no
 * provider, and everything the gateway's provider accounts hold could be read with any key, so the
 * gateway keeps, for each one made through it, which provider holds it and whose it is (the
 * tenant, and the project). A follow-up goes to that provider only, for a key of that tenant (and
 * project, for a key pinned to one); any other id is not found.
 */

/** How long the gateway keeps a stored object's owner: OpenAI keeps stored responses (and chat
 * completions) 30 days. A conversation has no expiry there: the gateway keeps its owner a year from
 * its making. */
export const RESPONSE_KEPT_MS = 30 * 86_400_000;
export const CONVERSATION_KEPT_MS = 365 * 86_400_000;

/** What a provider keeps: a response, a conversation, a chat completion asked with store: true, a
 * file (a batch's input, or its output), a batch, or an Anthropic message batch. */
export type StoredKind = 'response' | 'conversation' | 'chat_completion' | 'file' | 'batch' | 'message_batch';

export interface FollowUp {
  on: StoredKind;
  id: string;
  method: 'GET' | 'POST' | 'DELETE';
  /** The path after the id, as the provider takes it: '', '/cancel', '/input_items', '/items',
   * '/items/{item_id}'. */
  rest: string;
  /** The query string, with its `?`, passed on as it came (`include[]`, `stream`, paging). */
  query: string;
}

/** Whose a stored response, conversation or chat completion is, as the gateway keeps it. */
export interface StoredOwner {
  /** The provider (its id in the config or the API) that holds it. */
  provider: string;
  tenant: string;
  /** The project of the call that made it. */
  project: string | null;
}

/** What OpenAI's ids look like (resp_, conv_, msg_ and hex): anything else is not an id it gave. */
const STORED_ID = /^[A-Za-z0-9_-]{1,256}$/;

export const isStoredId = (id: string): boolean => STORED_ID.test(id);

/** The follow-ups each stored kind takes: its path after the id, and the methods for it. */
const FOLLOW_UPS: Record<StoredKind, { prefix: string; paths: [RegExp, readonly string[]][] }> = {
  response: {
    prefix: '/v1/responses/',
    paths: [
      [/^$/, ['GET', 'DELETE']],
      [/^\/cancel$/, ['POST']],
      [/^\/input_items$/, ['GET']],
    ],
  },
  chat_completion: {
    prefix: '/v1/chat/completions/',
    paths: [
      [/^$/, ['GET', 'POST', 'DELETE']],
      [/^\/messages$/, ['GET']],
    ],
  },
  conversation: {
    prefix: '/v1/conversations/',
    paths: [
      [/^$/, ['GET', 'POST', 'DELETE']],
      [/^\/items$/, ['GET', 'POST']],
      [/^\/items\/[A-Za-z0-9_-]{1,256}$/, ['GET', 'DELETE']],
    ],
  },
  file: {
    prefix: '/v1/files/',
    paths: [
      [/^$/, ['GET', 'DELETE']],
      [/^\/content$/, ['GET']],
    ],
  },
  batch: {
    prefix: '/v1/batches/',
    paths: [
      [/^$/, ['GET']],
      [/^\/cancel$/, ['POST']],
    ],
  },
  message_batch: {
    prefix: '/v1/messages/batches/',
    paths: [
      [/^$/, ['GET', 'DELETE']],
      [/^\/cancel$/, ['POST']],
      [/^\/results$/, ['GET']],
    ],
  },
};

/** The follow-up a request is, or null when it is none. */
export function followUpOf(method: string | undefined, url: string | undefined): FollowUp | null {
  if (!url) return null;
  const on = (Object.keys(FOLLOW_UPS) as StoredKind[]).find((k) => url.startsWith(FOLLOW_UPS[k].prefix));
  if (on === undefined) return null;
  const q = url.indexOf('?');
  const path = url.slice(FOLLOW_UPS[on].prefix.length, q < 0 ? undefined : q);
  const slash = path.indexOf('/');
  const id = slash < 0 ? path : path.slice(0, slash);
  const rest = slash < 0 ? '' : path.slice(slash);
  if (id === '') return null;
  for (const [pattern, methods] of FOLLOW_UPS[on].paths) {
    if (pattern.test(rest) && methods.includes(method ?? '')) {
      return { on, id, method: method as FollowUp['method'], rest, query: q < 0 ? '' : url.slice(q) };
    }
  }
  return null;
}

/** Where an owner is kept in the shared state: under the id alone, so that another tenant's is
 * told apart from one never seen. */
const OWNER_PREFIX: Record<StoredKind, string> = {
  response: 'resp',
  conversation: 'conv',
  chat_completion: 'chat',
  file: 'file',
  batch: 'batch',
  message_batch: 'msgbatch',
};

export const ownerKey = (on: StoredKind, id: string): string => `${OWNER_PREFIX[on]}:${id}`;

export const encodeOwner = (o: StoredOwner): string =>
  JSON.stringify({ p: o.provider, t: o.tenant, j: o.project });

function decodeOwner(text: string | null): StoredOwner | null {
  if (text === null) return null;
  try {
    const o = JSON.parse(text) as { p?: unknown; t?: unknown; j?: unknown };
    if (typeof o.p !== 'string' || typeof o.t !== 'string') return null;
    return { provider: o.p, tenant: o.t, project: typeof o.j === 'string' ? o.j : null };
  } catch {
    return null;
  }
}

/** The owner of a response or conversation made through the gateway, or null when it knows of
 * none (made elsewhere, deleted, past its time). */
export async function ownerOf(deps: GatewayDeps, on: StoredKind, id: string): Promise<StoredOwner | null> {
  return isStoredId(id) ? decodeOwner(await deps.state.recall(ownerKey(on, id))) : null;
}

/** Whether a key may reach what `owner` made: its tenant's, and its project's when the key is
 * pinned to one. */
export const reaches = (key: VirtualKey, owner: StoredOwner): boolean =>
  owner.tenant === key.tenant && (key.project === null || owner.project === key.project);

const NOT_FOUND: Record<StoredKind, string> = {
  response:
    'No response with id {id} was made through this gateway for this key (a response made elsewhere, deleted, or stored with store: false, or made more than 30 days ago, is not found).',
  conversation:
    'No conversation with id {id} was made through this gateway for this key (one made elsewhere, or deleted, is not found).',
  chat_completion:
    'No stored chat completion with id {id} was made through this gateway for this key (one made elsewhere, without store: true, deleted, or more than 30 days ago, is not found).',
  file: 'No file with id {id} was uploaded through this gateway, or made by a batch sent through it, for this key (one uploaded elsewhere, or deleted, is not found).',
  batch:
    'No batch with id {id} was sent through this gateway for this key (one sent elsewhere is not found).',
  message_batch:
    'No message batch with id {id} was sent through this gateway for this key (one sent elsewhere, or deleted, is not found).',
};

export const notFound = (on: StoredKind, id: string): GatewayError => ({
  status: 404,
  type: 'invalid_request_error',
  code: `${on}_not_found`,
  message: NOT_FOUND[on].replace('{id}', `'${id.slice(0, 256)}'`),
});

/** What serving a follow-up needs from the gateway. */
export interface FollowUpEnv {
  deps: GatewayDeps;
  upstreams: Upstreams;
  /** A provider by id, as the tenant's calls reach it. */
  provider(id: string, tenant: string): ProviderConfig | undefined;
  /** Where a conversation is made when the request names no provider: where a Responses call to a
   * model that names none goes. */
  defaultProvider(tenant: string): ProviderConfig | undefined;
  /** A tenant's response or batch as a follow-up answered it (retrieved or cancelled): a
   * background response or a batch being watched is metered now if it has ended. */
  observed(on: 'response' | 'batch' | 'message_batch', tenant: string, id: string, answer: Buffer): void;
}

/** Holds a call that costs nothing to the key's requests a minute (it takes no tokens): the headers
 * that say where the key stands, or the refusal. */
export async function heldToRpm(
  env: Pick<FollowUpEnv, 'deps'>,
  key: VirtualKey,
): Promise<Record<string, string> | GatewayError> {
  if (key.rpm === null) return {};
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
    return stateUnavailable(err);
  }
  return limit.ok ? rateLimitHeaders(limit) : rateLimited(limit, key);
}

/** Whether a result is the refusal to answer with (a GatewayError), not what was asked for. */
export const isError = (v: unknown): v is GatewayError =>
  typeof (v as GatewayError | null)?.status === 'number' && typeof (v as GatewayError).code === 'string';

/** The body of a follow-up that takes one (a conversation's update, its new items), or an empty
 * one; a body too large or undecodable is the refusal. */
export async function bodyOf(
  env: Pick<FollowUpEnv, 'deps'>,
  req: IncomingMessage,
  method: string,
): Promise<Buffer | GatewayError> {
  if (method !== 'POST') {
    req.resume();
    return Buffer.alloc(0);
  }
  return readBody(req, env.deps.config.body_limit_bytes ?? 32 * 1024 * 1024);
}

const STORE_PATH: Record<Exclude<StoredKind, 'message_batch'>, string> = {
  response: '/responses',
  conversation: '/conversations',
  chat_completion: '/chat/completions',
  file: '/files',
  batch: '/batches',
};

/** Where a provider keeps its stored kind: its Responses path, or the one beside it (an Anthropic
 * message batch: beside its messages). */
export function storeOf(provider: ProviderConfig, on: StoredKind, headers: IncomingMessage['headers']) {
  if (on === 'message_batch') {
    const target = upstreamFor(provider, 'messages', '', headers);
    return { origin: target.origin, path: `${target.path}/batches`, headers: target.headers };
  }
  const target = upstreamFor(provider, 'responses', '', headers);
  const path = target.path.replace(/\/responses$/, STORE_PATH[on]);
  return { origin: target.origin, path, headers: target.headers };
}

/** The API a stored kind's follow-ups answer in. */
export const wireOfStored = (on: StoredKind): Wire => (on === 'message_batch' ? 'anthropic' : 'openai');

/**
 * An Anthropic message batch as the gateway passes it on (or a list of them): its `results_url`
 * (the provider's own, which the client's SDK would fetch, with the gateway's key) is the gateway's
 * path to its results.
 */
export async function withGatewayResultsUrl(answer: Buffer): Promise<Buffer> {
  const rewrite = (b: Record<string, unknown>) =>
    typeof b['results_url'] === 'string' && typeof b['id'] === 'string'
      ? { ...b, results_url: `/v1/messages/batches/${b['id']}/results` }
      : b;
  const json = parseObject(answer.toString('utf8'));
  if (!json) return answer;
  const out = Array.isArray(json['data'])
    ? { ...json, data: (json['data'] as Record<string, unknown>[]).map(rewrite) }
    : rewrite(json);
  return Buffer.from(JSON.stringify(out));
}

/**
 * Serves a follow-up for `key`: held to the key's requests a minute, then passed to the provider
 * that holds the response or conversation, and its answer back as it came (an error without the
 * provider's key). It costs nothing upstream, so nothing is metered.
 */
export async function serveFollowUp(
  env: FollowUpEnv,
  req: IncomingMessage,
  res: ServerResponse,
  key: VirtualKey,
  ask: FollowUp,
): Promise<void> {
  const wire = wireOfStored(ask.on);
  const body = await bodyOf(env, req, ask.method);
  if (!Buffer.isBuffer(body)) return sendError(res, wire, body);
  const headers = await heldToRpm(env, key);
  if (isError(headers)) return sendError(res, wire, headers);
  if (!isStoredId(ask.id)) return sendError(res, wire, notFound(ask.on, ask.id));
  let owner: StoredOwner | null;
  try {
    owner = await ownerOf(env.deps, ask.on, ask.id);
  } catch (err) {
    return sendError(res, wire, stateUnavailable(err));
  }
  // Another tenant's, or another project's for a key pinned to one, is not found either.
  if (!owner || !reaches(key, owner)) return sendError(res, wire, notFound(ask.on, ask.id));
  const provider = env.provider(owner.provider, key.tenant);
  if (!provider) {
    return sendError(res, wire, {
      ...notFound(ask.on, ask.id),
      message: `The ${ask.on} '${ask.id}' is held by provider ${owner.provider}, which is no longer configured.`,
    });
  }
  const store = storeOf(provider, ask.on, req.headers);
  const answer = await pass(env, res, provider, headers, {
    origin: store.origin,
    path: `${store.path}/${ask.id}${ask.rest}${ask.query}`,
    method: ask.method,
    headers: store.headers,
    body,
    // A file's content (a batch's output, say), or a message batch's results, may be far larger
    // than an answer: passed on as it comes.
    streamed: ask.rest === '/content' || ask.rest === '/results',
    wire,
    ...(ask.on === 'message_batch' ? { transform: withGatewayResultsUrl } : {}),
  });
  if (!answer) return;
  if ((ask.on === 'response' || ask.on === 'batch' || ask.on === 'message_batch') && ask.method !== 'DELETE')
    env.observed(ask.on, key.tenant, ask.id, answer);
  if (ask.method === 'DELETE' && ask.rest === '') {
    // Deleted upstream, so gone here too.
    try {
      await env.deps.state.forget(ownerKey(ask.on, ask.id));
    } catch (err) {
      env.deps.onError?.(err, `forgetting a deleted ${ask.on}`);
    }
  }
}

/**
 * Makes a conversation (`POST /v1/conversations`) at the provider the request names
 * (`x-tally-provider`), else where a Responses call to a model that names none would go, and keeps
 * whose it is, for its follow-ups and the Responses calls that carry it on. Free upstream: held
 * to the key's requests a minute, not metered.
 */
export async function createConversation(
  env: FollowUpEnv,
  req: IncomingMessage,
  res: ServerResponse,
  key: VirtualKey,
): Promise<void> {
  const body = await bodyOf(env, req, 'POST');
  if (!Buffer.isBuffer(body)) return sendError(res, 'openai', body);
  const headers = await heldToRpm(env, key);
  if (isError(headers)) return sendError(res, 'openai', headers);
  const named = req.headers['x-tally-provider'];
  const provider =
    typeof named === 'string' ? env.provider(named, key.tenant) : env.defaultProvider(key.tenant);
  if (!provider || provider.kind === 'anthropic') {
    return sendError(res, 'openai', {
      status: 404,
      type: 'invalid_request_error',
      code: 'provider_not_found',
      message:
        typeof named === 'string'
          ? `No OpenAI-style provider ${named.slice(0, 64)} is configured to hold conversations.`
          : 'No OpenAI-style provider is configured to hold conversations.',
    });
  }
  const store = storeOf(provider, 'conversation', req.headers);
  const answer = await pass(env, res, provider, headers, { ...store, method: 'POST', body });
  const made = answer ? parseObject(answer.toString('utf8')) : null;
  const id = made?.['id'];
  if (typeof id !== 'string' || !isStoredId(id) || res.statusCode >= 300) return;
  const owner = encodeOwner({
    provider: provider.id,
    tenant: key.tenant,
    project: attribute(key, req.headers).project,
  });
  try {
    await env.deps.state.remember(
      ownerKey('conversation', id),
      owner,
      env.deps.clock.now() + CONVERSATION_KEPT_MS,
    );
  } catch (err) {
    env.deps.onError?.(err, 'remembering a conversation');
  }
}

/** Sends a call that costs nothing and passes its answer on as it came: a stream (or, `streamed`,
 * any answer) as it comes, an error without the provider's key. Returns a whole 2xx answer's body,
 * once it has been sent. */
export async function pass(
  env: Pick<FollowUpEnv, 'deps' | 'upstreams'>,
  res: ServerResponse,
  provider: ProviderConfig,
  headers: Record<string, string>,
  call: {
    origin: string;
    path: string;
    method: FollowUp['method'];
    headers: Record<string, string>;
    body: Buffer | Readable;
    streamed?: boolean;
    /** What a whole 2xx answer becomes before it is written (a list cut to the key's own); a
     * failure to make it is answered as the shared state's. */
    transform?: (answer: Buffer) => Promise<Buffer>;
    /** The API the client speaks, for the errors (OpenAI's by default). */
    wire?: Wire;
  },
): Promise<Buffer | null> {
  const wire = call.wire ?? 'openai';
  const { 'content-type': type0, ...bodyless } = call.headers;
  const cancel = new Cancel();
  res.once('close', () => {
    if (!res.writableFinished) cancel.abort();
  });
  const hasBody = !Buffer.isBuffer(call.body) || call.body.length > 0;
  let up: Awaited<ReturnType<Upstreams['request']>>;
  try {
    up = await env.upstreams.request(call.origin, {
      path: call.path,
      method: call.method,
      headers: hasBody ? { ...bodyless, 'content-type': type0 ?? 'application/json' } : bodyless,
      ...(hasBody ? { body: call.body } : {}),
      cancel,
      timeoutMs: provider.timeout_ms ?? env.deps.config.timeout_ms,
    });
  } catch (err) {
    if (cancel.aborted) return null;
    const timeout = (err as { code?: string }).code?.includes('TIMEOUT') ?? false;
    sendError(res, wire, {
      status: timeout ? 504 : 502,
      type: 'api_error',
      code: timeout ? 'upstream_timeout' : 'upstream_connection_error',
      message: `The upstream ${provider.id} did not answer.`,
      headers,
    });
    return null;
  }
  const type = up.headers['content-type'] ?? 'application/json';
  if (up.statusCode === 200 && (call.streamed || type.includes('event-stream'))) {
    // A retrieve with stream=true (the response's events), or a file's content: passed on as it comes.
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
    return null;
  }
  const limit = env.deps.config.max_response_bytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const read = await readWhole(up, limit);
  if (read.buf === null) {
    sendError(res, wire, unusableError(read.unusable, provider.id, limit));
    return null;
  }
  if (up.statusCode >= 300 && up.statusCode < 400) {
    sendError(res, wire, unusableError('upstream_redirect', provider.id, limit));
    return null;
  }
  const failed = up.statusCode >= 400;
  let out = failed
    ? Buffer.from(errorAnswer(read.buf, up.statusCode, type, wire, provider.id, provider.api_key).text)
    : read.buf;
  if (!failed && call.transform) {
    try {
      out = await call.transform(out);
    } catch (err) {
      sendError(res, wire, stateUnavailable(err));
      return null;
    }
  }
  res.writeHead(up.statusCode, {
    ...passHeaders(up.headers),
    ...headers,
    'content-type': failed ? 'application/json' : type,
    'content-length': out.length,
  });
  res.end(out);
  return failed ? null : out;
}
