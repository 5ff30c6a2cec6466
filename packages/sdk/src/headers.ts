/** What the gateway attributes a call to; sent as x-tally-* headers. */
export interface Attribution {
  project?: string;
  team?: string;
  user?: string;
  useCase?: string;
  taskId?: string;
  tags?: Record<string, string>;
}

/** How the gateway is to route a call, over its route's settings; sent as x-tally-* headers too. */
export interface Routing {
  /** How many times each upstream is tried again on a 429, a 5xx or a timeout (0 to 10). */
  retries?: number;
  /** Each attempt's timeout, in ms. */
  timeoutMs?: number;
  /** Models to try in order after the route's own targets and fallbacks (up to 5). */
  fallbacks?: string[];
}

/** The x-tally-* headers for one call, e.g. `openai.chat.completions.create(body, { headers })`. */
export function gatewayHeaders(a: Attribution & Routing): Record<string, string> {
  const h: Record<string, string> = {};
  if (a.project) h['x-tally-project'] = a.project;
  if (a.team) h['x-tally-team'] = a.team;
  if (a.user) h['x-tally-user'] = a.user;
  if (a.useCase) h['x-tally-use-case'] = a.useCase;
  if (a.taskId) h['x-tally-task-id'] = a.taskId;
  if (a.tags && Object.keys(a.tags).length > 0) {
    // As JSON, so commas and '=' in values survive; non-ASCII escaped, as a header must be ASCII.
    h['x-tally-tags'] = JSON.stringify(a.tags).replace(
      /[\u007f-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
  }
  if (a.retries !== undefined) h['x-tally-retries'] = String(a.retries);
  if (a.timeoutMs !== undefined) h['x-tally-timeout-ms'] = String(a.timeoutMs);
  if (a.fallbacks && a.fallbacks.length > 0) h['x-tally-fallbacks'] = a.fallbacks.join(',');
  return h;
}

/**
 * Options for the `openai` client that send it through the gateway with a virtual key, the
 * attribution as default headers: `new OpenAI(openAIOptions({ gatewayUrl, key, useCase }))`.
 * Per-task headers (taskId) are better passed per request, with gatewayHeaders. With the gateway's
 * retries (`retries`), the client's own (`maxRetries`, 2 by default) multiply them: set it to 0.
 */
export function openAIOptions(o: { gatewayUrl: string; key: string } & Attribution & Routing): {
  baseURL: string;
  apiKey: string;
  defaultHeaders: Record<string, string>;
} {
  const { gatewayUrl, key, ...attribution } = o;
  return {
    baseURL: `${gatewayUrl.replace(/\/+$/, '').replace(/\/v1$/, '')}/v1`,
    apiKey: key,
    defaultHeaders: gatewayHeaders(attribution),
  };
}
