import { eventData } from '../sse.js';
import { anthropicErrorType, anthropicUsage, messageId, STOP } from './anthropic-to-openai.js';

type Obj = Record<string, unknown>;

const event = (name: string, data: Obj): string => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;

/**
 * OpenAI chat.completion.chunk events -> Anthropic stream events, one by one as they arrive.
 * Content deltas become a text block's text_delta; each tool call a tool_use block whose
 * input_json_delta streams as its arguments arrive; the finish reason and the usage chunk (asked
 * for upstream) become message_delta at [DONE], then message_stop.
 */
export class OpenAiToAnthropicStream {
  private started = false;
  private ended = false;
  /** The open content block: its index, and for a tool call, OpenAI's index of it. */
  private open: { index: number; tool: number | null } | null = null;
  private nextIndex = 0;
  /** OpenAI tool call index -> Anthropic content block index. */
  private readonly tools = new Map<number, number>();
  private stopReason: string | null = null;
  private usage: Obj | null = null;

  /** `inputTokens`: the prompt's tokens as the gateway counted them, for message_start, which
   * Anthropic's stream opens with the input count and OpenAI's only gives at its end. message_delta
   * then carries the upstream's own counts, which Anthropic's client takes as the message's. */
  constructor(private readonly inputTokens = 0) {}

  private start(chunk: Obj): string {
    if (this.started) return '';
    this.started = true;
    return event('message_start', {
      type: 'message_start',
      message: {
        id: messageId(chunk['id']),
        type: 'message',
        role: 'assistant',
        model: chunk['model'] ?? '',
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: this.inputTokens, output_tokens: 0 },
      },
    });
  }

  private close(): string {
    if (!this.open) return '';
    const index = this.open.index;
    this.open = null;
    return event('content_block_stop', { type: 'content_block_stop', index });
  }

  private openBlock(block: Obj, tool: number | null): string {
    const out = this.close();
    const index = this.nextIndex++;
    this.open = { index, tool };
    return out + event('content_block_start', { type: 'content_block_start', index, content_block: block });
  }

  private delta(index: number, delta: Obj): string {
    return event('content_block_delta', { type: 'content_block_delta', index, delta });
  }

  /** The Anthropic events for one OpenAI event (often none). */
  translate(ev: string): string {
    const data = eventData(ev);
    if (data === null || this.ended) return '';
    if (data.trim() === '[DONE]') return this.finish();
    let chunk: Obj;
    try {
      chunk = JSON.parse(data) as Obj;
    } catch {
      return '';
    }
    if (chunk['error'] !== undefined) {
      const e = chunk['error'] as Obj | string;
      const message = typeof e === 'string' ? e : String(e?.['message'] ?? 'upstream error');
      return event('error', { type: 'error', error: { type: anthropicErrorType(500), message } });
    }
    let out = this.start(chunk);
    if (chunk['usage'] && typeof chunk['usage'] === 'object') this.usage = chunk['usage'] as Obj;
    const choice = ((chunk['choices'] as Obj[] | undefined) ?? [])[0];
    if (!choice) return out;
    const delta = (choice['delta'] ?? {}) as Obj;
    // A refusal streams as text of its own, which an Anthropic message gives as text.
    const text =
      typeof delta['content'] === 'string' && delta['content'] !== '' ? delta['content'] : delta['refusal'];
    if (typeof text === 'string' && text !== '') {
      if (this.open === null || this.open.tool !== null)
        out += this.openBlock({ type: 'text', text: '' }, null);
      out += this.delta(this.open!.index, { type: 'text_delta', text });
    }
    for (const tc of (delta['tool_calls'] as Obj[] | undefined) ?? []) {
      const at = Number(tc['index'] ?? 0);
      const fn = (tc['function'] ?? {}) as Obj;
      if (!this.tools.has(at)) {
        out += this.openBlock({ type: 'tool_use', id: tc['id'], name: fn['name'], input: {} }, at);
        this.tools.set(at, this.open!.index);
      }
      const args = fn['arguments'];
      if (typeof args === 'string' && args !== '')
        out += this.delta(this.tools.get(at)!, { type: 'input_json_delta', partial_json: args });
    }
    const reason = choice['finish_reason'];
    if (typeof reason === 'string') {
      this.stopReason = STOP[reason] ?? 'end_turn';
      out += this.close();
    }
    return out;
  }

  /** At [DONE]: the block still open closed, the stop reason and the usage, and the end. */
  private finish(): string {
    this.ended = true;
    let out = this.start({});
    out += this.close();
    out += event('message_delta', {
      type: 'message_delta',
      delta: { stop_reason: this.stopReason ?? 'end_turn', stop_sequence: null },
      usage: anthropicUsage(this.usage),
    });
    return out + event('message_stop', { type: 'message_stop' });
  }
}
