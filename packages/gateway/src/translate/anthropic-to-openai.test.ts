import { describe, expect, it } from 'vitest';
import { SseSplitter } from '../sse.js';
import { chatRecordings, SKIP_WITHOUT_RECORDINGS } from '../testing/recorded.js';
import { toAnthropicError, toAnthropicMessage, toChatRequest } from './anthropic-to-openai.js';
import { OpenAiToAnthropicStream } from './openai-to-anthropic-stream.js';

type Obj = Record<string, unknown>;

/** The events of an Anthropic stream as its client reads them: name and data. */
function events(text: string): { name: string; data: Obj }[] {
  return new SseSplitter().push(text).map((ev) => {
    const name = /^event: (.*)$/m.exec(ev)![1]!;
    const data = JSON.parse(/^data: (.*)$/m.exec(ev)![1]!) as Obj;
    expect(data['type']).toBe(name);
    return { name, data };
  });
}

/** An OpenAI stream's events, as the upstream sends them. */
const sse = (...chunks: (Obj | '[DONE]')[]) =>
  chunks.map((c) => `data: ${c === '[DONE]' ? c : JSON.stringify(c)}\n\n`);

describe('Anthropic messages to chat completions', () => {
  it('maps the system prompt, turns, images, tool calls and results, tools and options', () => {
    const out = toChatRequest(
      {
        model: 'gpt-4o',
        max_tokens: 300,
        system: [
          { type: 'text', text: 'You are terse. ' },
          { type: 'text', text: 'Answer in French.', cache_control: { type: 'ephemeral' } },
        ],
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'What is on this?' },
              { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBOR' } },
              { type: 'image', source: { type: 'url', url: 'https://example.com/a.jpg' } },
            ],
          },
          {
            role: 'assistant',
            content: [
              { type: 'thinking', thinking: 'Hmm.', signature: 'sig' },
              { type: 'text', text: 'Let me look. ' },
              { type: 'tool_use', id: 'toolu_1', name: 'lookup', input: { q: 'a' } },
              { type: 'tool_use', id: 'toolu_2', name: 'lookup', input: { q: 'b' } },
            ],
          },
          {
            role: 'user',
            content: [
              { type: 'tool_result', tool_use_id: 'toolu_1', content: 'A' },
              {
                type: 'tool_result',
                tool_use_id: 'toolu_2',
                content: [{ type: 'text', text: 'B' }],
                is_error: true,
              },
            ],
          },
        ],
        tools: [{ name: 'lookup', input_schema: { type: 'object', properties: { q: { type: 'string' } } } }],
        tool_choice: { type: 'tool', name: 'lookup' },
        temperature: 0.2,
        top_p: 0.9,
        stop_sequences: ['\n\n'],
        stream: true,
        metadata: { user_id: 'u-9' },
        service_tier: 'auto',
      },
      'gpt-4o-2024-08-06',
      'openai',
    );
    expect(out).toEqual({
      model: 'gpt-4o-2024-08-06',
      messages: [
        { role: 'system', content: 'You are terse. Answer in French.' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is on this?' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBOR' } },
            { type: 'image_url', image_url: { url: 'https://example.com/a.jpg' } },
          ],
        },
        {
          role: 'assistant',
          content: 'Let me look. ',
          tool_calls: [
            { id: 'toolu_1', type: 'function', function: { name: 'lookup', arguments: '{"q":"a"}' } },
            { id: 'toolu_2', type: 'function', function: { name: 'lookup', arguments: '{"q":"b"}' } },
          ],
        },
        { role: 'tool', tool_call_id: 'toolu_1', content: 'A' },
        // is_error has no place on a tool message: the text says so.
        { role: 'tool', tool_call_id: 'toolu_2', content: 'Error: B' },
      ],
      max_completion_tokens: 300,
      temperature: 0.2,
      top_p: 0.9,
      stop: ['\n\n'],
      stream: true,
      stream_options: { include_usage: true },
      tools: [
        {
          type: 'function',
          function: { name: 'lookup', parameters: { type: 'object', properties: { q: { type: 'string' } } } },
        },
      ],
      tool_choice: { type: 'function', function: { name: 'lookup' } },
      user: 'u-9',
    });
  });

  it('sends the images of a tool result in the user message after the tool messages, naming the call', () => {
    const png = { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBOR' } };
    const out = toChatRequest(
      {
        max_tokens: 100,
        messages: [
          {
            role: 'assistant',
            content: [
              { type: 'tool_use', id: 'toolu_s', name: 'screenshot', input: {} },
              { type: 'tool_use', id: 'toolu_t', name: 'time', input: {} },
            ],
          },
          {
            role: 'user',
            content: [
              {
                type: 'tool_result',
                tool_use_id: 'toolu_s',
                content: [{ type: 'text', text: 'The page:' }, png],
              },
              { type: 'tool_result', tool_use_id: 'toolu_t', content: '12:00' },
              { type: 'text', text: 'What is wrong with it?' },
            ],
          },
        ],
      },
      'gpt-4o',
      'openai',
    );
    expect(out['messages']).toEqual([
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'toolu_s', type: 'function', function: { name: 'screenshot', arguments: '{}' } },
          { id: 'toolu_t', type: 'function', function: { name: 'time', arguments: '{}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'toolu_s', content: 'The page:' },
      { role: 'tool', tool_call_id: 'toolu_t', content: '12:00' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Images from the result of tool call toolu_s:' },
          { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBOR' } },
          { type: 'text', text: 'What is wrong with it?' },
        ],
      },
    ]);
    // A tool result's block that is neither text nor an image is still refused, by its place.
    expect(() =>
      toChatRequest(
        {
          messages: [
            {
              role: 'user',
              content: [
                { type: 'tool_result', tool_use_id: 'x', content: [{ type: 'document', source: {} }] },
              ],
            },
          ],
        },
        'gpt-4o',
        'openai',
      ),
    ).toThrow(/messages\[0\]\.content\[0\]\.content\[0\]: a "document" block/);
  });

  it('sends extended thinking to an OpenAI reasoning model as its reasoning effort, by the budget, and refuses it elsewhere', () => {
    const ask = (budget: number, model: string) =>
      toChatRequest(
        {
          max_tokens: 20_000,
          thinking: { type: 'enabled', budget_tokens: budget },
          messages: [{ role: 'user', content: 'Hi' }],
        },
        model,
        'openai',
      );
    expect(ask(1024, 'o3')['reasoning_effort']).toBe('low');
    expect(ask(4000, 'gpt-5.1')['reasoning_effort']).toBe('medium');
    expect(ask(16_000, 'openai/o4-mini')['reasoning_effort']).toBe('high');
    expect(() => ask(4000, 'gpt-4o')).toThrow(/thinking cannot be sent to gpt-4o, which does not reason/);
    expect(() =>
      toChatRequest(
        { thinking: { type: 'adaptive' }, messages: [{ role: 'user', content: 'Hi' }] },
        'o3',
        'openai',
      ),
    ).toThrow(/thinking of type "adaptive"/);
    expect(
      toChatRequest(
        { thinking: { type: 'disabled' }, messages: [{ role: 'user', content: 'Hi' }] },
        'gpt-4o',
        'openai',
      ),
    ).not.toHaveProperty('reasoning_effort');
  });

  it('gives another OpenAI-compatible server its output limit as max_tokens', () => {
    const body = { max_tokens: 64, messages: [{ role: 'user', content: 'Hi' }] };
    expect(toChatRequest(body, 'llama-3.1-8b', 'openai-compatible')).toEqual({
      model: 'llama-3.1-8b',
      messages: [{ role: 'user', content: 'Hi' }],
      max_tokens: 64,
    });
    expect(toChatRequest(body, 'gpt-4o', 'azure')).toHaveProperty('max_completion_tokens', 64);
    // Azure's API versions before 2024-09-01-preview refuse max_completion_tokens.
    for (const v of ['v1', 'preview', '2024-09-01-preview', '2024-10-21', '2025-04-01-preview'])
      expect(toChatRequest(body, 'gpt-4o', 'azure', v), v).toHaveProperty('max_completion_tokens', 64);
    for (const v of ['2024-06-01', '2024-08-01-preview', '2023-05-15']) {
      const out = toChatRequest(body, 'gpt-4o', 'azure', v);
      expect(out, v).toHaveProperty('max_tokens', 64);
      expect(out, v).not.toHaveProperty('max_completion_tokens');
    }
  });

  it('refuses what an OpenAI model cannot do, and a request that is not well formed, naming the field', () => {
    const turn = [{ role: 'user', content: 'Hi' }];
    const refused = (body: Obj) => {
      try {
        toChatRequest(body, 'gpt-4o', 'openai');
      } catch (err) {
        return { code: (err as { code: string }).code, message: (err as Error).message };
      }
      throw new Error('expected a refusal');
    };
    expect(refused({ messages: turn, top_k: 3 })).toMatchObject({
      code: 'untranslatable_request',
      message: /top_k/,
    });
    expect(refused({ messages: turn, thinking: { type: 'enabled', budget_tokens: 2000 } })).toMatchObject({
      message: /^thinking/,
    });
    expect(
      refused({ messages: turn, tools: [{ type: 'web_search_20250305', name: 'web_search' }] }),
    ).toMatchObject({ message: /web_search_20250305.*runs at Anthropic/ });
    expect(
      refused({
        messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'text', data: 'x' } }] }],
      }),
    ).toMatchObject({ message: /messages\[0\]\.content\[0\]: a "document" block/ });
    expect(refused({ messages: 'Hi' })).toMatchObject({
      code: 'invalid_request',
      message: 'messages must be an array.',
    });
    expect(refused({ messages: [{ role: 'system', content: 'x' }] })).toMatchObject({
      code: 'invalid_request',
      message: /messages\[0\]\.role/,
    });
    expect(refused({ messages: [7] })).toMatchObject({ code: 'invalid_request', message: /messages\[0\]/ });
    // Asking for nothing is not refused.
    expect(() =>
      toChatRequest({ messages: turn, thinking: { type: 'disabled' } }, 'gpt-4o', 'openai'),
    ).not.toThrow();
  });
});

describe('chat completions back to Anthropic messages', () => {
  it('gives the text, tool calls, stop reason and usage (cache reads apart) in Anthropic terms', () => {
    expect(
      toAnthropicMessage({
        id: 'chatcmpl-9x',
        model: 'gpt-4o-2024-08-06',
        choices: [
          {
            index: 0,
            message: {
              role: 'assistant',
              content: 'Checking.',
              tool_calls: [
                { id: 'call_1', type: 'function', function: { name: 'lookup', arguments: '{"q":"a"}' } },
                { id: 'call_2', type: 'function', function: { name: 'lookup', arguments: 'not json' } },
              ],
            },
            finish_reason: 'tool_calls',
          },
        ],
        usage: { prompt_tokens: 1200, completion_tokens: 40, prompt_tokens_details: { cached_tokens: 1024 } },
      }),
    ).toEqual({
      id: 'msg_9x',
      type: 'message',
      role: 'assistant',
      model: 'gpt-4o-2024-08-06',
      content: [
        { type: 'text', text: 'Checking.' },
        { type: 'tool_use', id: 'call_1', name: 'lookup', input: { q: 'a' } },
        { type: 'tool_use', id: 'call_2', name: 'lookup', input: { arguments: 'not json' } },
      ],
      stop_reason: 'tool_use',
      stop_sequence: null,
      usage: {
        input_tokens: 176,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 1024,
        output_tokens: 40,
      },
    });
    const cut = toAnthropicMessage({ choices: [{ message: { content: 'Half' }, finish_reason: 'length' }] });
    expect(cut).toMatchObject({ stop_reason: 'max_tokens', content: [{ type: 'text', text: 'Half' }] });
  });

  it("gives an upstream's error in Anthropic's shape, typed by its status", () => {
    const e = { error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' } };
    expect(toAnthropicError(e, 429)).toEqual({
      type: 'error',
      error: { type: 'rate_limit_error', message: 'Rate limit reached' },
    });
    expect(toAnthropicError({}, 500)).toEqual({
      type: 'error',
      error: { type: 'api_error', message: 'upstream error 500' },
    });
    expect(toAnthropicError({ error: { message: 'No such model' } }, 404).error).toMatchObject({
      type: 'not_found_error',
    });
  });
});

describe('an OpenAI stream as Anthropic events', () => {
  it('opens and closes a block for the text and for each tool call, and ends with the usage', () => {
    // The gateway's count of the prompt opens the stream; the upstream's own closes it.
    const t = new OpenAiToAnthropicStream(48);
    const base = { id: 'chatcmpl-s1', object: 'chat.completion.chunk', model: 'gpt-4o-2024-08-06' };
    const chunks = sse(
      { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] },
      { ...base, choices: [{ index: 0, delta: { content: 'Let me ' }, finish_reason: null }] },
      { ...base, choices: [{ index: 0, delta: { content: 'check.' }, finish_reason: null }] },
      {
        ...base,
        choices: [
          {
            index: 0,
            delta: {
              tool_calls: [
                { index: 0, id: 'call_1', type: 'function', function: { name: 'f', arguments: '' } },
              ],
            },
            finish_reason: null,
          },
        ],
      },
      {
        ...base,
        choices: [
          {
            index: 0,
            delta: { tool_calls: [{ index: 0, function: { arguments: '{"a":' } }] },
            finish_reason: null,
          },
        ],
      },
      {
        ...base,
        choices: [
          {
            index: 0,
            delta: { tool_calls: [{ index: 0, function: { arguments: '1}' } }] },
            finish_reason: null,
          },
        ],
      },
      {
        ...base,
        choices: [
          {
            index: 0,
            delta: {
              tool_calls: [
                { index: 1, id: 'call_2', type: 'function', function: { name: 'g', arguments: '{}' } },
              ],
            },
            finish_reason: null,
          },
        ],
      },
      { ...base, choices: [{ index: 0, delta: {}, finish_reason: 'tool_calls' }] },
      {
        ...base,
        choices: [],
        usage: { prompt_tokens: 50, completion_tokens: 12, prompt_tokens_details: { cached_tokens: 0 } },
      },
      '[DONE]',
    );
    const out = events(chunks.map((c) => t.translate(c)).join(''));
    expect(out.map((e) => e.name)).toEqual([
      'message_start',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'content_block_start',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    expect(out[0]!.data['message']).toMatchObject({
      id: 'msg_s1',
      model: 'gpt-4o-2024-08-06',
      role: 'assistant',
      usage: { input_tokens: 48, output_tokens: 0 },
    });
    expect(out[1]!.data).toMatchObject({ index: 0, content_block: { type: 'text', text: '' } });
    expect(out[3]!.data).toMatchObject({ index: 0, delta: { type: 'text_delta', text: 'check.' } });
    expect(out[5]!.data).toMatchObject({
      index: 1,
      content_block: { type: 'tool_use', id: 'call_1', name: 'f', input: {} },
    });
    expect(out[7]!.data).toMatchObject({ index: 1, delta: { type: 'input_json_delta', partial_json: '1}' } });
    expect(out[9]!.data).toMatchObject({ index: 2, content_block: { id: 'call_2', name: 'g' } });
    expect(out[12]!.data).toEqual({
      type: 'message_delta',
      delta: { stop_reason: 'tool_use', stop_sequence: null },
      usage: {
        input_tokens: 50,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
        output_tokens: 12,
      },
    });
    // Nothing after the end.
    expect(t.translate('data: [DONE]\n\n')).toBe('');
  });

  it('gives a streamed refusal as text', () => {
    const t = new OpenAiToAnthropicStream();
    const base = { id: 'chatcmpl-r', model: 'gpt-4o' };
    const out = events(
      sse(
        {
          ...base,
          choices: [{ index: 0, delta: { role: 'assistant', refusal: "I can't help" }, finish_reason: null }],
        },
        { ...base, choices: [{ index: 0, delta: { refusal: ' with that.' }, finish_reason: 'stop' }] },
        '[DONE]',
      )
        .map((c) => t.translate(c))
        .join(''),
    );
    const text = out
      .filter((e) => e.name === 'content_block_delta')
      .map((e) => (e.data['delta'] as Obj)['text'])
      .join('');
    expect(text).toBe("I can't help with that.");
  });

  it("passes an upstream's error event on as Anthropic's", () => {
    const t = new OpenAiToAnthropicStream();
    const out = events(t.translate(sse({ error: { message: 'overloaded' } })[0]!));
    expect(out).toEqual([
      { name: 'error', data: { type: 'error', error: { type: 'api_error', message: 'overloaded' } } },
    ]);
  });

  it.skipIf(SKIP_WITHOUT_RECORDINGS)(
    "tells a recorded OpenAI stream's text as Anthropic's client reads it",
    () => {
      const streams = chatRecordings().filter((r) => r.request['stream'] === true && Array.isArray(r.body));
      expect(streams.length).toBeGreaterThan(0);
      for (const rec of streams) {
        const chunks = rec.body as Obj[];
        const text = chunks
          .map(
            (c) =>
              ((c['choices'] as Obj[] | undefined)?.[0]?.['delta'] as Obj | undefined)?.['content'] ?? '',
          )
          .join('');
        const t = new OpenAiToAnthropicStream();
        const out = events([...sse(...chunks), 'data: [DONE]\n\n'].map((c) => t.translate(c)).join(''));
        const told = out
          .filter((e) => e.name === 'content_block_delta')
          .map((e) => (e.data['delta'] as Obj)['text'])
          .join('');
        expect(told).toBe(text);
        expect(out[0]!.name).toBe('message_start');
        expect(out.at(-1)!.name).toBe('message_stop');
        const finish = chunks
          .map((c) => (c['choices'] as Obj[] | undefined)?.[0]?.['finish_reason'])
          .find(Boolean);
        const reasons: Record<string, string> = {
          stop: 'end_turn',
          length: 'max_tokens',
          content_filter: 'refusal',
        };
        expect((out.at(-2)!.data['delta'] as Obj)['stop_reason']).toBe(reasons[String(finish)]);
      }
    },
  );
});
