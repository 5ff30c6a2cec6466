import { describe, expect, it } from 'vitest';
import { takesOutputFormat } from './anthropic-blocks.js';
import { AnthropicToOpenAiStream } from './anthropic-stream.js';
import { TranslationError, toAnthropicRequest, toOpenAiResponse } from './openai-to-anthropic.js';
import { responsesToAnthropicRequest } from './responses-to-anthropic.js';

describe('OpenAI chat -> Anthropic messages', () => {
  it('maps a tool round trip, images and system prompts, merging turns so roles alternate', () => {
    const out = toAnthropicRequest(
      {
        model: 'x',
        messages: [
          { role: 'system', content: 'A' },
          { role: 'developer', content: [{ type: 'text', text: 'B' }] },
          {
            role: 'user',
            content: [
              { type: 'text', text: 'What is this?' },
              { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBOR' } },
            ],
          },
          {
            role: 'assistant',
            content: null,
            tool_calls: [
              { id: 'call_1', type: 'function', function: { name: 'look', arguments: '{"q":1}' } },
            ],
          },
          { role: 'tool', tool_call_id: 'call_1', content: 'a cat' },
          { role: 'user', content: 'Thanks' },
        ],
        tools: [{ type: 'function', function: { name: 'look', parameters: { type: 'object' } } }],
        tool_choice: { type: 'function', function: { name: 'look' } },
        parallel_tool_calls: false,
        user: 'u-1',
      },
      'claude-sonnet-4-5',
      4096,
    );
    expect(out).toEqual({
      model: 'claude-sonnet-4-5',
      max_tokens: 4096,
      system: 'A\n\nB',
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
      ],
      tools: [{ name: 'look', input_schema: { type: 'object' } }],
      tool_choice: { type: 'tool', name: 'look', disable_parallel_tool_use: true },
      metadata: { user_id: 'u-1' },
    });
  });

  it("offers a structured answer's tool beside the request's own, as the tool choice allows", () => {
    const messages = [{ role: 'user', content: 'hi' }];
    const tools = [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }];
    const response_format = { type: 'json_object' };
    const answer = { name: 'json_answer', input_schema: { type: 'object' } };
    const of = (extra: Record<string, unknown>) =>
      toAnthropicRequest({ messages, tools, response_format, ...extra }, 'm', 1);
    expect(of({})).toMatchObject({ tools: [{ name: 'f' }, answer], tool_choice: { type: 'any' } });
    expect(of({ parallel_tool_calls: false })).toMatchObject({
      tools: [{ name: 'f' }, answer],
      tool_choice: { type: 'any', disable_parallel_tool_use: true },
    });
    expect(of({ tool_choice: 'none' })).toMatchObject({ tool_choice: { type: 'tool', name: 'json_answer' } });
    const required = of({ tool_choice: 'required' });
    expect(required).toMatchObject({ tools: [{ name: 'f' }], tool_choice: { type: 'any' } });
    expect(required['tools']).toHaveLength(1);
    const named = of({ tool_choice: { type: 'function', function: { name: 'f' } } });
    expect(named).toMatchObject({ tools: [{ name: 'f' }], tool_choice: { type: 'tool', name: 'f' } });

    // Its answer: the answer's call is the content, beside the calls of the request's tools.
    const usage = { input_tokens: 1, output_tokens: 1 };
    const call = { type: 'tool_use', id: 'toolu_1', name: 'f', input: { q: 1 } };
    const given = { type: 'tool_use', id: 'toolu_2', name: 'json_answer', input: { a: 1 } };
    const alone = toOpenAiResponse(
      { id: 'msg_1', content: [given], stop_reason: 'tool_use', usage },
      1,
      'json_answer',
    );
    expect(alone['choices']).toMatchObject([{ message: { content: '{"a":1}' }, finish_reason: 'stop' }]);
    const both = toOpenAiResponse(
      { id: 'msg_1', content: [call, given], stop_reason: 'tool_use', usage },
      1,
      'json_answer',
    );
    expect(both['choices']).toMatchObject([
      {
        message: {
          content: '{"a":1}',
          tool_calls: [{ id: 'toolu_1', function: { name: 'f', arguments: '{"q":1}' } }],
        },
        finish_reason: 'tool_calls',
      },
    ]);
  });

  it('refuses what it cannot map, with a reason', () => {
    expect(() => toAnthropicRequest({ messages: 'hi' }, 'm', 1)).toThrow(TranslationError);
    expect(() =>
      toAnthropicRequest(
        { messages: [{ role: 'assistant', tool_calls: [{ function: { arguments: '{' } }] }] },
        'm',
        1,
      ),
    ).toThrow(/arguments must be JSON/);
  });

  it('sends a structured answer with thinking as its schema, on a Claude that takes one', () => {
    const schema = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] };
    const tools = [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object' } } }];
    const ask = {
      messages: [{ role: 'user', content: 'Where?' }],
      reasoning_effort: 'low',
      max_completion_tokens: 4000,
      response_format: { type: 'json_schema', json_schema: { name: 'place', schema } },
      tools,
    };
    const out = toAnthropicRequest(ask, 'claude-sonnet-4-5-20250929', 1);
    expect(out).toMatchObject({
      output_config: { format: { type: 'json_schema', schema } },
      thinking: { type: 'enabled', budget_tokens: 1024 },
      tools: [{ name: 'lookup' }],
    });
    expect(out).not.toHaveProperty('tool_choice');
    // Without thinking, the answer's tool as before; on a Claude without structured outputs, refused.
    const plain = toAnthropicRequest({ ...ask, reasoning_effort: 'none' }, 'claude-sonnet-4-5', 1);
    expect(plain).not.toHaveProperty('output_config');
    expect(plain['tool_choice']).toEqual({ type: 'any' });
    expect(() => toAnthropicRequest(ask, 'claude-3-7-sonnet-20250219', 1)).toThrow(
      /cannot go with a tool the model must call/,
    );
    // json_object has no schema of its own to send: refused with thinking, on any Claude.
    expect(() =>
      toAnthropicRequest({ ...ask, response_format: { type: 'json_object' } }, 'claude-sonnet-4-5', 1),
    ).toThrow(/cannot go with a tool the model must call/);
    // The Responses API's text.format alike.
    const responses = responsesToAnthropicRequest(
      {
        input: 'Where?',
        reasoning: { effort: 'medium' },
        text: { format: { type: 'json_schema', name: 'place', schema } },
      },
      'claude-opus-4-1',
      8000,
    );
    expect(responses).toMatchObject({ output_config: { format: { type: 'json_schema', schema } } });
    expect(responses).not.toHaveProperty('tools');
  });

  it('knows which Claude models take a schema as it is', () => {
    for (const m of [
      'claude-sonnet-4-5',
      'claude-sonnet-4-5-20250929',
      'claude-haiku-4-5',
      'claude-opus-4-1',
      'claude-opus-4-6',
      'claude-sonnet-5',
      'claude-fable-5',
      'anthropic/claude-opus-4.5',
    ])
      expect(takesOutputFormat(m), m).toBe(true);
    for (const m of [
      'claude-sonnet-4-20250514',
      'claude-sonnet-4-0',
      'claude-3-7-sonnet-latest',
      'claude-3-5-haiku-20241022',
      'claude-opus-4-20250514',
      'gpt-4o',
      'm',
    ])
      expect(takesOutputFormat(m), m).toBe(false);
  });

  it('refuses, rather than drops, what Claude would not do as asked', () => {
    const user = [{ role: 'user', content: 'hi' }];
    const refused: [Record<string, unknown>, RegExp][] = [
      [{ n: 2 }, /n above 1/],
      [
        { response_format: { type: 'json_schema', json_schema: { name: 'x' } } },
        /json_schema\.schema must be an object schema/,
      ],
      [
        { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'array' } } } },
        /must be an object schema/,
      ],
      [
        {
          response_format: { type: 'json_schema', json_schema: { name: 'f', schema: { type: 'object' } } },
          tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }],
        },
        /response_format is named f, as a tool of the request is/,
      ],
      [{ response_format: { type: 'grammar' } }, /response_format "grammar"/],
      [{ logprobs: true }, /logprobs/],
      [{ top_logprobs: 3 }, /logprobs/],
      [{ reasoning_effort: 'extreme' }, /reasoning_effort must be one of none, minimal, low, medium, high/],
      [{ reasoning_effort: 'high', temperature: 0.2 }, /temperature cannot be set with reasoning_effort/],
      [{ reasoning_effort: 'low', top_p: 0.5 }, /top_p under 0\.95/],
      [
        { reasoning_effort: 'low', max_completion_tokens: 1000 },
        /needs an output limit above 1024 tokens .* allows 1000/,
      ],
      [
        { reasoning_effort: 'low', response_format: { type: 'json_object' } },
        /cannot go with a tool the model must call/,
      ],
      [{ audio: { voice: 'alloy', format: 'wav' } }, /audio/],
      [{ modalities: ['text', 'audio'] }, /modalities/],
      [{ prediction: { type: 'content', content: 'x' } }, /prediction/],
      [{ tools: [{ type: 'custom', custom: { name: 'x' } }] }, /tools\[\]\.type "custom"/],
      [
        { messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'x' } }] }] },
        /content part "input_audio"/,
      ],
      [{ messages: [{ role: 'user', content: [{ type: 'file', file: { file_id: 'f' } }] }] }, /"file"/],
      [{ messages: [{ role: 'user', content: '' }] }, /last user message is empty/],
      [
        { messages: [{ role: 'user', content: [{ type: 'text', text: ' \n' }] }] },
        /last user message is empty/,
      ],
      [
        {
          messages: [
            { role: 'user', content: 'Hi' },
            { role: 'assistant', content: 'Hello' },
            { role: 'user', content: '' },
          ],
        },
        /last user message is empty/,
      ],
      [{ messages: [{ role: 'system', content: 'only a system prompt' }] }, /at least one/],
    ];
    for (const [fields, why] of refused) {
      expect(() => toAnthropicRequest({ messages: user, ...fields }, 'm', 1), JSON.stringify(fields)).toThrow(
        why,
      );
    }
    // The values that ask nothing of the model pass.
    const out = toAnthropicRequest(
      {
        messages: user,
        n: 1,
        response_format: { type: 'text' },
        logprobs: false,
        reasoning_effort: 'none',
        modalities: ['text'],
        tool_choice: 'auto',
      },
      'm',
      1,
    );
    expect(out).toEqual({
      model: 'm',
      max_tokens: 1,
      messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }],
    });
  });

  it('maps stop reasons and usage back', () => {
    const r = toOpenAiResponse(
      {
        id: 'msg_1',
        model: 'claude',
        content: [{ type: 'text', text: 'Hi' }],
        stop_reason: 'max_tokens',
        usage: {
          input_tokens: 10,
          cache_read_input_tokens: 5,
          cache_creation_input_tokens: 2,
          output_tokens: 3,
        },
      },
      1,
    );
    expect(r).toMatchObject({
      id: 'chatcmpl-1',
      choices: [{ message: { content: 'Hi' }, finish_reason: 'length' }],
      usage: {
        prompt_tokens: 17,
        completion_tokens: 3,
        total_tokens: 20,
        prompt_tokens_details: { cached_tokens: 5 },
      },
    });
  });

  it('streams tool calls as OpenAI tool_call deltas', () => {
    const t = new AnthropicToOpenAiStream(1, false);
    const ev = (name: string, data: unknown) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
    const parse = (s: string) =>
      s
        .split('\n\n')
        .filter((l) => l.startsWith('data: {'))
        .map((l) => JSON.parse(l.slice(6)));
    t.translate(
      ev('message_start', { message: { id: 'msg_9', model: 'claude', usage: { input_tokens: 4 } } }),
    );
    const start = parse(
      t.translate(
        ev('content_block_start', {
          index: 1,
          content_block: { type: 'tool_use', id: 'toolu_1', name: 'look' },
        }),
      ),
    );
    const delta = parse(
      t.translate(
        ev('content_block_delta', { index: 1, delta: { type: 'input_json_delta', partial_json: '{"q":' } }),
      ),
    );
    const end = t.translate(
      ev('message_delta', { delta: { stop_reason: 'tool_use' }, usage: { output_tokens: 7 } }),
    );
    expect(start[0].choices[0].delta.tool_calls[0]).toEqual({
      index: 0,
      id: 'toolu_1',
      type: 'function',
      function: { name: 'look', arguments: '' },
    });
    expect(delta[0].choices[0].delta.tool_calls[0]).toEqual({ index: 0, function: { arguments: '{"q":' } });
    expect(parse(end)[0].choices[0].finish_reason).toBe('tool_calls');
    expect(t.translate(ev('message_stop', {}))).toBe('data: [DONE]\n\n');
  });
});

describe('a structured answer (response_format) from an Anthropic model', () => {
  const schema = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] };
  const ask = (format: unknown) => ({
    messages: [{ role: 'user', content: 'Where?' }],
    response_format: format,
  });

  it('asks for it as a tool the model must call, named as the schema is', () => {
    const named = toAnthropicRequest(
      ask({ type: 'json_schema', json_schema: { name: 'place', schema, strict: true } }),
      'claude-sonnet-4-5',
      1024,
    );
    expect(named).toMatchObject({
      tools: [{ name: 'place', description: "Give the answer as this tool's input.", input_schema: schema }],
      tool_choice: { type: 'tool', name: 'place' },
    });
    // A name Anthropic would not take, and json_object (any object), go as json_answer.
    const odd = toAnthropicRequest(
      ask({ type: 'json_schema', json_schema: { name: 'a place!', schema } }),
      'c',
      1,
    );
    expect(odd['tool_choice']).toEqual({ type: 'tool', name: 'json_answer' });
    const any = toAnthropicRequest(ask({ type: 'json_object' }), 'c', 1);
    expect(any['tools']).toEqual([
      {
        name: 'json_answer',
        description: 'Give the answer as a JSON object.',
        input_schema: { type: 'object' },
      },
    ]);
    expect(toAnthropicRequest(ask({ type: 'text' }), 'c', 1)).not.toHaveProperty('tools');
  });

  it("gives the tool's input as the message's content, finished as a text answer is", () => {
    const msg = {
      id: 'msg_1',
      model: 'claude-sonnet-4-5',
      stop_reason: 'tool_use',
      content: [{ type: 'tool_use', id: 'toolu_1', name: 'place', input: { city: 'Paris' } }],
      usage: { input_tokens: 10, output_tokens: 5 },
    };
    const out = toOpenAiResponse(msg, 1, 'place');
    expect(out['choices']).toEqual([
      {
        index: 0,
        message: { role: 'assistant', content: '{"city":"Paris"}' },
        finish_reason: 'stop',
        logprobs: null,
      },
    ]);
    const cut = toOpenAiResponse({ ...msg, stop_reason: 'max_tokens' }, 1, 'place') as { choices: Obj[] };
    expect(cut.choices[0]!['finish_reason']).toBe('length');
    // A refusal (no call of the tool) comes back as text.
    const refused = toOpenAiResponse(
      { ...msg, stop_reason: 'refusal', content: [{ type: 'text', text: 'No.' }] },
      1,
      'place',
    ) as { choices: Obj[] };
    expect(refused.choices[0]).toMatchObject({
      message: { content: 'No.' },
      finish_reason: 'content_filter',
    });
  });

  it("streams the tool's input as content deltas, with no tool call", () => {
    const t = new AnthropicToOpenAiStream(1, false, 'place');
    const ev = (name: string, data: unknown) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
    const out = [
      ev('message_start', { message: { id: 'msg_9', model: 'claude', usage: { input_tokens: 4 } } }),
      ev('content_block_start', {
        index: 0,
        content_block: { type: 'tool_use', id: 'toolu_1', name: 'place' },
      }),
      ev('content_block_delta', { index: 0, delta: { type: 'input_json_delta', partial_json: '' } }),
      ev('content_block_delta', { index: 0, delta: { type: 'input_json_delta', partial_json: '{"city":' } }),
      ev('content_block_delta', { index: 0, delta: { type: 'input_json_delta', partial_json: '"Paris"}' } }),
      ev('content_block_stop', { index: 0 }),
      ev('message_delta', { delta: { stop_reason: 'tool_use' }, usage: { output_tokens: 7 } }),
      ev('message_stop', {}),
    ]
      .map((e) => t.translate(e))
      .join('')
      .split('\n\n')
      .filter((l) => l.startsWith('data: {'))
      .map((l) => JSON.parse(l.slice(6)) as { choices: { delta: Obj; finish_reason: string | null }[] });
    expect(out.some((c) => c.choices[0]?.delta['tool_calls'] !== undefined)).toBe(false);
    expect(out.map((c) => c.choices[0]?.delta['content'] ?? '').join('')).toBe('{"city":"Paris"}');
    expect(out.at(-1)!.choices[0]!.finish_reason).toBe('stop');
    // A model that does not answer (a refusal) streams text, passed on as it is.
    const r = new AnthropicToOpenAiStream(1, false, 'place');
    const refused = [
      ev('message_start', { message: { id: 'msg_r', model: 'claude', usage: { input_tokens: 4 } } }),
      ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
      ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'I cannot help.' } }),
      ev('message_delta', { delta: { stop_reason: 'refusal' }, usage: { output_tokens: 3 } }),
    ]
      .map((e) => r.translate(e))
      .join('');
    expect(refused).toContain('"content":"I cannot help."');
    expect(refused).toContain('"finish_reason":"content_filter"');
    // Beside a call of the request's own tools, the answer streams as content and the call as a
    // tool call, and the turn finishes as a tool loop's does.
    const b = new AnthropicToOpenAiStream(1, false, 'place');
    const both = [
      ev('message_start', { message: { id: 'msg_b', model: 'claude', usage: { input_tokens: 4 } } }),
      ev('content_block_start', {
        index: 0,
        content_block: { type: 'tool_use', id: 'toolu_1', name: 'look' },
      }),
      ev('content_block_delta', { index: 0, delta: { type: 'input_json_delta', partial_json: '{}' } }),
      ev('content_block_start', {
        index: 1,
        content_block: { type: 'tool_use', id: 'toolu_2', name: 'place' },
      }),
      ev('content_block_delta', {
        index: 1,
        delta: { type: 'input_json_delta', partial_json: '{"city":"Rome"}' },
      }),
      ev('message_delta', { delta: { stop_reason: 'tool_use' }, usage: { output_tokens: 9 } }),
    ]
      .map((e) => b.translate(e))
      .join('');
    expect(both).toContain(
      '"tool_calls":[{"index":0,"id":"toolu_1","type":"function","function":{"name":"look"',
    );
    expect(both).toContain('"content":"{\\"city\\":\\"Rome\\"}"');
    expect(both).toContain('"finish_reason":"tool_calls"');
  });
});

describe("OpenAI's reasoning effort as Anthropic's extended thinking", () => {
  const turn = [{ role: 'user', content: 'Think.' }];
  it('thinks within the output limit, by the effort, in both APIs', () => {
    expect(
      toAnthropicRequest({ messages: turn, reasoning_effort: 'high' }, 'claude-opus-4-6', 4096),
    ).toMatchObject({
      max_tokens: 4096,
      thinking: { type: 'enabled', budget_tokens: 4095 },
    });
    expect(
      toAnthropicRequest(
        { messages: turn, reasoning_effort: 'medium', max_completion_tokens: 10_000 },
        'c',
        4096,
      ),
    ).toMatchObject({ max_tokens: 10_000, thinking: { type: 'enabled', budget_tokens: 2048 } });
    expect(
      toAnthropicRequest({ messages: turn, reasoning_effort: 'low', temperature: 1, top_p: 0.95 }, 'c', 4096)[
        'thinking'
      ],
    ).toEqual({ type: 'enabled', budget_tokens: 1024 });
    expect(toAnthropicRequest({ messages: turn, reasoning_effort: 'none' }, 'c', 4096)).not.toHaveProperty(
      'thinking',
    );
    expect(
      responsesToAnthropicRequest(
        { input: 'Think.', reasoning: { effort: 'medium' }, max_output_tokens: 8000 },
        'c',
        4096,
      ),
    ).toMatchObject({ max_tokens: 8000, thinking: { type: 'enabled', budget_tokens: 2048 } });
  });

  it('goes without thinking where the call carries on from the tool calls of its turn', () => {
    const loop = [
      { role: 'user', content: 'Weather?' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 'c1', type: 'function', function: { name: 'w', arguments: '{}' } }],
      },
      { role: 'tool', tool_call_id: 'c1', content: '18C' },
    ];
    const out = toAnthropicRequest(
      { messages: loop, reasoning_effort: 'high', tools: [{ type: 'function', function: { name: 'w' } }] },
      'c',
      4096,
    );
    expect(out).not.toHaveProperty('thinking');
    // A new user turn after the tool's answer thinks again.
    const next = toAnthropicRequest(
      {
        messages: [
          ...loop,
          { role: 'assistant', content: 'It is 18C.' },
          { role: 'user', content: 'And tomorrow?' },
        ],
        reasoning_effort: 'high',
      },
      'c',
      4096,
    );
    expect(next['thinking']).toEqual({ type: 'enabled', budget_tokens: 4095 });
  });

  it('gives the thinking as reasoning_content and thinking_blocks, plain and streamed', () => {
    const msg = {
      id: 'msg_t',
      model: 'claude-opus-4-6',
      stop_reason: 'end_turn',
      content: [
        { type: 'thinking', thinking: 'Let me see.', signature: 'sig' },
        { type: 'redacted_thinking', data: 'opaque' },
        { type: 'text', text: 'Yes.' },
      ],
      usage: { input_tokens: 5, output_tokens: 40 },
    };
    const blocks = [
      { type: 'thinking', thinking: 'Let me see.', signature: 'sig' },
      { type: 'redacted_thinking', data: 'opaque' },
    ];
    expect((toOpenAiResponse(msg, 1) as { choices: { message: Obj }[] }).choices[0]!.message).toEqual({
      role: 'assistant',
      content: 'Yes.',
      reasoning_content: 'Let me see.',
      thinking_blocks: blocks,
    });
    const t = new AnthropicToOpenAiStream(1, false);
    const ev = (name: string, data: unknown) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
    const chunks = [
      ev('message_start', { message: { id: 'msg_t', model: 'c', usage: { input_tokens: 5 } } }),
      ev('content_block_start', { index: 0, content_block: { type: 'thinking', thinking: '' } }),
      ev('content_block_delta', { index: 0, delta: { type: 'thinking_delta', thinking: 'Let me ' } }),
      ev('content_block_delta', { index: 0, delta: { type: 'thinking_delta', thinking: 'see.' } }),
      ev('content_block_delta', { index: 0, delta: { type: 'signature_delta', signature: 'sig' } }),
      ev('content_block_stop', { index: 0 }),
      ev('content_block_start', { index: 1, content_block: { type: 'redacted_thinking', data: 'opaque' } }),
      ev('content_block_stop', { index: 1 }),
      ev('content_block_start', { index: 2, content_block: { type: 'text', text: '' } }),
      ev('content_block_delta', { index: 2, delta: { type: 'text_delta', text: 'Yes.' } }),
      ev('content_block_stop', { index: 2 }),
      ev('message_delta', { delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 40 } }),
      ev('message_stop', {}),
    ]
      .map((e) => t.translate(e))
      .join('')
      .split('\n\n')
      .filter((l) => l.startsWith('data: {'))
      .map((l) => (JSON.parse(l.slice(6)) as { choices: { delta: Obj }[] }).choices[0]!.delta);
    expect(chunks.map((d) => d['reasoning_content'] ?? '').join('')).toBe('Let me see.');
    expect(chunks.map((d) => d['content'] ?? '').join('')).toBe('Yes.');
    // Each block once done, with every one before it: the last value holds them all.
    expect(chunks.filter((d) => d['thinking_blocks']).map((d) => d['thinking_blocks'])).toEqual([
      blocks.slice(0, 1),
      blocks,
    ]);
  });

  it("thinks on through a tool loop when the turn's thinking_blocks come back, and leaves them out otherwise", () => {
    const thought = { type: 'thinking', thinking: 'Need the weather.', signature: 'sig-1' };
    const loop = [
      { role: 'user', content: 'Weather in Paris?' },
      {
        role: 'assistant',
        content: null,
        reasoning_content: 'Need the weather.',
        thinking_blocks: [thought],
        tool_calls: [{ id: 'toolu_1', type: 'function', function: { name: 'look', arguments: '{}' } }],
      },
      { role: 'tool', tool_call_id: 'toolu_1', content: '18C' },
    ];
    const tools = [{ type: 'function', function: { name: 'look', parameters: { type: 'object' } } }];
    const on = toAnthropicRequest(
      { messages: loop, tools, reasoning_effort: 'low', max_tokens: 4096 },
      'm',
      1,
    );
    expect(on['thinking']).toEqual({ type: 'enabled', budget_tokens: 1024 });
    expect((on['messages'] as { content: Obj[] }[])[1]!.content).toEqual([
      thought,
      { type: 'tool_use', id: 'toolu_1', name: 'look', input: {} },
    ]);
    // Without them, the turn goes without thinking, as before.
    const without = loop.map((m) => (m.role === 'assistant' ? { ...m, thinking_blocks: undefined } : m));
    expect(
      toAnthropicRequest({ messages: without, tools, reasoning_effort: 'low', max_tokens: 4096 }, 'm', 1)[
        'thinking'
      ],
    ).toBeUndefined();
    // A call that does not think sends no thinking back.
    const off = toAnthropicRequest({ messages: loop, tools, max_tokens: 4096 }, 'm', 1);
    expect(off['thinking']).toBeUndefined();
    expect((off['messages'] as { content: Obj[] }[])[1]!.content).toEqual([
      { type: 'tool_use', id: 'toolu_1', name: 'look', input: {} },
    ]);
    expect(() =>
      toAnthropicRequest(
        { messages: [{ role: 'assistant', content: 'x', thinking_blocks: [{ type: 'thinking' }] }, loop[0]] },
        'm',
        1,
      ),
    ).toThrow(/messages\[0\]\.thinking_blocks\[0\] must be a thinking block as the gateway gave it/);
  });
});

type Obj = Record<string, unknown>;
