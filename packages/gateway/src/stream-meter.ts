import type { HostedToolCalls } from '@tally/core';
import { countToolCall, hostedToolCalls } from './answer-meta.js';
import { addContainer } from './containers.js';
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
  /** The service tier the stream names (OpenAI's `service_tier`), or null. */
  serviceTier(): string | null;
  /** The hosted tool calls billed per call that the stream has made so far (Responses), or null. */
  toolCalls(): HostedToolCalls | null;
  /** The containers the stream's code interpreter calls have used so far (Responses), or null. */
  containers(): string[] | null;
  /** The id of what the stream answers, for its follow-ups when the provider stores it: a Responses
   * stream's response once its first event has named it, a chat completion's from its usage chunk;
   * null for Anthropic's. */
  responseId(): string | null;
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
 * The output text of a stream's deltas, read only when asked for (a stream cut off, or one under
 * way when the process keeps its progress): a stream that ends normally is never parsed event by
 * event. Each delta is read once, however often the text is asked for.
 */
class DeltaText {
  private readonly raw: string[] = [];
  private readonly parts: string[] = [];
  private read = 0;

  constructor(private readonly extract: (data: string, out: string[]) => void) {}

  push(data: string): void {
    this.raw.push(data);
  }

  get first(): string | undefined {
    return this.raw[0];
  }

  text(): string {
    for (; this.read < this.raw.length; this.read++) this.extract(this.raw[this.read]!, this.parts);
    return this.parts.join('');
  }
}

function chatDelta(data: string, out: string[]): void {
  const choices = parse(data)?.['choices'];
  if (!Array.isArray(choices)) return;
  for (const c of choices as Obj[]) {
    // A legacy completion's text.
    if (typeof c?.['text'] === 'string') out.push(c['text']);
    const delta = c?.['delta'] as Obj | undefined;
    if (typeof delta?.['content'] === 'string') out.push(delta['content']);
    const calls = delta?.['tool_calls'];
    if (Array.isArray(calls)) {
      for (const tc of calls as Obj[]) {
        const args = (tc?.['function'] as Obj | undefined)?.['arguments'];
        if (typeof args === 'string') out.push(args);
      }
    }
  }
}

function responsesDelta(data: string, out: string[]): void {
  const d = parse(data)?.['delta'];
  if (typeof d === 'string') out.push(d);
}

function messagesDelta(data: string, out: string[]): void {
  const delta = parse(data)?.['delta'] as Obj | undefined;
  const text = delta?.['text'] ?? delta?.['partial_json'] ?? delta?.['thinking'];
  if (typeof text === 'string') out.push(text);
}

/**
 * Whether a chunk may carry a usage object: it names `usage`, other than as `"usage":null`. With
 * include_usage, OpenAI puts `"usage":null` in every chunk before the last, so a stream of
 * hundreds of chunks would otherwise be parsed whole, chunk by chunk. `"usage"` outside a key
 * (a string's quotes are escaped, so only the value "usage" can look like this) is parsed to be
 * sure.
 */
export function carriesUsage(data: string): boolean {
  let i = data.indexOf('"usage"');
  while (i >= 0) {
    let j = i + 7;
    while (j < data.length && data.charCodeAt(j) <= 32) j++;
    if (data.charCodeAt(j) !== 58) return true;
    j++;
    while (j < data.length && data.charCodeAt(j) <= 32) j++;
    if (!data.startsWith('null', j)) return true;
    i = data.indexOf('"usage"', j + 4);
  }
  return false;
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
  private id: string | null = null;
  private tier: string | null = null;
  private readonly chunks = new DeltaText(chatDelta);
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
    if (carriesUsage(data) || data.includes('"error"')) {
      const chunk = parse(data);
      if (!chunk) {
        this.err ??= 'malformed_sse';
        return true;
      }
      if (typeof chunk['model'] === 'string') this.m = chunk['model'];
      // Every chunk names the completion; the usage chunk is the one parsed anyway.
      if (typeof chunk['id'] === 'string') this.id = chunk['id'];
      if (chunk['error'] !== undefined) this.err ??= 'upstream_stream_error';
      const usage = chunk['usage'];
      if (usage && typeof usage === 'object') {
        this.u = usage as Obj;
        // Every chunk names the tier; the usage chunk is the one parsed anyway.
        if (typeof chunk['service_tier'] === 'string') this.tier = chunk['service_tier'];
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
  serviceTier = () => this.tier;
  /** A chat completion lists no hosted tool calls. */
  toolCalls = () => null;
  containers = () => null;
  /** The completion's id (for a stored one's follow-ups), from the usage chunk. */
  responseId = () => this.id;

  /** The model that served the stream: every chunk names it, so it is read off the usage chunk
   * (parsed anyway) or, for a stream cut off before it, off the first chunk kept. */
  model(): string | null {
    const first = this.chunks.first;
    if (this.m === null && first !== undefined) {
      const m = parse(first)?.['model'];
      if (typeof m === 'string') this.m = m;
    }
    return this.m;
  }

  text(): string {
    return this.chunks.text();
  }
}

/** The item types (quoted at their end) of a Responses stream's ended items that metering reads:
 * hosted tool calls billed per call, and code interpreter calls for their containers. */
const HOSTED_ITEMS = ['_search_call"', 'image_generation_call"', 'code_interpreter_call"'];

/** OpenAI Responses: the terminal event carries the whole response, usage included. */
class ResponsesMeter implements StreamMeter {
  private u: Obj | null = null;
  private m: string | null = null;
  private id: string | null = null;
  private tier: string | null = null;
  private tools: HostedToolCalls | null = null;
  private used: string[] | null = null;
  private readonly deltas = new DeltaText(responsesDelta);
  private err: string | null = null;
  done = false;

  onEvent(ev: string): boolean {
    const name = eventName(ev);
    if (name === 'response.output_text.delta' || name === 'response.function_call_arguments.delta') {
      this.deltas.push(eventData(ev) ?? '');
      return true;
    }
    if (name === 'response.output_item.done') {
      // Each hosted tool call as it ends, so that a stream cut off later still bills those made.
      // Every item ends so, a message with its whole text: only a hosted tool's is parsed.
      const data = eventData(ev);
      if (data !== null && HOSTED_ITEMS.some((t) => data.includes(t))) this.onItem(parse(data)?.['item']);
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
      if (typeof r?.['id'] === 'string') this.id ??= r['id'];
      if (r?.['usage'] && typeof r['usage'] === 'object') this.u = r['usage'] as Obj;
      if (typeof r?.['service_tier'] === 'string') this.tier = r['service_tier'];
      // The final response lists every item: its count stands for those seen one by one.
      if (name !== 'response.created' && Array.isArray(r?.['output'])) {
        this.tools = hostedToolCalls(r['output']);
        for (const item of r['output']) this.used = addContainer(this.used, item);
      }
      if (name === 'response.failed') this.err ??= 'upstream_stream_error';
      if (name !== 'response.created') this.done = true;
    } else if (name === 'error') {
      this.err ??= 'upstream_stream_error';
    }
    return true;
  }
  usage = () => this.u;
  model = () => this.m;
  serviceTier = () => this.tier;
  responseId = () => this.id;
  /** An ended output item: a hosted tool call billed per call, or a code interpreter call's
   * container. */
  private onItem(item: unknown): void {
    this.tools = countToolCall(this.tools, item);
    this.used = addContainer(this.used, item);
  }
  toolCalls = () => this.tools;
  containers = () => this.used;
  text = () => this.deltas.text();
  error = () => this.err;
}

/** Anthropic messages: input usage in message_start, the running output count in message_delta. */
class MessagesMeter implements StreamMeter {
  private u: Obj | null = null;
  private m: string | null = null;
  private readonly deltas = new DeltaText(messagesDelta);
  private err: string | null = null;
  done = false;

  onEvent(ev: string): boolean {
    const name = eventName(ev);
    if (name === 'content_block_delta') {
      this.deltas.push(eventData(ev) ?? '');
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
  /** Anthropic names its tier in the usage object, where pricing reads it. */
  serviceTier = () => null;
  /** Anthropic counts its server tools' calls in the usage object. */
  toolCalls = () => null;
  containers = () => null;
  responseId = () => null;
  text = () => this.deltas.text();
  error = () => this.err;
}

export function streamMeter(endpoint: Endpoint, hideUsageChunk: boolean): StreamMeter {
  if (endpoint === 'responses') return new ResponsesMeter();
  if (endpoint === 'messages') return new MessagesMeter();
  return new ChatMeter(hideUsageChunk);
}
