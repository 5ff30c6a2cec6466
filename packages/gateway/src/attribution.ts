import type { IncomingHttpHeaders } from 'node:http';
import type { Attribution } from './meter.js';
import type { VirtualKey } from './types.js';

function header(h: IncomingHttpHeaders, name: string): string | null {
  const v = h[name];
  const s = Array.isArray(v) ? v[0] : v;
  return s && s.length <= 256 ? s : null;
}

/** `x-tally-tags`: `k=v,k2=v2`, or a JSON object of strings. */
function parseTags(raw: string | null): Record<string, string> {
  if (!raw) return {};
  const out: Record<string, string> = {};
  if (raw.startsWith('{')) {
    try {
      const o = JSON.parse(raw) as Record<string, unknown>;
      for (const [k, v] of Object.entries(o)) if (typeof v === 'string') out[k] = v;
    } catch {
      // A malformed tag header adds no tags; it does not fail the call.
    }
    return out;
  }
  for (const pair of raw.split(',')) {
    const i = pair.indexOf('=');
    if (i > 0) out[pair.slice(0, i).trim()] = pair.slice(i + 1).trim();
  }
  return out;
}

/** A call's tags: the header's, with the key's own over them (a key's pinned fields win). Most
 * keys have none: the header's object is kept as it is. */
function keyTags(key: VirtualKey, given: Record<string, string>): Record<string, string> {
  const own = key.tags;
  for (const _ in own) return { ...given, ...own };
  return given;
}

/** The end user a request body names, as the provider's API has the client name it: OpenAI's
 * `user` (or `safety_identifier`, which replaces it), Anthropic's `metadata.user_id`. */
export function bodyUser(body: Record<string, unknown> | undefined): string | null {
  if (!body) return null;
  const metadata = body['metadata'];
  const named =
    body['user'] ??
    body['safety_identifier'] ??
    (typeof metadata === 'object' && metadata !== null
      ? (metadata as Record<string, unknown>)['user_id']
      : undefined);
  return typeof named === 'string' && named !== '' && named.length <= 256 ? named : null;
}

/** The call's owner: the key's pinned fields win over the x-tally-* headers, which fill the rest;
 * the user, named by neither, is the end user the request body names (bodyUser). */
export function attribute(
  key: VirtualKey,
  h: IncomingHttpHeaders,
  body?: Record<string, unknown>,
): Attribution {
  return {
    project: key.project ?? header(h, 'x-tally-project'),
    team: key.team ?? header(h, 'x-tally-team'),
    user: key.user ?? header(h, 'x-tally-user') ?? bodyUser(body),
    use_case: header(h, 'x-tally-use-case'),
    task_id: header(h, 'x-tally-task-id'),
    tags: keyTags(key, parseTags(header(h, 'x-tally-tags'))),
  };
}
