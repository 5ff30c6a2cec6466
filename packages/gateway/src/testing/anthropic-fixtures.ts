/**
 * Anthropic Messages API fixtures, built from Anthropic's documented response and streaming
 * formats (message, content blocks, usage with cache fields; message_start ... message_stop).
 */
export interface AnthropicUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number;
  cache_read_input_tokens?: number;
  /** How the cache writes split between the 5-minute and the 1-hour cache. */
  cache_creation?: { ephemeral_5m_input_tokens: number; ephemeral_1h_input_tokens: number };
  /** The pricing modes that served the call: fast mode, and where inference ran. */
  speed?: 'fast' | 'standard';
  inference_geo?: string;
}

export function anthropicMessage(
  model: string,
  text: string,
  usage: AnthropicUsage,
): Record<string, unknown> {
  return {
    id: 'msg_01XFDUDYJgAACzvnptvVoYEL',
    type: 'message',
    role: 'assistant',
    model,
    content: [{ type: 'text', text }],
    stop_reason: 'end_turn',
    stop_sequence: null,
    usage,
  };
}

export function anthropicToolUse(model: string, usage: AnthropicUsage): Record<string, unknown> {
  return {
    id: 'msg_01Aq9w938a90dw8q',
    type: 'message',
    role: 'assistant',
    model,
    content: [
      { type: 'text', text: 'I will look that up.' },
      {
        type: 'tool_use',
        id: 'toolu_01A09q90qw90lq917835lq9',
        name: 'get_weather',
        input: { location: 'Paris' },
      },
    ],
    stop_reason: 'tool_use',
    stop_sequence: null,
    usage,
  };
}

const ev = (name: string, data: unknown) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;

function messageStart(model: string, usage: AnthropicUsage): string {
  return ev('message_start', {
    type: 'message_start',
    message: {
      id: 'msg_01stream',
      type: 'message',
      role: 'assistant',
      model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: {
        input_tokens: usage.input_tokens,
        cache_creation_input_tokens: usage.cache_creation_input_tokens ?? 0,
        cache_read_input_tokens: usage.cache_read_input_tokens ?? 0,
        ...(usage.cache_creation ? { cache_creation: usage.cache_creation } : {}),
        output_tokens: 1,
        ...(usage.speed ? { speed: usage.speed } : {}),
        ...(usage.inference_geo ? { inference_geo: usage.inference_geo } : {}),
      },
    },
  });
}

function blockDelta(index: number, delta: Record<string, unknown>): string {
  return ev('content_block_delta', { type: 'content_block_delta', index, delta });
}

function messageEnd(usage: AnthropicUsage, stopReason: string): string[] {
  return [
    ev('message_delta', {
      type: 'message_delta',
      delta: { stop_reason: stopReason, stop_sequence: null },
      usage: { output_tokens: usage.output_tokens },
    }),
    ev('message_stop', { type: 'message_stop' }),
  ];
}

/** The documented event sequence of a streamed message, as SSE text events. */
export function anthropicStream(model: string, pieces: string[], usage: AnthropicUsage): string[] {
  const out = [
    messageStart(model, usage),
    ev('content_block_start', {
      type: 'content_block_start',
      index: 0,
      content_block: { type: 'text', text: '' },
    }),
    ev('ping', { type: 'ping' }),
  ];
  for (const p of pieces) out.push(blockDelta(0, { type: 'text_delta', text: p }));
  out.push(ev('content_block_stop', { type: 'content_block_stop', index: 0 }));
  out.push(...messageEnd(usage, 'end_turn'));
  return out;
}

/** A streamed tool call: its tool_use block, whose input comes as input_json_delta in pieces (the
 * first empty, as Anthropic sends it), and stop_reason tool_use. */
export function anthropicToolStream(
  model: string,
  usage: AnthropicUsage,
  tool: { id: string; name: string; input: Record<string, unknown> },
): string[] {
  const json = JSON.stringify(tool.input);
  const half = Math.floor(json.length / 2);
  const out = [
    messageStart(model, usage),
    ev('content_block_start', {
      type: 'content_block_start',
      index: 0,
      content_block: { type: 'tool_use', id: tool.id, name: tool.name, input: {} },
    }),
  ];
  for (const partial of ['', json.slice(0, half), json.slice(half)])
    out.push(blockDelta(0, { type: 'input_json_delta', partial_json: partial }));
  out.push(ev('content_block_stop', { type: 'content_block_stop', index: 0 }));
  out.push(...messageEnd(usage, 'tool_use'));
  return out;
}

/** The mock's thinking: what a model with extended thinking on writes before its answer, signed. */
export const MOCK_THOUGHT = {
  type: 'thinking',
  thinking: 'The user asks; I answer.',
  signature: 'sig-mock-thought',
};

/** A message with the mock's thinking block first, as Anthropic answers with thinking on. */
export function withThinking(message: Record<string, unknown>): Record<string, unknown> {
  return { ...message, content: [MOCK_THOUGHT, ...((message['content'] as unknown[]) ?? [])] };
}

/** A stream with the mock's thinking block first (its text in two deltas, then its signature), the
 * other blocks one index on. */
export function withThinkingStream(events: string[]): string[] {
  const shifted = events.map((e) => {
    const m = /^event: (\w+)\ndata: (.*)\n\n$/s.exec(e);
    if (!m) return e;
    const data = JSON.parse(m[2]!) as Record<string, unknown>;
    if (typeof data['index'] !== 'number') return e;
    return ev(m[1]!, { ...data, index: data['index'] + 1 });
  });
  const half = Math.floor(MOCK_THOUGHT.thinking.length / 2);
  return [
    shifted[0]!,
    ev('content_block_start', {
      type: 'content_block_start',
      index: 0,
      content_block: { type: 'thinking', thinking: '', signature: '' },
    }),
    blockDelta(0, { type: 'thinking_delta', thinking: MOCK_THOUGHT.thinking.slice(0, half) }),
    blockDelta(0, { type: 'thinking_delta', thinking: MOCK_THOUGHT.thinking.slice(half) }),
    blockDelta(0, { type: 'signature_delta', signature: MOCK_THOUGHT.signature }),
    ev('content_block_stop', { type: 'content_block_stop', index: 0 }),
    ...shifted.slice(1),
  ];
}
