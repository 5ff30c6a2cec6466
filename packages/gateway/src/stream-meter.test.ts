import { describe, expect, it } from 'vitest';
import { SseSplitter } from './sse.js';
import { carriesUsage, streamMeter } from './stream-meter.js';
import { chatRecordings } from './testing/recorded.js';

describe('carriesUsage', () => {
  it('passes over "usage":null, with or without spaces, and takes anything else as usage', () => {
    expect(carriesUsage('{"id":"x","choices":[{"delta":{"content":"Hi"}}],"usage":null}')).toBe(false);
    expect(carriesUsage('{"usage" : null,"id":"x"}')).toBe(false);
    expect(carriesUsage('{"id":"x","choices":[]}')).toBe(false);
    expect(carriesUsage('{"choices":[],"usage":{"prompt_tokens":3}}')).toBe(true);
    // The value "usage" (a string's own quotes are escaped): parsed to be sure.
    expect(carriesUsage('{"choices":[{"delta":{"content":"usage"}}],"usage":null}')).toBe(true);
    expect(carriesUsage('{"choices":[{"delta":{"content":"say \\"usage\\": 1"}}]}')).toBe(false);
  });
});

describe('the chat stream meter on recorded OpenAI streams', () => {
  // Recorded with include_usage: every chunk but the last carries "usage":null.
  const streams = chatRecordings().filter(
    (r) =>
      r.status === 200 &&
      Array.isArray(r.body) &&
      (r.body as Record<string, unknown>[]).some((c) => 'usage' in c && c['usage'] === null),
  );

  it('finds those streams in the recordings', () => {
    expect(streams.length).toBeGreaterThan(5);
  });

  it('reads the usage, the model and the text of each, as the chunks say', () => {
    for (const rec of streams) {
      const chunks = rec.body as Record<string, unknown>[];
      const wire = `${chunks.map((c) => `data: ${JSON.stringify(c)}\n\n`).join('')}data: [DONE]\n\n`;
      const meter = streamMeter('chat', true);
      const splitter = new SseSplitter();
      const passed: string[] = [];
      // Cut at arbitrary points, as a socket would.
      for (let i = 0; i < wire.length; i += 97)
        for (const ev of splitter.push(wire.slice(i, i + 97))) if (meter.onEvent(ev)) passed.push(ev);
      const last = chunks.at(-1)!;
      expect(meter.usage()).toEqual(last['usage']);
      expect(meter.model()).toBe(last['model']);
      expect(meter.serviceTier()).toBe(last['service_tier']);
      expect(meter.done).toBe(true);
      expect(meter.error()).toBeNull();
      const text = chunks
        .flatMap((c) =>
          (c['choices'] as { delta?: { content?: string } }[]).map((ch) => ch.delta?.content ?? ''),
        )
        .join('');
      expect(meter.text()).toBe(text);
      // The usage chunk is hidden from a client that did not ask for it; every other event passes.
      expect(passed.length).toBe(chunks.length);
    }
  });
});

describe('the service tier of a stream', () => {
  it("is read off a chat stream's usage chunk and a Responses stream's last event", () => {
    const chat = streamMeter('chat', false);
    chat.onEvent(
      'data: {"id":"c","model":"gpt-4o","service_tier":"priority","choices":[{"delta":{"content":"Hi"}}],"usage":null}',
    );
    chat.onEvent(
      'data: {"id":"c","model":"gpt-4o","service_tier":"priority","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":1}}',
    );
    expect(chat.serviceTier()).toBe('priority');
    const responses = streamMeter('responses', false);
    responses.onEvent(
      'event: response.created\ndata: {"response":{"model":"o3","service_tier":"auto","usage":null}}',
    );
    expect(responses.serviceTier()).toBe('auto');
    responses.onEvent(
      'event: response.completed\ndata: {"response":{"model":"o3","service_tier":"flex","usage":{"input_tokens":5,"output_tokens":1}}}',
    );
    expect(responses.serviceTier()).toBe('flex');
  });
});

describe("a Responses stream's hosted tool calls", () => {
  const item = (type: string, status = 'completed') =>
    `event: response.output_item.done\ndata: ${JSON.stringify({ type: 'response.output_item.done', item: { type, id: 'x', status } })}`;

  it('counts each search as its item ends, so that a stream cut off still bills those made', () => {
    const m = streamMeter('responses', false);
    m.onEvent('event: response.created\ndata: {"response":{"model":"gpt-4.1","output":[],"usage":null}}');
    expect(m.toolCalls()).toBeNull();
    m.onEvent(item('web_search_call'));
    m.onEvent(item('web_search_call', 'failed'));
    m.onEvent(item('file_search_call'));
    m.onEvent(item('image_generation_call'));
    m.onEvent(item('image_generation_call', 'failed'));
    m.onEvent(item('message'));
    expect(m.toolCalls()).toEqual({ web_searches: 1, file_searches: 1, image_generations: 1 });
    expect(m.done).toBe(false);
  });

  it("takes the final response's list over the items counted on the way", () => {
    const m = streamMeter('responses', false);
    m.onEvent(item('web_search_call'));
    m.onEvent(item('web_search_call'));
    const output = [{ type: 'web_search_call', status: 'completed' }, { type: 'message' }];
    m.onEvent(
      `event: response.completed\ndata: ${JSON.stringify({ response: { model: 'gpt-4.1', output, usage: { input_tokens: 1, output_tokens: 1 } } })}`,
    );
    expect(m.toolCalls()).toEqual({ web_searches: 1 });
    expect(streamMeter('chat', false).toolCalls()).toBeNull();
    expect(streamMeter('messages', false).toolCalls()).toBeNull();
  });
});

describe("a Responses stream's code interpreter containers", () => {
  const code = (container: string) =>
    `event: response.output_item.done\ndata: ${JSON.stringify({
      type: 'response.output_item.done',
      item: {
        type: 'code_interpreter_call',
        id: 'ci',
        status: 'completed',
        container_id: container,
        code: 'x',
      },
    })}`;

  it('notes each container as a code call ends, once, and the final list adds to them', () => {
    const m = streamMeter('responses', false);
    expect(m.containers()).toBeNull();
    m.onEvent(code('cntr_a'));
    m.onEvent(code('cntr_a'));
    expect(m.containers()).toEqual(['cntr_a']);
    // A stream cut off here still has the container it used.
    const output = [
      { type: 'code_interpreter_call', status: 'completed', container_id: 'cntr_a' },
      { type: 'code_interpreter_call', status: 'failed', container_id: 'cntr_b' },
      { type: 'message' },
    ];
    m.onEvent(
      `event: response.completed\ndata: ${JSON.stringify({ response: { model: 'gpt-4.1', output, usage: { input_tokens: 1, output_tokens: 1 } } })}`,
    );
    expect(m.containers()).toEqual(['cntr_a', 'cntr_b']);
    expect(m.toolCalls()).toBeNull();
    expect(streamMeter('chat', false).containers()).toBeNull();
    expect(streamMeter('messages', false).containers()).toBeNull();
  });
});

describe('the stream meter on a legacy completion', () => {
  it('reads its text, for the estimate of a stream cut before its usage came', () => {
    const meter = streamMeter('completions', true);
    for (const w of ['\n\nThe', ' quick', ' brown'])
      meter.onEvent(
        `data: ${JSON.stringify({ id: 'cmpl-1', object: 'text_completion', model: 'gpt-3.5-turbo-instruct', choices: [{ text: w, index: 0, logprobs: null, finish_reason: null }] })}\n\n`,
      );
    expect(meter.text()).toBe('\n\nThe quick brown');
    expect(meter.usage()).toBeNull();
  });
});
