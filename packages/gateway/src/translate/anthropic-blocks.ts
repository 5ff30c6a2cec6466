/** Pieces both OpenAI translations (chat and Responses) build Anthropic requests and read streams with. */
import { eventData, eventName } from '../sse.js';

type Obj = Record<string, unknown>;

/** A request that cannot be sent to an Anthropic model as it was asked (400 untranslatable_request). */
export class TranslationError extends Error {
  readonly code: string = 'untranslatable_request';
}

/** A request that is not well formed for its own API (400 invalid_request): found while translating
 * it, where the translation would otherwise trip over it. */
export class InvalidRequest extends TranslationError {
  override readonly code = 'invalid_request';
}

/** `v` as an object; an InvalidRequest naming it (`list[i]`) when it is something else. */
export function objectItem(v: unknown, list: string, i: number): Obj {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Obj;
  const was = v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;
  throw new InvalidRequest(`${list}[${i}] must be an object, not ${was}.`);
}

/** `v` as a list of objects (none when it is absent); an InvalidRequest naming the first that
 * is not one. */
export function objectList(v: unknown, list: string): Obj[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new InvalidRequest(`${list} must be an array.`);
  for (let i = 0; i < v.length; i++) objectItem(v[i], list, i);
  return v as Obj[];
}

/** An image URL (a data URL or a link) as an Anthropic image block. */
export function imageFromUrl(url: string): Obj {
  const m = /^data:([^;]+);base64,(.*)$/s.exec(url);
  return m
    ? { type: 'image', source: { type: 'base64', media_type: m[1], data: m[2] } }
    : { type: 'image', source: { type: 'url', url } };
}

/** The text of content blocks, joined. */
export function joinText(blocks: Obj[]): string {
  return blocks.map((b) => (b['type'] === 'text' ? String(b['text']) : '')).join('');
}

/** Tool-call arguments (a JSON string) as the object Anthropic wants; `what` names the field. */
export function parseArgs(args: unknown, what: string): unknown {
  if (typeof args !== 'string' || args === '') return {};
  try {
    return JSON.parse(args);
  } catch {
    throw new TranslationError(`${what} must be JSON.`);
  }
}

/** Anthropic wants user and assistant turns to alternate: consecutive same-role turns merge. */
export function pushTurn(messages: Obj[], role: 'user' | 'assistant', blocks: Obj[]): void {
  if (blocks.length === 0) return;
  const last = messages[messages.length - 1];
  if (last && last['role'] === role) (last['content'] as Obj[]).push(...blocks);
  else messages.push({ role, content: blocks });
}

/** Anthropic refuses a request with no turn; so does the gateway, before anything goes upstream. */
export function requireTurns(messages: Obj[]): void {
  if (messages.length === 0)
    throw new TranslationError('An Anthropic model needs at least one user or assistant turn with content.');
}

/** Anthropic's token counts as OpenAI counts them: the prompt includes cache reads and writes. */
export function anthropicTokens(u: Obj | null | undefined): {
  prompt: number;
  cached: number;
  output: number;
} {
  const read = Number(u?.['cache_read_input_tokens'] ?? 0);
  const prompt = Number(u?.['input_tokens'] ?? 0) + read + Number(u?.['cache_creation_input_tokens'] ?? 0);
  return { prompt, cached: read, output: Number(u?.['output_tokens'] ?? 0) };
}

/** An Anthropic stream event's name and parsed data; null for pings and what cannot be read. */
export function readEvent(ev: string): { name: string; d: Obj } | null {
  const name = eventName(ev);
  const raw = eventData(ev);
  if (!name || raw === null || name === 'ping') return null;
  try {
    return { name, d: JSON.parse(raw) as Obj };
  } catch {
    return null;
  }
}

/** A structured answer's tool: the name it is given when the request's schema names none. */
const ANSWER_TOOL = 'json_answer';
const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

export interface AnswerTool {
  name: string;
  description: string;
  input_schema: Record<string, unknown>;
}

/** The schema of a json_object answer: any object. */
const ANY_OBJECT: Readonly<Record<string, unknown>> = Object.freeze({ type: 'object' });

/**
 * The tool through which an Anthropic model gives a structured answer: the model is made to call
 * it, and its input is the answer, which the client gets as the text of the message. `format` is
 * the request's (`{type: "json_schema", name, schema, description}`, or json_object for any
 * object); null for one that asks for text. `at` names where the schema is, for the error of one
 * that is not an object's.
 */
export function answerToolOf(
  format: Record<string, unknown> | null | undefined,
  at: string,
): AnswerTool | null {
  const type = format?.['type'];
  if (type === 'json_object') {
    return {
      name: ANSWER_TOOL,
      description: 'Give the answer as a JSON object.',
      input_schema: ANY_OBJECT,
    };
  }
  if (type !== 'json_schema') return null;
  const schema = format?.['schema'];
  if (
    typeof schema !== 'object' ||
    schema === null ||
    (schema as Record<string, unknown>)['type'] !== 'object'
  )
    throw new TranslationError(
      `${at}.schema must be an object schema ("type": "object") to be sent to an Anthropic model.`,
    );
  const named = format?.['name'];
  const name = typeof named === 'string' && TOOL_NAME.test(named) ? named : ANSWER_TOOL;
  const description = typeof format?.['description'] === 'string' ? `${format['description']} ` : '';
  return {
    name,
    description: `${description}Give the answer as this tool's input.`,
    input_schema: schema as Record<string, unknown>,
  };
}

/**
 * Makes the model give its answer through `answer`'s tool (answerToolOf), set on `out`, the
 * Anthropic request made so far. Alone, the model must call it. Beside tools of the request's own,
 * the model must call one of them all (`any`): a call of the request's tools is a turn of the tool
 * loop, a call of the answer's tool its answer. A tool choice the request made decides first:
 * `none` leaves the answer alone to call; `required` or a named tool asks for a tool call this
 * turn, so the answer's tool is not offered. `field` names where the request asked for it.
 */
export function applyAnswerTool(
  answer: AnswerTool | null,
  out: Record<string, unknown>,
  field: string,
): void {
  if (!answer) return;
  const tools = out['tools'] as { name?: unknown }[] | undefined;
  if (!tools) {
    out['tools'] = [answer];
    out['tool_choice'] = { type: 'tool', name: answer.name };
    return;
  }
  if (tools.some((t) => t.name === answer.name))
    throw new TranslationError(
      `${field} is named ${answer.name}, as a tool of the request is: give the schema another name to send both to an Anthropic model.`,
    );
  const choice = out['tool_choice'] as Record<string, unknown> | undefined;
  const type = choice?.['type'];
  if (type === 'any' || type === 'tool') return;
  out['tools'] = [...tools, answer];
  out['tool_choice'] = type === 'none' ? { type: 'tool', name: answer.name } : { ...choice, type: 'any' };
}

/** Claude models that take a structured answer's schema as it is (`output_config.format`,
 * Anthropic's structured outputs): Opus 4.1, and every Claude of version 4.5 or later. */
export function takesOutputFormat(model: string): boolean {
  const m = /(?:^|[/.])claude-([a-z]+)-(\d+)(?:[-.](\d)(?!\d))?/.exec(model);
  if (!m) return false;
  const version = Number(m[2]) + (m[3] === undefined ? 0 : Number(m[3]) / 10);
  return version >= 4.5 || (m[1] === 'opus' && version >= 4.1);
}

/**
 * Sets a structured answer on `out`, the Anthropic request made so far: through the answer's tool
 * (applyAnswerTool), except on a call that thinks (`effort`, OpenAI's reasoning effort), which
 * cannot go with a tool the model is made to call. There, on a model that takes it, the schema goes
 * as it is (`output_config.format`), the model may think and call the request's tools first, and
 * its answer is the message's text. On an older model, that call is refused (applyReasoning), and
 * so is a json_object answer, which has no schema of its own to send.
 */
export function applyStructuredAnswer(
  answer: AnswerTool | null,
  out: Record<string, unknown>,
  field: string,
  effort: unknown,
): void {
  const thinks = effort !== undefined && effort !== null && effort !== 'none';
  if (answer && thinks && answer.input_schema !== ANY_OBJECT && takesOutputFormat(String(out['model']))) {
    out['output_config'] = { format: { type: 'json_schema', schema: answer.input_schema } };
    return;
  }
  applyAnswerTool(answer, out, field);
}

/** The call of the structured answer's tool (named `answer`) among a message's blocks, if any. */
export function answerCall(
  blocks: Record<string, unknown>[],
  answer: string | null,
): Record<string, unknown> | undefined {
  return answer === null ? undefined : blocks.find((b) => b['type'] === 'tool_use' && b['name'] === answer);
}

/** A message's text: the structured answer's call's input (answerCall), when it was given, else
 * the text blocks joined. */
export function answerText(
  blocks: Record<string, unknown>[],
  given: Record<string, unknown> | undefined,
): string {
  return given ? JSON.stringify(given['input'] ?? {}) : joinText(blocks);
}

/** A message's thinking blocks, as Anthropic gives them and wants them back: `thinking` with its
 * text and signature, `redacted_thinking` with its data; other blocks are left out. */
export function thinkingOf(blocks: Record<string, unknown>[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const b of blocks) {
    if (b['type'] === 'thinking')
      out.push({ type: 'thinking', thinking: b['thinking'], signature: b['signature'] });
    else if (b['type'] === 'redacted_thinking') out.push({ type: 'redacted_thinking', data: b['data'] });
  }
  return out;
}

/**
 * The thinking blocks a client sends back on an assistant message (`thinking_blocks`, as the
 * gateway gave them: thinkingOf), checked: Anthropic wants them as they were, signature and all.
 */
export function thinkingBlocksIn(v: unknown, at: string): Record<string, unknown>[] {
  if (v === undefined || v === null) return [];
  return objectList(v, at).map((b, i) => {
    if (b['type'] === 'thinking' && typeof b['thinking'] === 'string' && typeof b['signature'] === 'string')
      return { type: 'thinking', thinking: b['thinking'], signature: b['signature'] };
    if (b['type'] === 'redacted_thinking' && typeof b['data'] === 'string')
      return { type: 'redacted_thinking', data: b['data'] };
    throw new TranslationError(
      `${at}[${i}] must be a thinking block as the gateway gave it: {type: "thinking", thinking, signature} or {type: "redacted_thinking", data}.`,
    );
  });
}

/** How a Responses reasoning item carries a Claude thinking block's signature (or a redacted
 * block's data) in its `encrypted_content`, so that the block can be rebuilt when it comes back. */
const SIGNED = 'anthropic-thinking:';
const REDACTED = 'anthropic-redacted:';

/** A thinking block as a Responses reasoning item: its text as the summary, its signature (or a
 * redacted block's data) as the encrypted content. */
export function reasoningItem(block: Record<string, unknown>, id: string): Record<string, unknown> {
  return block['type'] === 'redacted_thinking'
    ? { id, type: 'reasoning', summary: [], encrypted_content: `${REDACTED}${String(block['data'] ?? '')}` }
    : {
        id,
        type: 'reasoning',
        summary: [{ type: 'summary_text', text: String(block['thinking'] ?? '') }],
        encrypted_content: `${SIGNED}${String(block['signature'] ?? '')}`,
      };
}

/** The thinking block a reasoning item the gateway gave (reasoningItem) stands for; null for any
 * other (another model's reasoning, which Anthropic has no place for). */
export function thinkingFromReasoning(item: Record<string, unknown>): Record<string, unknown> | null {
  const sealed = item['encrypted_content'];
  if (typeof sealed !== 'string') return null;
  if (sealed.startsWith(REDACTED)) return { type: 'redacted_thinking', data: sealed.slice(REDACTED.length) };
  if (!sealed.startsWith(SIGNED)) return null;
  const summary = Array.isArray(item['summary']) ? (item['summary'] as Record<string, unknown>[]) : [];
  const thinking = summary.map((s) => (typeof s?.['text'] === 'string' ? s['text'] : '')).join('');
  return { type: 'thinking', thinking, signature: sealed.slice(SIGNED.length) };
}

const isThinking = (b: { type?: unknown } | undefined) =>
  b?.type === 'thinking' || b?.type === 'redacted_thinking';

/** Anthropic's thinking budget for each of OpenAI's reasoning efforts. */
const THINKING_BUDGET: Record<string, number> = { minimal: 1024, low: 1024, medium: 2048, high: 4096 };
/** The least thinking budget Anthropic takes. */
const MIN_THINKING = 1024;

/**
 * Extended thinking for an OpenAI reasoning effort (`reasoning_effort`, or `reasoning.effort`),
 * set on `out`, the Anthropic request made so far: a budget by the effort, within its `max_tokens`
 * (an OpenAI limit counts the reasoning too). What thinking cannot go with is refused: a
 * temperature other than 1, a top_p under 0.95, a tool the model is made to call. A call that
 * carries on from the model's tool calls thinks only if that turn's thinking blocks came back
 * (which Anthropic wants): an OpenAI client sends them only if it keeps the message's
 * `thinking_blocks`. Without thinking on the call, the thinking blocks sent back on earlier turns
 * are left out.
 */
export function applyReasoning(effort: unknown, out: Record<string, unknown>, field: string): void {
  enableThinking(effort, out, field);
  if (out['thinking']) return;
  for (const m of out['messages'] as { content: { type?: unknown }[] }[])
    if (m.content.some(isThinking)) m.content = m.content.filter((b) => !isThinking(b));
}

function enableThinking(effort: unknown, out: Record<string, unknown>, field: string): void {
  if (effort === undefined || effort === null || effort === 'none') return;
  const budget = typeof effort === 'string' ? THINKING_BUDGET[effort] : undefined;
  if (budget === undefined)
    throw new InvalidRequest(`${field} must be one of none, ${Object.keys(THINKING_BUDGET).join(', ')}.`);
  const messages = out['messages'] as { role: string; content: { type?: string }[] }[];
  const last = messages[messages.length - 1];
  // A turn that carries on from the model's tool calls thinks only if that turn's thinking came
  // back (thinking_blocks): Anthropic wants it, and without it the call goes without thinking.
  if (
    last?.role === 'user' &&
    last.content.some((b) => b.type === 'tool_result') &&
    !isThinking(messages[messages.length - 2]?.content[0])
  )
    return;
  const temperature = out['temperature'];
  if (temperature !== undefined && temperature !== 1)
    throw new TranslationError(
      `temperature cannot be set with ${field} on an Anthropic model: leave it out, or 1.`,
    );
  const topP = out['top_p'];
  if (typeof topP === 'number' && topP < 0.95)
    throw new TranslationError(`top_p under 0.95 cannot be set with ${field} on an Anthropic model.`);
  const choice = (out['tool_choice'] as { type?: string } | undefined)?.type;
  if (choice === 'any' || choice === 'tool')
    throw new TranslationError(
      `${field} cannot go with a tool the model must call (tool_choice, or a structured answer) on an Anthropic model.`,
    );
  const max = Number(out['max_tokens']);
  const thinking = Math.min(budget, max - 1);
  if (!(thinking >= MIN_THINKING))
    throw new TranslationError(
      `${field} ${effort} needs an output limit above ${MIN_THINKING} tokens on an Anthropic model, which thinks within it; the request allows ${max}.`,
    );
  out['thinking'] = { type: 'enabled', budget_tokens: thinking };
}
