/**
 * OpenAI chat completions -> Anthropic messages, so one OpenAI client reaches Claude. The call is
 * metered from Anthropic's own usage object; the client sees OpenAI's shapes throughout.
 */
import {
  anthropicTokens,
  imageFromUrl,
  joinText,
  parseArgs,
  pushTurn as push,
  TranslationError,
} from './anthropic-blocks.js';

export { TranslationError };

type Obj = Record<string, unknown>;

function imageBlock(part: Obj): Obj {
  return imageFromUrl(String((part['image_url'] as Obj | undefined)?.['url'] ?? ''));
}

function contentBlocks(content: unknown): Obj[] {
  if (typeof content === 'string') return content === '' ? [] : [{ type: 'text', text: content }];
  if (!Array.isArray(content)) return [];
  const out: Obj[] = [];
  for (const part of content as Obj[]) {
    if (part?.['type'] === 'text') out.push({ type: 'text', text: String(part['text'] ?? '') });
    else if (part?.['type'] === 'image_url') out.push(imageBlock(part));
  }
  return out;
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  return joinText(contentBlocks(content));
}

function toolChoice(choice: unknown): Obj | undefined {
  if (choice === undefined || choice === null) return undefined;
  if (choice === 'auto') return { type: 'auto' };
  if (choice === 'none') return { type: 'none' };
  if (choice === 'required') return { type: 'any' };
  const name = ((choice as Obj)['function'] as Obj | undefined)?.['name'];
  if (typeof name === 'string') return { type: 'tool', name };
  throw new TranslationError('tool_choice is not valid.');
}

export function toAnthropicRequest(body: Obj, model: string, defaultMaxTokens: number): Obj {
  const messages: Obj[] = [];
  const system: string[] = [];
  const list = body['messages'];
  if (!Array.isArray(list)) throw new TranslationError('messages must be an array.');
  for (const m of list as Obj[]) {
    const role = m?.['role'];
    if (role === 'system' || role === 'developer') system.push(textOf(m['content']));
    else if (role === 'user') push(messages, 'user', contentBlocks(m['content']));
    else if (role === 'assistant') {
      const blocks = contentBlocks(m['content']);
      for (const tc of (m['tool_calls'] as Obj[] | undefined) ?? []) {
        const fn = tc['function'] as Obj | undefined;
        blocks.push({
          type: 'tool_use',
          id: tc['id'],
          name: fn?.['name'],
          input: parseArgs(fn?.['arguments'], 'tool_calls[].function.arguments'),
        });
      }
      push(messages, 'assistant', blocks);
    } else if (role === 'tool') {
      push(messages, 'user', [
        { type: 'tool_result', tool_use_id: m['tool_call_id'], content: textOf(m['content']) },
      ]);
    } else {
      throw new TranslationError(`messages[].role "${String(role)}" cannot be sent to an Anthropic model.`);
    }
  }
  const out: Obj = {
    model,
    messages,
    max_tokens: body['max_completion_tokens'] ?? body['max_tokens'] ?? defaultMaxTokens,
  };
  if (system.length > 0) out['system'] = system.join('\n\n');
  for (const f of ['temperature', 'top_p', 'stream'] as const) if (body[f] !== undefined) out[f] = body[f];
  const stop = body['stop'];
  if (typeof stop === 'string') out['stop_sequences'] = [stop];
  else if (Array.isArray(stop)) out['stop_sequences'] = stop;
  const tools = body['tools'];
  if (Array.isArray(tools)) {
    out['tools'] = (tools as Obj[]).map((t) => {
      const fn = (t['function'] ?? {}) as Obj;
      return {
        name: fn['name'],
        ...(fn['description'] ? { description: fn['description'] } : {}),
        input_schema: fn['parameters'] ?? { type: 'object', properties: {} },
      };
    });
  }
  const choice = toolChoice(body['tool_choice']);
  if (choice) out['tool_choice'] = choice;
  if (typeof body['user'] === 'string') out['metadata'] = { user_id: body['user'] };
  return out;
}

export const FINISH: Record<string, string> = {
  end_turn: 'stop',
  stop_sequence: 'stop',
  max_tokens: 'length',
  tool_use: 'tool_calls',
  pause_turn: 'stop',
  refusal: 'content_filter',
};

/** Anthropic usage in OpenAI's terms: prompt tokens include cache reads and writes. */
export function openAiUsage(u: Obj | null | undefined): Obj {
  const { prompt, cached, output } = anthropicTokens(u);
  return {
    prompt_tokens: prompt,
    completion_tokens: output,
    total_tokens: prompt + output,
    prompt_tokens_details: { cached_tokens: cached },
  };
}

export function toOpenAiResponse(msg: Obj, created: number): Obj {
  const blocks = (msg['content'] as Obj[] | undefined) ?? [];
  const text = blocks
    .filter((b) => b['type'] === 'text')
    .map((b) => String(b['text']))
    .join('');
  const toolCalls = blocks
    .filter((b) => b['type'] === 'tool_use')
    .map((b) => ({
      id: b['id'],
      type: 'function',
      function: { name: b['name'], arguments: JSON.stringify(b['input'] ?? {}) },
    }));
  const message: Obj = { role: 'assistant', content: text === '' && toolCalls.length > 0 ? null : text };
  if (toolCalls.length > 0) message['tool_calls'] = toolCalls;
  return {
    id: `chatcmpl-${String(msg['id'] ?? '').replace(/^msg_/, '')}`,
    object: 'chat.completion',
    created,
    model: msg['model'],
    choices: [
      { index: 0, message, finish_reason: FINISH[String(msg['stop_reason'])] ?? 'stop', logprobs: null },
    ],
    usage: openAiUsage(msg['usage'] as Obj | undefined),
  };
}

/** An Anthropic error body in OpenAI's shape. */
export function toOpenAiError(body: unknown, status: number): Obj {
  const e = ((body as Obj | null)?.['error'] ?? {}) as Obj;
  return {
    error: {
      message: String(e['message'] ?? `upstream error ${status}`),
      type: String(e['type'] ?? 'api_error'),
      param: null,
      code: null,
    },
  };
}
