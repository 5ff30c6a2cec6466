/**
 * Anthropic messages -> OpenAI chat completions, so Anthropic's client (and the tools built on it)
 * reaches OpenAI, Azure and OpenAI-compatible models. The call is metered from the upstream's own
 * usage object; the client sees Anthropic's shapes throughout.
 */
import { InvalidRequest, objectItem, objectList, TranslationError } from './anthropic-blocks.js';

type Obj = Record<string, unknown>;

const TO = 'an OpenAI-format model';

/** A data URL or a link for an Anthropic image block. */
function imageUrl(block: Obj, at: string): string {
  const source = (block['source'] ?? {}) as Obj;
  if (source['type'] === 'base64')
    return `data:${String(source['media_type'])};base64,${String(source['data'])}`;
  if (source['type'] === 'url' && typeof source['url'] === 'string') return source['url'];
  throw new TranslationError(
    `${at}: an image from a source of type "${String(source['type'])}" cannot be sent to ${TO}.`,
  );
}

/** The text of a system prompt or a tool result: a string, or text blocks. */
function textOf(content: unknown, at: string): string {
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw new InvalidRequest(`${at} must be a string or an array of blocks.`);
  return content
    .map((b, j) => {
      const block = objectItem(b, at, j);
      if (block['type'] !== 'text')
        throw new TranslationError(
          `${at}[${j}]: a "${String(block['type'])}" block here cannot be sent to ${TO}.`,
        );
      return String(block['text'] ?? '');
    })
    .join('');
}

/** A tool result's text for its tool message, and its images, which a tool message cannot hold
 * (OpenAI's take text only): they go to the user message after the tool messages, under a line
 * that names the call they came from. */
function toolResult(block: Obj, at: string, images: Obj[]): string {
  const content = block['content'];
  if (!Array.isArray(content)) return textOf(content, at);
  let text = '';
  let first = true;
  for (let j = 0; j < content.length; j++) {
    const part = objectItem(content[j], at, j);
    if (part['type'] === 'text') text += String(part['text'] ?? '');
    else if (part['type'] === 'image') {
      if (first)
        images.push({
          type: 'text',
          text: `Images from the result of tool call ${String(block['tool_use_id'])}:`,
        });
      first = false;
      images.push({ type: 'image_url', image_url: { url: imageUrl(part, `${at}[${j}]`) } });
    } else
      throw new TranslationError(
        `${at}[${j}]: a "${String(part['type'])}" block here cannot be sent to ${TO}.`,
      );
  }
  return text;
}

/** Blocks of a user turn: its text and images as one user message, each tool result as a tool
 * message. The tool messages go first: OpenAI wants them right after the assistant's tool calls.
 * The images of tool results open the user message. */
function userTurn(content: unknown, at: string, out: Obj[]): void {
  if (typeof content === 'string') {
    out.push({ role: 'user', content });
    return;
  }
  if (!Array.isArray(content)) throw new InvalidRequest(`${at} must be a string or an array of blocks.`);
  const fromTools: Obj[] = [];
  const parts: Obj[] = [];
  for (let j = 0; j < content.length; j++) {
    const block = objectItem(content[j], at, j);
    const type = block['type'];
    if (type === 'text') parts.push({ type: 'text', text: String(block['text'] ?? '') });
    else if (type === 'image')
      parts.push({ type: 'image_url', image_url: { url: imageUrl(block, `${at}[${j}]`) } });
    else if (type === 'tool_result') {
      const result = toolResult(block, `${at}[${j}].content`, fromTools);
      out.push({
        role: 'tool',
        tool_call_id: block['tool_use_id'],
        // A tool message has no error flag: a failed call says so in its text, as the model would
        // have been told.
        content: block['is_error'] === true ? `Error: ${result}` : result,
      });
    } else throw new TranslationError(`${at}[${j}]: a "${String(type)}" block cannot be sent to ${TO}.`);
  }
  if (fromTools.length + parts.length > 0) out.push({ role: 'user', content: [...fromTools, ...parts] });
}

/** An assistant turn: its text, and its tool calls. Thinking blocks stay behind: another model
 * cannot read them. */
function assistantTurn(content: unknown, at: string, out: Obj[]): void {
  if (typeof content === 'string') {
    out.push({ role: 'assistant', content });
    return;
  }
  if (!Array.isArray(content)) throw new InvalidRequest(`${at} must be a string or an array of blocks.`);
  let text = '';
  const calls: Obj[] = [];
  for (let j = 0; j < content.length; j++) {
    const block = objectItem(content[j], at, j);
    const type = block['type'];
    if (type === 'text') text += String(block['text'] ?? '');
    else if (type === 'tool_use') {
      calls.push({
        id: block['id'],
        type: 'function',
        function: { name: block['name'], arguments: JSON.stringify(block['input'] ?? {}) },
      });
    } else if (type === 'thinking' || type === 'redacted_thinking') continue;
    else throw new TranslationError(`${at}[${j}]: a "${String(type)}" block cannot be sent to ${TO}.`);
  }
  if (text === '' && calls.length === 0) return;
  const m: Obj = { role: 'assistant', content: text === '' ? null : text };
  if (calls.length > 0) m['tool_calls'] = calls;
  out.push(m);
}

function toolChoice(choice: unknown): { choice?: unknown; parallel?: boolean } {
  if (choice === undefined || choice === null) return {};
  const c = choice as Obj;
  const parallel = c['disable_parallel_tool_use'] === true ? { parallel: false } : {};
  switch (c['type']) {
    case 'auto':
      return { choice: 'auto', ...parallel };
    case 'any':
      return { choice: 'required', ...parallel };
    case 'none':
      return { choice: 'none' };
    case 'tool':
      return { choice: { type: 'function', function: { name: c['name'] } }, ...parallel };
    default:
      throw new InvalidRequest(`tool_choice.type "${String(c['type'])}" is not one Anthropic's API takes.`);
  }
}

/** Request fields an OpenAI-format model has no counterpart for: refused when they ask for
 * something, not dropped, so that a client never gets less than it asked for without knowing. */
function refuseUnmapped(body: Obj): void {
  if (body['top_k'] != null) throw new TranslationError(`top_k cannot be sent to ${TO}.`);
  for (const f of ['container', 'mcp_servers'] as const)
    if (body[f] != null) throw new TranslationError(`${f} cannot be sent to ${TO}.`);
}

/** Whether a provider takes the output limit as max_completion_tokens (OpenAI's reasoning models
 * refuse max_tokens): OpenAI, and Azure from API version 2024-09-01-preview (and its v1 API); an
 * earlier Azure version refuses the field, and other OpenAI-compatible servers may not know it. */
function takesMaxCompletionTokens(kind: string, apiVersion: string | undefined): boolean {
  if (kind === 'openai') return true;
  if (kind !== 'azure') return false;
  if (apiVersion === undefined || !/^\d{4}-\d{2}-\d{2}/.test(apiVersion)) return true;
  return apiVersion.slice(0, 10) >= '2024-09-01';
}

/**
 * The chat completions request for an Anthropic messages request. `kind` and `apiVersion` are the
 * provider's: they say how the output limit is named (takesMaxCompletionTokens).
 */
export function toChatRequest(body: Obj, model: string, kind: string, apiVersion?: string): Obj {
  const list = body['messages'];
  if (!Array.isArray(list)) throw new InvalidRequest('messages must be an array.');
  refuseUnmapped(body);
  const messages: Obj[] = [];
  const system = textOf(body['system'], 'system');
  if (system !== '') messages.push({ role: 'system', content: system });
  for (let i = 0; i < list.length; i++) {
    const m = objectItem(list[i], 'messages', i);
    const at = `messages[${i}].content`;
    if (m['role'] === 'user') userTurn(m['content'], at, messages);
    else if (m['role'] === 'assistant') assistantTurn(m['content'], at, messages);
    else throw new InvalidRequest(`messages[${i}].role must be "user" or "assistant".`);
  }
  const out: Obj = { model, messages };
  const max = body['max_tokens'];
  if (max !== undefined)
    out[takesMaxCompletionTokens(kind, apiVersion) ? 'max_completion_tokens' : 'max_tokens'] = max;
  for (const f of ['temperature', 'top_p'] as const) if (body[f] !== undefined) out[f] = body[f];
  if (Array.isArray(body['stop_sequences']) && body['stop_sequences'].length > 0)
    out['stop'] = body['stop_sequences'];
  if (body['stream'] === true) {
    out['stream'] = true;
    out['stream_options'] = { include_usage: true };
  }
  const tools = objectList(body['tools'], 'tools');
  if (tools.length > 0) {
    out['tools'] = tools.map((t) => {
      if (t['type'] !== undefined && t['type'] !== 'custom')
        throw new TranslationError(
          `The tool "${String(t['type'])}" runs at Anthropic: it cannot be sent to ${TO}.`,
        );
      return {
        type: 'function',
        function: {
          name: t['name'],
          ...(t['description'] ? { description: t['description'] } : {}),
          parameters: t['input_schema'] ?? { type: 'object', properties: {} },
        },
      };
    });
    const { choice, parallel } = toolChoice(body['tool_choice']);
    if (choice !== undefined) out['tool_choice'] = choice;
    if (parallel !== undefined) out['parallel_tool_calls'] = parallel;
  }
  const user = (body['metadata'] as Obj | undefined)?.['user_id'];
  if (typeof user === 'string') out['user'] = user;
  const effort = reasoningEffort(body['thinking'], model);
  if (effort) out['reasoning_effort'] = effort;
  return out;
}

/** OpenAI's reasoning models by name: the o-series and gpt-5 and after. */
const REASONING_MODEL = /^(?:[\w.-]+\/)?(?:o\d|gpt-[5-9])/i;

/**
 * Extended thinking as OpenAI's reasoning effort, by its budget: under 2,048 tokens low, under
 * 8,192 medium, else high. Only OpenAI's reasoning models take one: thinking asked of another
 * model is refused, as is a kind of thinking other than `enabled`.
 */
function reasoningEffort(thinking: unknown, model: string): string | null {
  const t = thinking as Obj | null | undefined;
  const type = t?.['type'];
  if (type == null || type === 'disabled') return null;
  if (type !== 'enabled')
    throw new TranslationError(`thinking of type "${String(type)}" cannot be sent to ${TO}.`);
  if (!REASONING_MODEL.test(model))
    throw new TranslationError(
      `thinking cannot be sent to ${model}, which does not reason: send it to an OpenAI reasoning model (o3, gpt-5 ...) or a Claude model, or leave it out.`,
    );
  const budget = Number(t?.['budget_tokens']);
  if (!Number.isFinite(budget)) throw new InvalidRequest('thinking.budget_tokens must be a number.');
  return budget < 2048 ? 'low' : budget < 8192 ? 'medium' : 'high';
}

/** OpenAI finish reasons as Anthropic's stop reasons. */
export const STOP: Record<string, string> = {
  stop: 'end_turn',
  length: 'max_tokens',
  tool_calls: 'tool_use',
  function_call: 'tool_use',
  content_filter: 'refusal',
};

/** OpenAI usage in Anthropic's terms: input_tokens leaves out the cache reads it counts. */
export function anthropicUsage(u: Obj | null | undefined): Obj {
  const prompt = Number(u?.['prompt_tokens'] ?? 0);
  const cached = Number((u?.['prompt_tokens_details'] as Obj | undefined)?.['cached_tokens'] ?? 0);
  return {
    input_tokens: Math.max(0, prompt - cached),
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: cached,
    output_tokens: Number(u?.['completion_tokens'] ?? 0),
  };
}

/** A tool call's arguments as the object Anthropic's tool_use input is. A model that wrote
 * something else has it kept, not lost, under `arguments`. */
export function toolInput(args: unknown): unknown {
  if (typeof args !== 'string' || args.trim() === '') return {};
  try {
    const v = JSON.parse(args) as unknown;
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? v : { arguments: v };
  } catch {
    return { arguments: args };
  }
}

export const messageId = (id: unknown): string => `msg_${String(id ?? '').replace(/^chatcmpl-/, '')}`;

/** A chat completion as an Anthropic message. */
export function toAnthropicMessage(json: Obj): Obj {
  const choice = ((json['choices'] as Obj[] | undefined) ?? [])[0] ?? {};
  const message = (choice['message'] ?? {}) as Obj;
  const content: Obj[] = [];
  const text = typeof message['content'] === 'string' ? message['content'] : '';
  if (text !== '') content.push({ type: 'text', text });
  else if (typeof message['refusal'] === 'string') content.push({ type: 'text', text: message['refusal'] });
  for (const tc of (message['tool_calls'] as Obj[] | undefined) ?? []) {
    const fn = (tc['function'] ?? {}) as Obj;
    content.push({ type: 'tool_use', id: tc['id'], name: fn['name'], input: toolInput(fn['arguments']) });
  }
  return {
    id: messageId(json['id']),
    type: 'message',
    role: 'assistant',
    model: json['model'],
    content,
    stop_reason: STOP[String(choice['finish_reason'])] ?? 'end_turn',
    stop_sequence: null,
    usage: anthropicUsage(json['usage'] as Obj | undefined),
  };
}

/** Anthropic's error type for an HTTP status. */
export function anthropicErrorType(status: number): string {
  if (status === 400) return 'invalid_request_error';
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 413) return 'request_too_large';
  if (status === 429) return 'rate_limit_error';
  if (status === 529 || status === 503) return 'overloaded_error';
  return status < 500 ? 'invalid_request_error' : 'api_error';
}

/** An OpenAI error body in Anthropic's shape. */
export function toAnthropicError(body: unknown, status: number): Obj {
  const e = (body as Obj | null)?.['error'];
  const message = typeof e === 'string' ? e : (e as Obj | undefined)?.['message'];
  return {
    type: 'error',
    error: { type: anthropicErrorType(status), message: String(message ?? `upstream error ${status}`) },
  };
}
