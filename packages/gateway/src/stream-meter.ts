import type { Endpoint } from './providers.js';
import { eventData, eventName } from './sse.js';

type Obj = Record<string, unknown>;

/**
 * Watches a passing SSE stream for what metering needs: the usage object, the model that served
 * it, and the text so far (to estimate the tokens of a stream the client cut off). It parses only
 * the events that can carry these; the rest pass through untouched.
 */
export interface StreamMeter {
  /** Called for each whole event; returns false to keep the event from the client. */
  onEvent(ev: string): boolean;
  usage(): Obj | null;
  model(): string | null;
  /** Output text seen so far. */
  text(): string;
  /** An error event the upstream sent mid-stream, if any. */
  error(): string | null;
  /** Whether the stream's last event ([DONE], message_stop, response.completed) has passed: what
   * follows is the end of the body. */
  readonly done: boolean;
}

function parse(data: string): Obj | null {
  try {
    const v: unknown = JSON.parse(data);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : null;
  } catch {
    return null;
  }
}

/**
 * OpenAI chat completions: usage arrives in a last chunk with no choices (when include_usage).
 * Chunks are parsed only when they can carry usage or an error; the text for an estimate, and the
 * model of a stream with no usage chunk, are read from the kept chunks only when needed, so a normal
 * stream costs a few string checks a chunk.
 */
class ChatMeter implements StreamMeter {
  private u: Obj | null = null;
  private m: string | null = null;
  private readonly chunks: string[] = [];
  private err: string | null = null;
  done = false;

  constructor(private readonly hideUsageChunk: boolean) {}

  onEvent(ev: string): boolean {
    const data = eventData(ev);
    if (data === '[DONE]') this.done = true;
    if (data === null || data === '[DONE]') return true;
    let a = 0;
    let z = data.length - 1;
    while (a <= z && data.charCodeAt(a) <= 32) a++;
    while (z >= a && data.charCodeAt(z) <= 32) z--;
    if (data.charCodeAt(a) !== 123 || data.charCodeAt(z) !== 125) {
      this.err ??= 'malformed_sse';
      return true;
    }
    if (data.includes('"usage"') || data.includes('"error"')) {
      const chunk = parse(data);
      if (!chunk) {
        this.err ??= 'malformed_sse';
        return true;
      }
      if (typeof chunk['model'] === 'string') this.m = chunk['model'];
      if (chunk['error'] !== undefined) this.err ??= 'upstream_stream_error';
      const usage = chunk['usage'];
      if (usage && typeof usage === 'object') {
        this.u = usage as Obj;
        // The extra chunk we asked for: no choices, only usage.
        const choices = chunk['choices'];
        if (this.hideUsageChunk && Array.isArray(choices) && choices.length === 0) return false;
      }
    }
    this.chunks.push(data);
    return true;
  }

  usage = () => this.u;
  error = () => this.err;

  /** The model that served the stream: every chunk names it, so it is read off the usage chunk
   * (parsed anyway) or, for a stream cut off before it, off the first chunk kept. */
  model(): string | null {
    if (this.m === null && this.chunks.length > 0) {
      const m = parse(this.chunks[0]!)?.['model'];
      if (typeof m === 'string') this.m = m;
    }
    return this.m;
  }

  text(): string {
    const parts: string[] = [];
    for (const data of this.chunks) {
      const chunk = parse(data);
      const choices = chunk?.['choices'];
      if (!Array.isArray(choices)) continue;
      for (const c of choices as Obj[]) {
        const delta = c?.['delta'] as Obj | undefined;
        if (typeof delta?.['content'] === 'string') parts.push(delta['content']);
        const calls = delta?.['tool_calls'];
        if (Array.isArray(calls)) {
          for (const tc of calls as Obj[]) {
            const args = (tc?.['function'] as Obj | undefined)?.['arguments'];
            if (typeof args === 'string') parts.push(args);
          }
        }
      }
    }
    return parts.join('');
  }
}

/** OpenAI Responses: the terminal event carries the whole response, usage included. */
class ResponsesMeter implements StreamMeter {
  private u: Obj | null = null;
  private m: string | null = null;
  private parts: string[] = [];
  private err: string | null = null;
  done = false;

  onEvent(ev: string): boolean {
    const name = eventName(ev);
    if (name === 'response.output_text.delta') {
      const d = parse(eventData(ev) ?? '');
      if (typeof d?.['delta'] === 'string') this.parts.push(d['delta']);
      return true;
    }
    if (
      name === 'response.created' ||
      name === 'response.completed' ||
      name === 'response.incomplete' ||
      name === 'response.failed'
    ) {
      const d = parse(eventData(ev) ?? '');
      const r = d?.['response'] as Obj | undefined;
      if (typeof r?.['model'] === 'string') this.m = r['model'];
      if (r?.['usage'] && typeof r['usage'] === 'object') this.u = r['usage'] as Obj;
      if (name === 'response.failed') this.err ??= 'upstream_stream_error';
      if (name !== 'response.created') this.done = true;
    } else if (name === 'error') {
      this.err ??= 'upstream_stream_error';
    }
    return true;
  }
  usage = () => this.u;
  model = () => this.m;
  text = () => this.parts.join('');
  error = () => this.err;
}

/** Anthropic messages: input usage in message_start, the running output count in message_delta. */
class MessagesMeter implements StreamMeter {
  private u: Obj | null = null;
  private m: string | null = null;
  private parts: string[] = [];
  private err: string | null = null;
  done = false;

  onEvent(ev: string): boolean {
    const name = eventName(ev);
    if (name === 'content_block_delta') {
      const d = parse(eventData(ev) ?? '');
      const delta = d?.['delta'] as Obj | undefined;
      const text = delta?.['text'] ?? delta?.['partial_json'] ?? delta?.['thinking'];
      if (typeof text === 'string') this.parts.push(text);
    } else if (name === 'message_start') {
      const d = parse(eventData(ev) ?? '');
      const msg = d?.['message'] as Obj | undefined;
      if (typeof msg?.['model'] === 'string') this.m = msg['model'];
      if (msg?.['usage'] && typeof msg['usage'] === 'object') this.u = { ...(msg['usage'] as Obj) };
    } else if (name === 'message_delta') {
      const d = parse(eventData(ev) ?? '');
      const usage = d?.['usage'] as Obj | undefined;
      // message_delta counts are cumulative: the last one wins, field by field.
      if (usage) this.u = { ...(this.u ?? {}), ...usage };
    } else if (name === 'message_stop') {
      this.done = true;
    } else if (name === 'error') {
      this.err ??= 'upstream_stream_error';
    }
    return true;
  }
  usage = () => this.u;
  model = () => this.m;
  text = () => this.parts.join('');
  error = () => this.err;
}

export function streamMeter(endpoint: Endpoint, hideUsageChunk: boolean): StreamMeter {
  if (endpoint === 'responses') return new ResponsesMeter();
  if (endpoint === 'messages') return new MessagesMeter();
  return new ChatMeter(hideUsageChunk);
}
