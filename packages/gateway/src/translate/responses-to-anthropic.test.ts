import { describe, expect, it } from 'vitest';
import { TranslationError } from './openai-to-anthropic.js';
import { AnthropicToResponsesStream } from './responses-stream.js';
import { responsesToAnthropicRequest, toResponsesResponse } from './responses-to-anthropic.js';

const ev = (name: string, data: unknown) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
/** The Responses events in a translated chunk, as [type, data]. */
const events = (s: string) =>
  s
    .split('\n\n')
    .filter((e) => e !== '')
    .map((e) => {
      const [name, data] = e.split('\n');
      const d = JSON.parse(data!.slice(6));
      expect(name).toBe(`event: ${d.type}`);
      return d;
    });

describe('OpenAI Responses -> Anthropic messages', () => {
  it('maps instructions, input items, a function call round trip, images and tools', () => {
    const out = responsesToAnthropicRequest(
      {
        model: 'claude-sonnet-4-5',
        instructions: 'Be brief.',
        input: [
          { role: 'developer', content: 'Answer in French.' },
          {
            type: 'message',
            role: 'user',
            content: [
              { type: 'input_text', text: 'What is this?' },
              { type: 'input_image', image_url: 'data:image/png;base64,iVBOR' },
            ],
          },
          { type: 'reasoning', id: 'rs_1', summary: [] },
          { type: 'function_call', call_id: 'call_1', name: 'look', arguments: '{"q":1}' },
          { type: 'function_call_output', call_id: 'call_1', output: 'a cat' },
          { role: 'user', content: 'Thanks' },
          { role: 'assistant', content: [{ type: 'output_text', text: 'De rien.' }] },
        ],
        tools: [{ type: 'function', name: 'look', description: 'Looks', parameters: { type: 'object' } }],
        tool_choice: { type: 'function', name: 'look' },
        parallel_tool_calls: false,
        max_output_tokens: 200,
        temperature: 0.2,
        stream: true,
        safety_identifier: 'u-1',
        store: false,
      },
      'claude-sonnet-4-5-20250929',
      4096,
    );
    expect(out).toEqual({
      model: 'claude-sonnet-4-5-20250929',
      max_tokens: 200,
      system: 'Be brief.\n\nAnswer in French.',
      temperature: 0.2,
      stream: true,
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is this?' },
            { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBOR' } },
          ],
        },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'call_1', name: 'look', input: { q: 1 } }] },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'call_1', content: 'a cat' },
            { type: 'text', text: 'Thanks' },
          ],
        },
        { role: 'assistant', content: [{ type: 'text', text: 'De rien.' }] },
      ],
      tools: [{ name: 'look', description: 'Looks', input_schema: { type: 'object' } }],
      tool_choice: { type: 'tool', name: 'look', disable_parallel_tool_use: true },
      metadata: { user_id: 'u-1' },
    });
    expect(responsesToAnthropicRequest({ input: 'Hi', tool_choice: 'required' }, 'm', 64)).toEqual({
      model: 'm',
      max_tokens: 64,
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }],
    });
  });

  it('refuses what it cannot map, with a reason', () => {
    const refuse = (body: Record<string, unknown>, why: RegExp) =>
      expect(() => responsesToAnthropicRequest(body, 'm', 1)).toThrow(
        expect.objectContaining({ constructor: TranslationError, message: expect.stringMatching(why) }),
      );
    refuse({ input: 'Hi', previous_response_id: 'resp_1' }, /stored state/);
    refuse({ input: 42 }, /string or an array/);
    refuse({ input: 'Hi', tools: [{ type: 'web_search' }] }, /"web_search"/);
    refuse({ input: [{ type: 'input_file', file_id: 'f' }] }, /"input_file"/);
    refuse({ input: [{ role: 'user', content: [{ type: 'input_file' }] }] }, /"input_file"/);
    refuse(
      { input: 'Hi', text: { format: { type: 'json_schema' } } },
      /text\.format\.schema must be an object schema/,
    );
    refuse({ input: 'Hi', text: { format: { type: 'grammar' } } }, /text\.format "grammar"/);
    refuse(
      {
        input: 'Hi',
        text: { format: { type: 'json_schema', name: 'f', schema: { type: 'object' } } },
        tools: [{ type: 'function', name: 'f', parameters: { type: 'object' } }],
      },
      /text\.format is named f, as a tool of the request is/,
    );
    refuse({ input: [{ type: 'function_call', arguments: '{' }] }, /must be JSON/);
  });

  it("offers a structured answer's tool beside the request's functions; its call is the answer's message", () => {
    const body = {
      input: 'Hi',
      text: { format: { type: 'json_schema', name: 'place', schema: { type: 'object' } } },
      tools: [{ type: 'function', name: 'look', parameters: { type: 'object' } }],
    };
    expect(responsesToAnthropicRequest(body, 'm', 100)).toMatchObject({
      tools: [{ name: 'look' }, { name: 'place' }],
      tool_choice: { type: 'any' },
    });
    const r = toResponsesResponse(
      {
        id: 'msg_01B',
        model: 'claude',
        content: [
          { type: 'tool_use', id: 'toolu_8', name: 'look', input: { q: 1 } },
          { type: 'tool_use', id: 'toolu_9', name: 'place', input: { city: 'Rome' } },
        ],
        stop_reason: 'tool_use',
        usage: { input_tokens: 1, output_tokens: 1 },
      },
      body,
      1,
    );
    expect(r['output']).toMatchObject([
      { type: 'message', content: [{ type: 'output_text', text: '{"city":"Rome"}' }] },
      { type: 'function_call', call_id: 'toolu_8', name: 'look', arguments: '{"q":1}' },
    ]);
    expect(r['output']).toHaveLength(2);
  });

  it("gives Claude's thinking as reasoning items, and takes them back; another model's reasoning is left out", () => {
    const thought = { type: 'thinking', thinking: 'Check the tool.', signature: 'sig-9' };
    const redacted = { type: 'redacted_thinking', data: 'opaque' };
    const r = toResponsesResponse(
      {
        id: 'msg_01C',
        model: 'claude',
        content: [thought, redacted, { type: 'tool_use', id: 'toolu_7', name: 'look', input: {} }],
        stop_reason: 'tool_use',
        usage: { input_tokens: 1, output_tokens: 1 },
      },
      {},
      1,
    );
    const output = r['output'] as Record<string, unknown>[];
    expect(output).toMatchObject([
      {
        type: 'reasoning',
        summary: [{ type: 'summary_text', text: 'Check the tool.' }],
        encrypted_content: 'anthropic-thinking:sig-9',
      },
      { type: 'reasoning', summary: [], encrypted_content: 'anthropic-redacted:opaque' },
      { type: 'function_call', call_id: 'toolu_7' },
    ]);
    const next = responsesToAnthropicRequest(
      {
        input: [
          { role: 'user', content: 'Hi' },
          { type: 'reasoning', id: 'rs_other', summary: [{ type: 'summary_text', text: 'o3 thought' }] },
          ...output,
          { type: 'function_call_output', call_id: 'toolu_7', output: 'ok' },
        ],
        reasoning: { effort: 'low' },
        max_output_tokens: 4096,
      },
      'm',
      100,
    );
    expect(next['thinking']).toEqual({ type: 'enabled', budget_tokens: 1024 });
    expect((next['messages'] as { content: unknown[] }[])[1]!.content).toEqual([
      thought,
      redacted,
      { type: 'tool_use', id: 'toolu_7', name: 'look', input: {} },
    ]);
  });

  it('answers as a Response: text and function calls as output items, usage in its terms', () => {
    const r = toResponsesResponse(
      {
        id: 'msg_01A',
        model: 'claude-sonnet-4-5-20250929',
        content: [
          { type: 'text', text: 'Looking.' },
          { type: 'tool_use', id: 'toolu_9', name: 'look', input: { q: 2 } },
        ],
        stop_reason: 'tool_use',
        usage: {
          input_tokens: 10,
          cache_read_input_tokens: 5,
          cache_creation_input_tokens: 2,
          output_tokens: 3,
        },
      },
      { instructions: 'Be brief.', max_output_tokens: 50 },
      1700000000,
    );
    expect(r).toMatchObject({
      id: 'resp_01A',
      object: 'response',
      created_at: 1700000000,
      status: 'completed',
      incomplete_details: null,
      instructions: 'Be brief.',
      max_output_tokens: 50,
      model: 'claude-sonnet-4-5-20250929',
      output: [
        {
          type: 'message',
          role: 'assistant',
          status: 'completed',
          content: [{ type: 'output_text', text: 'Looking.', annotations: [] }],
        },
        { type: 'function_call', id: 'fc_9', call_id: 'toolu_9', name: 'look', arguments: '{"q":2}' },
      ],
      usage: {
        input_tokens: 17,
        input_tokens_details: { cached_tokens: 5 },
        output_tokens: 3,
        total_tokens: 20,
      },
    });
    const cut = toResponsesResponse(
      { id: 'msg_2', content: [], stop_reason: 'max_tokens', usage: {} },
      {},
      1,
    );
    expect(cut).toMatchObject({ status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } });
  });

  it('streams text and function-call arguments as Responses events, numbered in order', () => {
    const t = new AnthropicToResponsesStream({ instructions: 'Be brief.' }, 1);
    const out = [
      ev('message_start', {
        message: { id: 'msg_9', model: 'claude', usage: { input_tokens: 4, cache_read_input_tokens: 6 } },
      }),
      ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
      ev('ping', { type: 'ping' }),
      ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'Hel' } }),
      ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'lo' } }),
      ev('content_block_stop', { index: 0 }),
      ev('content_block_start', {
        index: 1,
        content_block: { type: 'tool_use', id: 'toolu_1', name: 'look' },
      }),
      ev('content_block_delta', { index: 1, delta: { type: 'input_json_delta', partial_json: '{"q":' } }),
      ev('content_block_delta', { index: 1, delta: { type: 'input_json_delta', partial_json: '1}' } }),
      ev('content_block_stop', { index: 1 }),
      ev('message_delta', { delta: { stop_reason: 'tool_use' }, usage: { output_tokens: 7 } }),
      ev('message_stop', {}),
    ].flatMap((e) => events(t.translate(e)));
    expect(out.map((e) => e.type)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.output_item.added',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.done',
      'response.output_item.done',
      'response.completed',
    ]);
    expect(out.map((e) => e.sequence_number)).toEqual(out.map((_, i) => i));
    expect(out[0].response).toMatchObject({ id: 'resp_9', status: 'in_progress', output: [], usage: null });
    expect(out[6]).toMatchObject({ text: 'Hello', output_index: 0 });
    expect(out[12]).toMatchObject({ arguments: '{"q":1}', output_index: 1, name: 'look' });
    expect(out.at(-1).response).toMatchObject({
      status: 'completed',
      instructions: 'Be brief.',
      output: [
        { type: 'message', status: 'completed', content: [{ type: 'output_text', text: 'Hello' }] },
        { type: 'function_call', call_id: 'toolu_1', arguments: '{"q":1}', status: 'completed' },
      ],
      usage: {
        input_tokens: 10,
        input_tokens_details: { cached_tokens: 6 },
        output_tokens: 7,
        total_tokens: 17,
      },
    });
  });

  it('passes an upstream error on as an error event, and a cut-off answer as incomplete', () => {
    const t = new AnthropicToResponsesStream({}, 1);
    t.translate(ev('message_start', { message: { id: 'msg_1', model: 'claude', usage: {} } }));
    const [err] = events(t.translate(ev('error', { error: { type: 'overloaded_error', message: 'busy' } })));
    expect(err).toMatchObject({ type: 'error', code: 'overloaded_error', message: 'busy' });
    t.translate(ev('message_delta', { delta: { stop_reason: 'max_tokens' }, usage: { output_tokens: 1 } }));
    const [end] = events(t.translate(ev('message_stop', {})));
    expect(end).toMatchObject({ type: 'response.incomplete', response: { status: 'incomplete' } });
  });
});
