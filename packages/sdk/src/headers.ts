/** What the gateway attributes a call to; sent as x-tally-* headers. */
export interface Attribution {
  project?: string;
  team?: string;
  user?: string;
  useCase?: string;
  taskId?: string;
  tags?: Record<string, string>;
}

/** The x-tally-* headers for one call, e.g. `openai.chat.completions.create(body, { headers })`. */
export function gatewayHeaders(a: Attribution): Record<string, string> {
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
  return h;
}

/**
 * Options for the `openai` client that send it through the gateway with a virtual key, the
 * attribution as default headers: `new OpenAI(openAIOptions({ gatewayUrl, key, useCase }))`.
 * Per-task headers (taskId) are better passed per request, with gatewayHeaders.
 */
export function openAIOptions(o: { gatewayUrl: string; key: string } & Attribution): {
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
