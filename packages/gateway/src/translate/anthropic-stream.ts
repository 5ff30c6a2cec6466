import { readEvent } from './anthropic-blocks.js';
import { FINISH, openAiUsage } from './openai-to-anthropic.js';

type Obj = Record<string, unknown>;

/**
 * Anthropic stream events -> OpenAI chat.completion.chunk events, one by one as they arrive.
 * Text deltas become content deltas; a tool_use block becomes a tool call whose arguments stream
 * as input_json_delta arrives; message_delta gives the finish reason; the usage chunk is added
 * when the client asked for it.
 */
export class AnthropicToOpenAiStream {
  private id = 'chatcmpl-anthropic';
  private model = '';
  private usage: Obj = {};
  /** Anthropic content block index -> OpenAI tool call index. */
  private readonly tools = new Map<number, number>();
  /** The content block of the structured answer's tool, whose input streams as the content. */
  private answerBlock: number | null = null;
  /** Thinking blocks under way, by content block index, and those done (thinkingOf's shape). */
  private readonly thinking = new Map<number, Obj>();
  private readonly thought: Obj[] = [];

  /** `answer`: the name of the structured answer's tool (answerTool), if the request asked for one. */
  constructor(
    private readonly created: number,
    private readonly includeUsage: boolean,
    private readonly answer: string | null = null,
  ) {}

  private chunk(choice: Obj | null, extra: Obj = {}): string {
    const body = {
      id: this.id,
      object: 'chat.completion.chunk',
      created: this.created,
      model: this.model,
      choices: choice ? [{ index: 0, logprobs: null, ...choice }] : [],
      ...extra,
    };
    return `data: ${JSON.stringify(body)}\n\n`;
  }

  /** A thinking block done: every one so far, as the message's `thinking_blocks` (a client that
   * keeps the last value of a field it does not know has them all). */
  private thoughtOne(block: Obj): string {
    this.thought.push(block);
    return this.chunk({ delta: { thinking_blocks: [...this.thought] }, finish_reason: null });
  }

  /** The OpenAI events for one Anthropic event (often none). */
  translate(ev: string): string {
    const read = readEvent(ev);
    if (!read) return '';
    const { name, d } = read;
    switch (name) {
      case 'message_start': {
        const m = (d['message'] ?? {}) as Obj;
        this.id = `chatcmpl-${String(m['id'] ?? '').replace(/^msg_/, '')}`;
        this.model = String(m['model'] ?? '');
        this.usage = { ...((m['usage'] as Obj | undefined) ?? {}) };
        return this.chunk({ delta: { role: 'assistant', content: '' }, finish_reason: null });
      }
      case 'content_block_start': {
        const block = (d['content_block'] ?? {}) as Obj;
        if (block['type'] === 'thinking') {
          this.thinking.set(Number(d['index']), { type: 'thinking', thinking: '', signature: '' });
          return '';
        }
        if (block['type'] === 'redacted_thinking')
          return this.thoughtOne({ type: 'redacted_thinking', data: block['data'] });
        if (block['type'] !== 'tool_use') return '';
        if (this.answer !== null && block['name'] === this.answer) {
          this.answerBlock = Number(d['index']);
          return '';
        }
        const index = this.tools.size;
        this.tools.set(Number(d['index']), index);
        return this.chunk({
          delta: {
            tool_calls: [
              { index, id: block['id'], type: 'function', function: { name: block['name'], arguments: '' } },
            ],
          },
          finish_reason: null,
        });
      }
      case 'content_block_delta': {
        const delta = (d['delta'] ?? {}) as Obj;
        // Made to call the answer's tool, the model writes no text before it: text comes only
        // when it does not answer (a refusal), and is passed on as such.
        if (delta['type'] === 'text_delta')
          return this.chunk({ delta: { content: delta['text'] }, finish_reason: null });
        // Thinking streams readable as reasoning_content; its block, once signed, as thinking_blocks.
        const thinking = this.thinking.get(Number(d['index']));
        if (thinking && delta['type'] === 'thinking_delta') {
          thinking['thinking'] += String(delta['thinking'] ?? '');
          return this.chunk({ delta: { reasoning_content: delta['thinking'] }, finish_reason: null });
        }
        if (thinking && delta['type'] === 'signature_delta') {
          thinking['signature'] += String(delta['signature'] ?? '');
          return '';
        }
        if (delta['type'] === 'input_json_delta' && Number(d['index']) === this.answerBlock)
          return this.chunk({ delta: { content: delta['partial_json'] }, finish_reason: null });
        if (delta['type'] === 'input_json_delta') {
          const index = this.tools.get(Number(d['index'])) ?? 0;
          return this.chunk({
            delta: { tool_calls: [{ index, function: { arguments: delta['partial_json'] } }] },
            finish_reason: null,
          });
        }
        return '';
      }
      case 'message_delta': {
        const usage = d['usage'] as Obj | undefined;
        if (usage) this.usage = { ...this.usage, ...usage };
        const reason = String((d['delta'] as Obj | undefined)?.['stop_reason']);
        // The answer's tool call is the answer; calls of the request's own tools beside it make
        // the turn one of the tool loop.
        const finish =
          this.answerBlock !== null && this.tools.size === 0 && reason === 'tool_use'
            ? 'stop'
            : (FINISH[reason] ?? 'stop');
        return this.chunk({ delta: {}, finish_reason: finish });
      }
      case 'content_block_stop': {
        const thinking = this.thinking.get(Number(d['index']));
        if (!thinking) return '';
        this.thinking.delete(Number(d['index']));
        return this.thoughtOne(thinking);
      }
      case 'message_stop':
        return `${this.includeUsage ? this.chunk(null, { usage: openAiUsage(this.usage) }) : ''}data: [DONE]\n\n`;
      case 'error':
        return `data: ${JSON.stringify({ error: d['error'] ?? d })}\n\n`;
      default:
        return '';
    }
  }
}
