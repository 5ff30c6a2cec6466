import { readEvent, reasoningItem } from './anthropic-blocks.js';
import { responseObject, responsesAnswerTool } from './responses-to-anthropic.js';

type Obj = Record<string, unknown>;

interface Item {
  /** The Response output item as it stands. */
  item: Obj;
  outputIndex: number;
  /** Text so far (a message) or arguments so far (a function call). */
  acc: string;
  /** A reasoning item's thinking block as it stands (thinkingOf's shape): its text and signature so
   * far, or a redacted block's data. */
  thought?: Obj;
}

/**
 * Anthropic stream events -> Responses API stream events, one by one as they arrive:
 * message_start opens the response (response.created, response.in_progress); a text block becomes
 * a message item whose text streams as output_text deltas; a tool_use block becomes a
 * function_call item whose arguments stream; message_stop closes it with response.completed (or
 * response.incomplete), carrying the whole response with its usage.
 */
export class AnthropicToResponsesStream {
  private seq = 0;
  private id = 'resp_anthropic';
  private model = '';
  private usage: Obj = {};
  private stopReason: unknown = null;
  private readonly output: Obj[] = [];
  /** Anthropic content block index -> the item it feeds. */
  private readonly blocks = new Map<number, Item>();
  /** The structured answer's tool (responsesAnswerTool): its call streams as the answer's text. */
  private readonly answer: string | null;

  constructor(
    private readonly request: Obj,
    private readonly created: number,
  ) {
    this.answer = responsesAnswerTool(request)?.name ?? null;
  }

  private ev(type: string, fields: Obj): string {
    return `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: this.seq++, ...fields })}\n\n`;
  }

  private snapshot(final: boolean): Obj {
    return responseObject(this.request, {
      id: this.id,
      model: this.model,
      created: this.created,
      output: this.output,
      stopReason: final ? (this.stopReason ?? 'end_turn') : null,
      usage: final ? this.usage : null,
    });
  }

  /** The Responses events for one Anthropic event (often none). */
  translate(ev: string): string {
    const read = readEvent(ev);
    if (!read) return '';
    const { name, d } = read;
    switch (name) {
      case 'message_start': {
        const m = (d['message'] ?? {}) as Obj;
        this.id = `resp_${String(m['id'] ?? '').replace(/^msg_/, '')}`;
        this.model = String(m['model'] ?? '');
        this.usage = { ...((m['usage'] as Obj | undefined) ?? {}) };
        const response = this.snapshot(false);
        return this.ev('response.created', { response }) + this.ev('response.in_progress', { response });
      }
      case 'content_block_start':
        return this.start(Number(d['index']), (d['content_block'] ?? {}) as Obj);
      case 'content_block_delta':
        return this.delta(Number(d['index']), (d['delta'] ?? {}) as Obj);
      case 'content_block_stop':
        return this.stop(Number(d['index']));
      case 'message_delta': {
        const usage = d['usage'] as Obj | undefined;
        if (usage) this.usage = { ...this.usage, ...usage };
        const reason = (d['delta'] as Obj | undefined)?.['stop_reason'];
        if (reason !== undefined && reason !== null) this.stopReason = reason;
        return '';
      }
      case 'message_stop': {
        const response = this.snapshot(true);
        const type = response['status'] === 'incomplete' ? 'response.incomplete' : 'response.completed';
        return this.ev(type, { response });
      }
      case 'error': {
        const e = (d['error'] ?? {}) as Obj;
        return this.ev('error', {
          code: String(e['type'] ?? 'api_error'),
          message: String(e['message'] ?? 'upstream stream error'),
          param: null,
        });
      }
      default:
        return '';
    }
  }

  private start(index: number, block: Obj): string {
    const outputIndex = this.output.length;
    let item: Obj;
    // A structured answer's message is the answer tool's input. Made to call that tool, the model
    // writes no text before it: text comes only when it does not answer, and is passed on.
    const answer = this.answer !== null && block['type'] === 'tool_use' && block['name'] === this.answer;
    if (block['type'] === 'text' || answer) {
      item = {
        id: `msg_${this.id.slice(5)}_${outputIndex}`,
        type: 'message',
        status: 'in_progress',
        role: 'assistant',
        content: [],
      };
    } else if (block['type'] === 'tool_use') {
      item = {
        id: `fc_${String(block['id'] ?? '').replace(/^toolu_/, '')}`,
        type: 'function_call',
        status: 'in_progress',
        call_id: block['id'],
        name: block['name'],
        arguments: '',
      };
    } else if (block['type'] === 'thinking' || block['type'] === 'redacted_thinking') {
      // Claude's thinking, as a reasoning item whose summary streams (reasoningItem).
      item = { id: `rs_${this.id.slice(5)}_${outputIndex}`, type: 'reasoning', summary: [] };
    } else {
      return ''; // server-tool blocks have no Responses item here
    }
    this.output.push(item);
    const thought =
      block['type'] === 'thinking'
        ? { type: 'thinking', thinking: '', signature: '' }
        : block['type'] === 'redacted_thinking'
          ? { type: 'redacted_thinking', data: String(block['data'] ?? '') }
          : undefined;
    this.blocks.set(index, { item, outputIndex, acc: '', ...(thought ? { thought } : {}) });
    let out = this.ev('response.output_item.added', { output_index: outputIndex, item: { ...item } });
    if (thought?.type === 'thinking') {
      out += this.ev('response.reasoning_summary_part.added', {
        item_id: item['id'],
        output_index: outputIndex,
        summary_index: 0,
        part: { type: 'summary_text', text: '' },
      });
    }
    if (item['type'] === 'message') {
      out += this.ev('response.content_part.added', {
        item_id: item['id'],
        output_index: outputIndex,
        content_index: 0,
        part: { type: 'output_text', text: '', annotations: [] },
      });
    }
    return out;
  }

  private delta(index: number, delta: Obj): string {
    const b = this.blocks.get(index);
    if (!b) return '';
    if (b.thought && delta['type'] === 'signature_delta') {
      b.thought['signature'] += String(delta['signature'] ?? '');
      return '';
    }
    if (b.thought && delta['type'] === 'thinking_delta') {
      const text = String(delta['thinking'] ?? '');
      b.thought['thinking'] += text;
      return this.ev('response.reasoning_summary_text.delta', {
        item_id: b.item['id'],
        output_index: b.outputIndex,
        summary_index: 0,
        delta: text,
      });
    }
    const piece = delta['type'] === 'text_delta' ? delta['text'] : delta['partial_json'];
    if (
      b.item['type'] === 'message' &&
      (delta['type'] === 'text_delta' || delta['type'] === 'input_json_delta')
    ) {
      const text = String(piece ?? '');
      b.acc += text;
      return this.ev('response.output_text.delta', {
        item_id: b.item['id'],
        output_index: b.outputIndex,
        content_index: 0,
        delta: text,
        logprobs: [],
      });
    }
    if (delta['type'] === 'input_json_delta' && b.item['type'] === 'function_call') {
      const part = String(delta['partial_json'] ?? '');
      b.acc += part;
      return this.ev('response.function_call_arguments.delta', {
        item_id: b.item['id'],
        output_index: b.outputIndex,
        delta: part,
      });
    }
    return '';
  }

  private stop(index: number): string {
    const b = this.blocks.get(index);
    if (!b) return '';
    this.blocks.delete(index);
    const { item, outputIndex } = b;
    item['status'] = 'completed';
    let out = '';
    if (b.thought) {
      Object.assign(item, reasoningItem(b.thought, String(item['id'])));
      if (b.thought['type'] === 'thinking') {
        const text = String(b.thought['thinking']);
        const at = { item_id: item['id'], output_index: outputIndex, summary_index: 0 };
        const part = { type: 'summary_text', text };
        out += this.ev('response.reasoning_summary_text.done', { ...at, text });
        out += this.ev('response.reasoning_summary_part.done', { ...at, part });
      }
      return out + this.ev('response.output_item.done', { output_index: outputIndex, item });
    }
    if (item['type'] === 'message') {
      const part = { type: 'output_text', text: b.acc, annotations: [], logprobs: [] };
      item['content'] = [part];
      const at = { item_id: item['id'], output_index: outputIndex, content_index: 0 };
      out += this.ev('response.output_text.done', { ...at, text: b.acc, logprobs: [] });
      out += this.ev('response.content_part.done', { ...at, part });
    } else {
      const args = b.acc === '' ? '{}' : b.acc;
      item['arguments'] = args;
      out += this.ev('response.function_call_arguments.done', {
        item_id: item['id'],
        output_index: outputIndex,
        name: item['name'],
        arguments: args,
      });
    }
    return out + this.ev('response.output_item.done', { output_index: outputIndex, item });
  }
}
