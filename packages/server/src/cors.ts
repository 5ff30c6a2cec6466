import type { IncomingMessage, ServerResponse } from 'node:http';

/** What a page may read of an answer besides the CORS-safelisted headers: the call's id and cost,
 * why it was limited or downgraded, and the rate limits, as OpenAI's own API exposes them. */
const EXPOSED = [
  'x-tally-call-id',
  'x-tally-request-id',
  'x-tally-cost-usd',
  'x-tally-budget',
  'x-tally-downgraded',
  'retry-after',
  'x-ratelimit-limit-requests',
  'x-ratelimit-remaining-requests',
  'x-ratelimit-reset-requests',
  'x-ratelimit-limit-tokens',
  'x-ratelimit-remaining-tokens',
  'x-ratelimit-reset-tokens',
  'x-request-id',
  'request-id',
].join(', ');

const METHODS = 'GET, POST, PUT, PATCH, DELETE';

/** A header list a preflight may name: tokens and commas, so that echoing it back adds nothing. */
const HEADER_LIST = /^[\w!#$%&'*+.^`|~-]+(?:\s*,\s*[\w!#$%&'*+.^`|~-]+)*$/;

/**
 * CORS for the origins a config lists (`cors_origins`), so that a page served from one of them can
 * call the gateway and the API with a key (the openai client's `dangerouslyAllowBrowser`, fetch).
 * Null when none is listed: then no answer carries CORS headers and browsers keep pages out.
 *
 * The returned function runs first on every request: for a listed origin it sets the headers, and
 * answers a preflight itself (true: nothing else is to be done); a request from any other origin,
 * or from none, is left as it is. `*` lets every origin in; keys are sent as headers, never as
 * cookies, so no credentials mode is allowed.
 */
export function corsFor(
  origins: readonly string[],
): ((req: IncomingMessage, res: ServerResponse) => boolean) | null {
  if (origins.length === 0) return null;
  const any = origins.includes('*');
  const listed = new Set(origins);
  return (req, res) => {
    const origin = req.headers.origin;
    if (origin === undefined || (!any && !listed.has(origin))) return false;
    res.setHeader('access-control-allow-origin', any ? '*' : origin);
    if (!any) res.setHeader('vary', 'Origin');
    const asked = req.headers['access-control-request-method'];
    if (req.method === 'OPTIONS' && asked !== undefined) {
      const headers = req.headers['access-control-request-headers'];
      res.writeHead(204, {
        'access-control-allow-methods': METHODS,
        ...(headers !== undefined && HEADER_LIST.test(headers)
          ? { 'access-control-allow-headers': headers }
          : {}),
        'access-control-max-age': '600',
        'content-length': '0',
      });
      res.end();
      req.resume();
      return true;
    }
    res.setHeader('access-control-expose-headers', EXPOSED);
    return false;
  };
}

/** Why an origin cannot be listed, or null if it can: `*`, or a scheme, host and port alone, as a
 * browser sends it in `Origin` (`https://app.example.com`, `http://localhost:5173`). */
export function originProblem(origin: string): string | null {
  if (origin === '*') return null;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return 'is not a URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must be http or https';
  if (url.origin !== origin) return `must be an origin alone, as browsers send it: ${url.origin}`;
  return null;
}
