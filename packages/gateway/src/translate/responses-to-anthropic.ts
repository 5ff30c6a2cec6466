/**
 * OpenAI Responses -> Anthropic messages, so the Responses API of one OpenAI client reaches Claude
 * too. Input items (messages, function calls and their outputs), instructions, function tools and
 * tool_choice are mapped; the answer comes back as a Response object. The gateway keeps no
 * conversation state, so `previous_response_id` cannot be translated and is refused.
 */
import {
  type AnswerTool,
  answerCall,
  answerText,
  answerToolOf,
  anthropicTokens,
  applyReasoning,
  applyStructuredAnswer,
  imageFromUrl,
  joinText,
  objectItem,
  objectList,
  parseArgs,
  pushTurn as push,
  reasoningItem,
  requireTurns,
  TranslationError,
  thinkingFromReasoning,
  thinkingOf,
} from './anthropic-blocks.js';

type Obj = Record<string, unknown>;

function imageBlock(part: Obj): Obj {
  const url = part['image_url'];
  if (typeof url !== 'string')
    throw new TranslationError('input_image needs an image_url to reach an Anthropic model.');
  return imageFromUrl(url);
}

/** An item's content as Anthropic blocks; `at` names it, for errors. */
function contentBlocks(content: unknown, at: string): Obj[] {
  if (typeof content === 'string') return content === '' ? [] : [{ type: 'text', text: content }];
  if (!Array.isArray(content)) return [];
  const out: Obj[] = [];
  for (let j = 0; j < content.length; j++) {
    const part = objectItem(content[j], at, j);
    const type = part['type'];
    if (type === 'input_text' || type === 'output_text' || type === 'text')
      out.push({ type: 'text', text: String(part['text'] ?? '') });
    else if (type === 'input_image') out.push(imageBlock(part));
    else if (type === 'refusal') continue;
    else throw new TranslationError(`content part "${String(type)}" cannot be sent to an Anthropic model.`);
  }
  return out;
}

function textOf(content: unknown, at: string): string {
  return joinText(contentBlocks(content, at));
}

function toolChoice(choice: unknown, parallel: unknown): Obj | undefined {
  let out: Obj | undefined;
  if (choice === undefined || choice === null || choice === 'auto')
    out = parallel === false ? { type: 'auto' } : undefined;
  else if (choice === 'none') out = { type: 'none' };
  else if (choice === 'required') out = { type: 'any' };
  else if ((choice as Obj)['type'] === 'function' && typeof (choice as Obj)['name'] === 'string')
    out = { type: 'tool', name: (choice as Obj)['name'] };
  else throw new TranslationError('tool_choice cannot be sent to an Anthropic model.');
  if (out && parallel === false && out['type'] !== 'none') out['disable_parallel_tool_use'] = true;
  return out;
}

function tools(list: unknown): Obj[] | undefined {
  if (!Array.isArray(list)) return undefined;
  return objectList(list, 'tools').map((t) => {
    if (t['type'] !== 'function')
      throw new TranslationError(`tools[].type "${String(t['type'])}" cannot be sent to an Anthropic model.`);
    return {
      name: t['name'],
      ...(t['description'] ? { description: t['description'] } : {}),
      input_schema: t['parameters'] ?? { type: 'object', properties: {} },
    };
  });
}

/** The tool through which an Anthropic model gives a Response's structured answer (`text.format`
 * json_schema, or json_object): answerToolOf. Its input is the text of the answer's message. */
export function responsesAnswerTool(request: Obj): AnswerTool | null {
  return answerToolOf((request['text'] as Obj | undefined)?.['format'] as Obj | undefined, 'text.format');
}

export function responsesToAnthropicRequest(body: Obj, model: string, defaultMaxTokens: number): Obj {
  if (body['previous_response_id'] != null || body['conversation'] != null)
    throw new TranslationError(
      'previous_response_id and conversation need stored state: send the whole input to reach an Anthropic model.',
    );
  const format = (body['text'] as Obj | undefined)?.['format'] as Obj | undefined;
  if (format && !['text', 'json_schema', 'json_object'].includes(String(format['type'])))
    throw new TranslationError(
      `text.format "${String(format['type'])}" cannot be sent to an Anthropic model.`,
    );
  const system: string[] = [];
  if (typeof body['instructions'] === 'string' && body['instructions'] !== '')
    system.push(body['instructions']);
  const messages: Obj[] = [];
  const input = body['input'];
  if (typeof input === 'string') push(messages, 'user', contentBlocks(input, 'input'));
  else if (Array.isArray(input)) {
    for (let i = 0; i < input.length; i++) {
      const item = objectItem(input[i], 'input', i);
      const type = item['type'] ?? 'message';
      if (type === 'message') {
        const role = item['role'];
        const at = `input[${i}].content`;
        if (role === 'system' || role === 'developer') system.push(textOf(item['content'], at));
        else if (role === 'user' || role === 'assistant')
          push(messages, role, contentBlocks(item['content'], at));
        else
          throw new TranslationError(`input[].role "${String(role)}" cannot be sent to an Anthropic model.`);
      } else if (type === 'function_call') {
        push(messages, 'assistant', [
          {
            type: 'tool_use',
            id: item['call_id'],
            name: item['name'],
            input: parseArgs(item['arguments'], 'function_call arguments'),
          },
        ]);
      } else if (type === 'function_call_output') {
        const output = item['output'];
        push(messages, 'user', [
          {
            type: 'tool_result',
            tool_use_id: item['call_id'],
            content: typeof output === 'string' ? output : textOf(output, `input[${i}].output`),
          },
        ]);
      } else if (type === 'reasoning') {
        // Claude's own thinking, as the gateway gave it, goes back first in its turn; another
        // model's reasoning has no place at Anthropic.
        const thought = thinkingFromReasoning(item);
        if (thought) push(messages, 'assistant', [thought]);
      } else {
        throw new TranslationError(`input item "${String(type)}" cannot be sent to an Anthropic model.`);
      }
    }
  } else {
    throw new TranslationError('input must be a string or an array of items.');
  }
  requireTurns(messages);
  const out: Obj = {
    model,
    messages,
    max_tokens: body['max_output_tokens'] ?? defaultMaxTokens,
  };
  if (system.length > 0) out['system'] = system.join('\n\n');
  for (const f of ['temperature', 'top_p', 'stream'] as const) if (body[f] != null) out[f] = body[f];
  const t = tools(body['tools']);
  if (t) out['tools'] = t;
  const choice = toolChoice(body['tool_choice'], body['parallel_tool_calls']);
  if (choice && t) out['tool_choice'] = choice;
  applyStructuredAnswer(
    responsesAnswerTool(body),
    out,
    'text.format',
    (body['reasoning'] as Obj | null | undefined)?.['effort'],
  );
  const user = body['safety_identifier'] ?? body['user'];
  if (typeof user === 'string') out['metadata'] = { user_id: user };
  applyReasoning((body['reasoning'] as Obj | null | undefined)?.['effort'], out, 'reasoning.effort');
  return out;
}

/** Anthropic stop reasons that end a Response as `incomplete`, with the reason OpenAI gives. */
const FINISH_INCOMPLETE: Record<string, string> = {
  max_tokens: 'max_output_tokens',
  refusal: 'content_filter',
};

/** Anthropic usage in the Responses API's terms. */
function responsesUsage(u: Obj): Obj {
  const { prompt, cached, output } = anthropicTokens(u);
  return {
    input_tokens: prompt,
    input_tokens_details: { cached_tokens: cached },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: prompt + output,
  };
}

/** The output items of a whole Anthropic message. A call of the structured answer's tool
 * (`answer`) is the answer's message, its input the text. */
function outputItems(msg: Obj, base: string, answer: string | null): Obj[] {
  const blocks = (msg['content'] as Obj[] | undefined) ?? [];
  // The thinking first, as reasoning items a client sends back to keep Claude thinking.
  const out: Obj[] = thinkingOf(blocks).map((b, i) => reasoningItem(b, `rs_${base}_${i}`));
  const given = answerCall(blocks, answer);
  const text = answerText(blocks, given);
  if (text !== '')
    out.push({
      id: `msg_${base}`,
      type: 'message',
      status: 'completed',
      role: 'assistant',
      content: [{ type: 'output_text', text, annotations: [], logprobs: [] }],
    });
  for (const b of blocks) {
    if (b['type'] !== 'tool_use' || b === given) continue;
    out.push({
      id: `fc_${String(b['id'] ?? '').replace(/^toolu_/, '')}`,
      type: 'function_call',
      status: 'completed',
      call_id: b['id'],
      name: b['name'],
      arguments: JSON.stringify(b['input'] ?? {}),
    });
  }
  return out;
}

/** The Response object for a request and what answered it (also the stream's final snapshot). */
export function responseObject(
  request: Obj,
  fields: {
    id: string;
    model: string;
    created: number;
    output: Obj[];
    stopReason: unknown;
    usage: Obj | null;
  },
): Obj {
  const incomplete = FINISH_INCOMPLETE[String(fields.stopReason)];
  return {
    id: fields.id,
    object: 'response',
    created_at: fields.created,
    status: fields.stopReason === null ? 'in_progress' : incomplete ? 'incomplete' : 'completed',
    error: null,
    incomplete_details: incomplete ? { reason: incomplete } : null,
    instructions: request['instructions'] ?? null,
    max_output_tokens: request['max_output_tokens'] ?? null,
    model: fields.model,
    output: fields.output,
    parallel_tool_calls: request['parallel_tool_calls'] ?? true,
    temperature: request['temperature'] ?? null,
    tool_choice: request['tool_choice'] ?? 'auto',
    tools: request['tools'] ?? [],
    top_p: request['top_p'] ?? null,
    metadata: request['metadata'] ?? {},
    usage: fields.usage === null ? null : responsesUsage(fields.usage),
  };
}

export function toResponsesResponse(msg: Obj, request: Obj, created: number): Obj {
  const base = String(msg['id'] ?? '').replace(/^msg_/, '');
  return responseObject(request, {
    id: `resp_${base}`,
    model: String(msg['model'] ?? ''),
    created,
    output: outputItems(msg, base, responsesAnswerTool(request)?.name ?? null),
    stopReason: msg['stop_reason'] ?? 'end_turn',
    usage: (msg['usage'] as Obj | undefined) ?? {},
  });
}
