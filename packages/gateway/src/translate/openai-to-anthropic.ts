/**
 * OpenAI chat completions -> Anthropic messages, so one OpenAI client reaches Claude. The call is
 * metered from Anthropic's own usage object; the client sees OpenAI's shapes throughout.
 */
import {
  type AnswerTool,
  answerCall,
  answerText,
  answerToolOf,
  anthropicTokens,
  applyReasoning,
  applyStructuredAnswer,
  InvalidRequest,
  imageFromUrl,
  joinText,
  objectItem,
  objectList,
  parseArgs,
  pushTurn as push,
  requireTurns,
  TranslationError,
  thinkingBlocksIn,
  thinkingOf,
} from './anthropic-blocks.js';

export { InvalidRequest, TranslationError };

type Obj = Record<string, unknown>;

function imageBlock(part: Obj): Obj {
  return imageFromUrl(String((part['image_url'] as Obj | undefined)?.['url'] ?? ''));
}

/** A message's content as Anthropic blocks; `at` names it, for errors. */
function contentBlocks(content: unknown, at: string): Obj[] {
  // Anthropic refuses a text block of only white space.
  if (typeof content === 'string') return content.trim() === '' ? [] : [{ type: 'text', text: content }];
  if (!Array.isArray(content)) return [];
  const out: Obj[] = [];
  for (let j = 0; j < content.length; j++) {
    const part = objectItem(content[j], at, j);
    const type = part['type'];
    if (type === 'text') {
      const text = String(part['text'] ?? '');
      if (text.trim() !== '') out.push({ type: 'text', text });
    } else if (type === 'image_url') out.push(imageBlock(part));
    else if (type === 'refusal') continue;
    else throw new TranslationError(`content part "${String(type)}" cannot be sent to an Anthropic model.`);
  }
  return out;
}

function textOf(content: unknown, at: string): string {
  if (typeof content === 'string') return content;
  return joinText(contentBlocks(content, at));
}

function toolChoice(choice: unknown, parallel: unknown): Obj | undefined {
  let out: Obj | undefined;
  if (choice === undefined || choice === null || choice === 'auto')
    out = parallel === false ? { type: 'auto' } : choice === 'auto' ? { type: 'auto' } : undefined;
  else if (choice === 'none') out = { type: 'none' };
  else if (choice === 'required') out = { type: 'any' };
  else {
    const name = ((choice as Obj)['function'] as Obj | undefined)?.['name'];
    if (typeof name !== 'string')
      throw new TranslationError('tool_choice cannot be sent to an Anthropic model.');
    out = { type: 'tool', name };
  }
  if (out && parallel === false && out['type'] !== 'none') out['disable_parallel_tool_use'] = true;
  return out;
}

/** Request fields an Anthropic model has no counterpart for, with the values that ask nothing of
 * it: any other value is refused, not dropped, so that a client never gets less than it asked for
 * without knowing. */
function refuseUnmapped(body: Obj): void {
  const n = body['n'];
  if (n != null && n !== 1) throw new TranslationError('n above 1 cannot be sent to an Anthropic model.');
  const format = (body['response_format'] as Obj | null | undefined)?.['type'];
  if (format != null && format !== 'text' && format !== 'json_schema' && format !== 'json_object')
    throw new TranslationError(`response_format "${String(format)}" cannot be sent to an Anthropic model.`);
  if (body['logprobs'] === true || (body['top_logprobs'] != null && body['top_logprobs'] !== 0))
    throw new TranslationError('logprobs cannot be sent to an Anthropic model.');
  for (const f of ['audio', 'prediction'] as const)
    if (body[f] != null) throw new TranslationError(`${f} cannot be sent to an Anthropic model.`);
  const modalities = body['modalities'];
  if (Array.isArray(modalities) && modalities.some((m) => m !== 'text'))
    throw new TranslationError('modalities other than text cannot be sent to an Anthropic model.');
}

/** The tool through which an Anthropic model gives a chat call's structured answer
 * (`response_format` json_schema, or json_object): answerToolOf. */
export function answerTool(body: Obj): AnswerTool | null {
  const format = body['response_format'] as Obj | null | undefined;
  if (!format) return null;
  return answerToolOf(
    { ...((format['json_schema'] as Obj | undefined) ?? {}), type: format['type'] },
    'response_format.json_schema',
  );
}

export function toAnthropicRequest(body: Obj, model: string, defaultMaxTokens: number): Obj {
  const messages: Obj[] = [];
  const system: string[] = [];
  const list = body['messages'];
  if (!Array.isArray(list)) throw new TranslationError('messages must be an array.');
  refuseUnmapped(body);
  for (let i = 0; i < list.length; i++) {
    const m = objectItem(list[i], 'messages', i);
    const role = m['role'];
    const at = `messages[${i}].content`;
    if (role === 'system' || role === 'developer') system.push(textOf(m['content'], at));
    else if (role === 'user') {
      const blocks = contentBlocks(m['content'], at);
      // Left out, an empty last turn would leave the assistant's turn last, which Anthropic reads
      // as the start of its answer to go on with.
      if (blocks.length === 0 && m === list[list.length - 1])
        throw new TranslationError(
          'The last user message is empty: an Anthropic model needs it to say something.',
        );
      push(messages, 'user', blocks);
    } else if (role === 'assistant') {
      // The thinking the gateway gave with this turn, sent back: it goes first, as it came.
      const blocks = [
        ...thinkingBlocksIn(m['thinking_blocks'], `messages[${i}].thinking_blocks`),
        ...contentBlocks(m['content'], at),
      ];
      for (const tc of objectList(m['tool_calls'], `messages[${i}].tool_calls`)) {
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
        { type: 'tool_result', tool_use_id: m['tool_call_id'], content: textOf(m['content'], at) },
      ]);
    } else {
      throw new TranslationError(`messages[].role "${String(role)}" cannot be sent to an Anthropic model.`);
    }
  }
  requireTurns(messages);
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
    out['tools'] = objectList(tools, 'tools').map((t) => {
      if (t['type'] !== 'function')
        throw new TranslationError(
          `tools[].type "${String(t['type'])}" cannot be sent to an Anthropic model.`,
        );
      const fn = (t['function'] ?? {}) as Obj;
      return {
        name: fn['name'],
        ...(fn['description'] ? { description: fn['description'] } : {}),
        input_schema: fn['parameters'] ?? { type: 'object', properties: {} },
      };
    });
  }
  const choice = toolChoice(body['tool_choice'], body['parallel_tool_calls']);
  if (choice && out['tools']) out['tool_choice'] = choice;
  applyStructuredAnswer(answerTool(body), out, 'response_format', body['reasoning_effort']);
  if (typeof body['user'] === 'string') out['metadata'] = { user_id: body['user'] };
  applyReasoning(body['reasoning_effort'], out, 'reasoning_effort');
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

/** `answer`: the name of the structured answer's tool (answerTool), whose input is then the
 * message's content, and the answer is finished as a text answer is. */
export function toOpenAiResponse(msg: Obj, created: number, answer: string | null = null): Obj {
  const blocks = (msg['content'] as Obj[] | undefined) ?? [];
  const given = answerCall(blocks, answer);
  const text = answerText(blocks, given);
  // The calls of the request's own tools, beside the answer or without it.
  const toolCalls = blocks
    .filter((b) => b['type'] === 'tool_use' && b !== given)
    .map((b) => ({
      id: b['id'],
      type: 'function',
      function: { name: b['name'], arguments: JSON.stringify(b['input'] ?? {}) },
    }));
  const message: Obj = { role: 'assistant', content: text === '' && toolCalls.length > 0 ? null : text };
  if (toolCalls.length > 0) message['tool_calls'] = toolCalls;
  // The thinking, readable (`reasoning_content`) and as the blocks Anthropic wants back in a tool
  // loop (`thinking_blocks`): a client that sends the message back as it came keeps thinking.
  const thinking = thinkingOf(blocks);
  if (thinking.length > 0) {
    message['reasoning_content'] = thinking.map((b) => b['thinking'] ?? '').join('');
    message['thinking_blocks'] = thinking;
  }
  // The answer's tool call is the answer: the message is finished as a text answer is.
  const reason = String(msg['stop_reason']);
  const finish =
    given && toolCalls.length === 0 && reason === 'tool_use' ? 'stop' : (FINISH[reason] ?? 'stop');
  return chatCompletion(msg, created, message, finish);
}

function chatCompletion(msg: Obj, created: number, message: Obj, finish: string): Obj {
  return {
    id: `chatcmpl-${String(msg['id'] ?? '').replace(/^msg_/, '')}`,
    object: 'chat.completion',
    created,
    model: msg['model'],
    choices: [{ index: 0, message, finish_reason: finish, logprobs: null }],
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
