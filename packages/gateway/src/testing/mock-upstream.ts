import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type AnthropicUsage,
  anthropicMessage,
  anthropicStream,
  anthropicToolStream,
  anthropicToolUse,
  withThinking,
  withThinkingStream,
} from './anthropic-fixtures.js';
import { speechAnswer, transcriptionAnswer, translationAnswer } from './audio-fixtures.js';
import { completionAnswer } from './completion-fixtures.js';
import { imageAnswer, imageEditAnswer } from './image-fixtures.js';
import { list, MockBatches } from './mock-batches.js';
import { wholeFault, writeUntilClosed } from './mock-faults.js';
import { MockRealtime } from './realtime-fixtures.js';
import { chatRecordings, embeddingRecordings, type Recording } from './recorded.js';

type Obj = Record<string, unknown>;

export interface Received {
  path: string;
  headers: IncomingMessage['headers'];
  body: Obj;
  raw: string;
}

/**
 * An upstream that answers like OpenAI (replaying recorded responses, as JSON or SSE) and like
 * Anthropic (documented fixtures). Special model names make it misbehave, for fault tests:
 * fault-500, fault-429 (and fault-500xN, fault-429xN: the first N calls fail so), fault-stream-error
 * (a stream whose first event is an error; fault-stream-errorxN: the first N calls),
 * fault-silent-stream (a stream's head, then nothing), fault-stream-error-late (Anthropic's
 * message_start, then an overloaded error), fault-timeout, fault-malformed (bad SSE), fault-slow (a slow stream),
 * fault-endless-stream (a stream of 64 kB events that goes on until the connection is closed or
 * 200 MB are sent), fault-cut (the connection drops mid-stream; for Anthropic, after message_start and two text deltas), fault-late-end (the body's end held back after [DONE]),
 * fault-split-utf8 (a stream with multi-byte text, written 7 bytes at a time), fault-no-usage (a whole
 * answer without usage), and the broken whole answers of `wholeFault` (mock-faults.ts).
 */
export class MockUpstream {
  readonly received: Received[] = [];
  /** OpenAI's Realtime API (realtime-fixtures.ts). */
  readonly realtime = new MockRealtime();
  private server: Server | null = null;
  private readonly open = new Set<ServerResponse>();
  /** The code interpreter container each response used, for the next of its conversation. */
  private readonly containerOf = new Map<string, string>();
  private responsesMade = 0;
  /** The responses it stored (all but those asked with store: false), as OpenAI keeps them. */
  readonly stored = new Map<string, { response: Obj; input: Obj[]; readyAt?: number; cancelled?: boolean }>();
  /** The conversations it holds, and their items, as OpenAI's Conversations API keeps them. */
  readonly conversations = new Map<string, { conversation: Obj; items: Obj[] }>();
  /** The chat completions asked with store: true, and their messages. */
  readonly storedChats = new Map<string, { completion: Obj; messages: Obj[] }>();
  /** How long a background response takes to complete (queued, then in progress until then). */
  backgroundMs = 60;
  /** The calls each fault-500xN or fault-429xN model has had. */
  private readonly flakyCalls = new Map<string, number>();
  /** OpenAI's Files and Batch APIs (mock-batches.ts). */
  readonly batchApi = new MockBatches();
  url = '';

  async start(port = 0): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        // A request that is not JSON is kept as it came (latin1 for a form's binary files).
        const keep = (encoding: BufferEncoding): Buffer => {
          const bytes = Buffer.concat(chunks);
          this.received.push({
            path: req.url ?? '',
            headers: req.headers,
            body: {},
            raw: bytes.toString(encoding),
          });
          return bytes;
        };
        if (/\/(audio\/transcriptions|audio\/translations|images\/edits)$/.test(req.url ?? '')) {
          const bytes = keep('latin1');
          const type = req.headers['content-type'] ?? '';
          if ((req.url ?? '').endsWith('/images/edits')) imageEditAnswer(type, bytes, res);
          else if ((req.url ?? '').endsWith('/translations')) translationAnswer(type, bytes, res);
          else transcriptionAnswer(type, bytes, res);
          return;
        }
        if (/^\/v1\/realtime\/calls(\/|\?|$)/.test(req.url ?? '')) {
          this.realtime.callRequest(req, keep('utf8'), res);
          return;
        }
        if (/^\/v1\/(files|batches|messages\/batches)(\/|\?|$)/.test(req.url ?? '')) {
          const bytes = keep('utf8');
          this.batchApi.handle(
            req.method ?? '',
            req.url ?? '',
            req.headers['content-type'] ?? '',
            bytes,
            res,
          );
          return;
        }
        const raw = Buffer.concat(chunks).toString('utf8');
        let body: Obj = {};
        try {
          body = raw ? (JSON.parse(raw) as Obj) : {};
        } catch {
          res.writeHead(400, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: { message: 'bad json', type: 'invalid_request_error' } }));
          return;
        }
        this.received.push({ path: req.url ?? '', headers: req.headers, body, raw });
        this.open.add(res);
        res.on('close', () => this.open.delete(res));
        if (req.url?.includes('/responses/') && !/\/responses\/(compact|input_tokens)(\?|$)/.test(req.url))
          this.followUp(req.method ?? '', req.url, res);
        else if (req.url?.includes('/conversations')) this.conversation(req.method ?? '', req.url, body, res);
        else if (/\/chat\/completions\/[^/?]/.test(req.url ?? ''))
          this.storedChat(req.method ?? '', req.url!, body, res);
        else this.route(req.url ?? '', body, res, req.headers);
      });
    });
    this.server.keepAliveTimeout = 60_000;
    this.realtime.attach(this.server);
    await new Promise<void>((r) => this.server!.listen(port, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** Responses still open (a leak check: a finished test leaves none). */
  get openResponses(): number {
    return this.open.size;
  }

  async stop(): Promise<void> {
    this.batchApi.stop();
    this.realtime.close();
    for (const r of this.open) r.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  /** A stored chat completion's follow-ups: retrieve it, update its metadata, delete it, list its
   * messages. */
  private storedChat(method: string, url: string, body: Obj, res: ServerResponse): void {
    const path = url.split('?')[0] ?? '';
    const [id = '', part] = path.slice(path.indexOf('/chat/completions/') + 18).split('/');
    const kept = this.storedChats.get(id);
    if (!kept) invalidRequest(res, 404, `Chat completion with id '${id}' not found.`);
    else if (part === 'messages') {
      json(res, 200, { object: 'list', data: kept.messages, has_more: false });
    } else if (method === 'DELETE') {
      this.storedChats.delete(id);
      json(res, 200, { id, object: 'chat.completion.deleted', deleted: true });
    } else {
      if (method === 'POST') kept.completion['metadata'] = body['metadata'] ?? {};
      json(res, 200, kept.completion);
    }
  }

  /** The Conversations API: make one, retrieve, update or delete it, list, add, retrieve or delete
   * its items. */
  private conversation(method: string, url: string, body: Obj, res: ServerResponse): void {
    const path = url.split('?')[0] ?? '';
    const [id = '', part, itemId] = path
      .slice(path.indexOf('/conversations') + 14)
      .replace(/^\//, '')
      .split('/');
    if (id === '' && method === 'POST') {
      const made = `conv_${String(++this.responsesMade).padStart(4, '0')}`;
      const conversation = {
        id: made,
        object: 'conversation',
        metadata: body['metadata'] ?? {},
        created_at: 1_764_000_000,
      };
      const items = Array.isArray(body['items']) ? inputItems({ input: body['items'] }) : [];
      this.conversations.set(made, { conversation, items });
      json(res, 200, conversation);
      return;
    }
    const kept = this.conversations.get(id);
    if (!kept) {
      invalidRequest(res, 404, `Conversation with id '${id}' not found.`);
      return;
    }
    if (part === undefined) {
      if (method === 'DELETE') {
        this.conversations.delete(id);
        json(res, 200, { id, object: 'conversation.deleted', deleted: true });
        return;
      }
      if (method === 'POST') kept.conversation['metadata'] = body['metadata'] ?? {};
      json(res, 200, kept.conversation);
    } else if (itemId === undefined) {
      if (method === 'POST') {
        const added = inputItems({ input: body['items'] }).map((item, i) => ({
          ...item,
          id: `msg_${kept.items.length + i + 1}`,
        }));
        kept.items.push(...added);
        json(res, 200, list(added));
      } else json(res, 200, list(kept.items));
    } else {
      const item = kept.items.find((i) => i['id'] === itemId);
      if (!item) {
        json(res, 404, { error: { message: `Item ${itemId} not found.`, type: 'invalid_request_error' } });
        return;
      }
      if (method === 'DELETE') {
        kept.items.splice(kept.items.indexOf(item), 1);
        json(res, 200, kept.conversation);
      } else json(res, 200, item);
    }
  }

  /** A stored response's follow-ups, as OpenAI answers them: retrieve (also as a stream), delete,
   * cancel (refused: only a background response can be) and its input items. */
  private followUp(method: string, url: string, res: ServerResponse): void {
    const [path = '', query = ''] = url.split('?');
    const [id = '', tail] = path.slice(path.indexOf('/responses/') + 11).split('/');
    const kept = this.stored.get(id);
    if (!kept) {
      invalidRequest(res, 404, `Response with id '${id}' not found.`);
      return;
    }
    // A background response is in progress until it is ready (or cancelled, with no usage).
    const running = kept.readyAt !== undefined && Date.now() < kept.readyAt && !kept.cancelled;
    const now = (): Obj =>
      kept.cancelled
        ? { ...kept.response, status: 'cancelled', output: [], usage: null }
        : running
          ? { ...kept.response, status: 'in_progress', output: [], usage: null }
          : kept.response;
    if (method === 'DELETE') {
      this.stored.delete(id);
      json(res, 200, { id, object: 'response', deleted: true });
    } else if (tail === 'cancel' && kept.readyAt !== undefined) {
      if (running) kept.cancelled = true;
      json(res, 200, now());
    } else if (tail === 'cancel') {
      invalidRequest(res, 400, 'Only responses created with background=true can be cancelled.');
    } else if (tail === 'input_items') {
      const data = kept.input;
      json(res, 200, {
        object: 'list',
        data,
        first_id: data[0]?.['id'] ?? null,
        last_id: data.at(-1)?.['id'] ?? null,
        has_more: false,
      });
    } else if (new URLSearchParams(query).get('stream') === 'true') {
      sse(res, [
        ev('response.created', {
          sequence_number: 0,
          response: { ...kept.response, status: 'in_progress', output: [], usage: null },
        }),
        ev('response.completed', { sequence_number: 1, response: kept.response }),
      ]);
    } else json(res, 200, now());
  }

  private route(path: string, body: Obj, res: ServerResponse, headers: IncomingMessage['headers']): void {
    let model = String(body['model'] ?? '');
    if (model === 'fault-timeout') return; // never answers
    if (model === 'fault-silent-stream') {
      // A stream's head, then nothing: an upstream that stalls before its first event.
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.flushHeaders();
      return;
    }
    if (wholeFault(model, res, headers)) return;
    // fault-500xN, fault-429xN, fault-stream-errorxN: the first N calls naming it fail so, the next
    // are gpt-4o's (claude-sonnet-4-5's, as Anthropic).
    const flaky = /^fault-(500|429|stream-error)x(\d+)$/.exec(model);
    if (flaky) {
      const seen = (this.flakyCalls.get(model) ?? 0) + 1;
      this.flakyCalls.set(model, seen);
      if (seen > Number(flaky[2])) {
        model = path.endsWith('/messages') ? 'claude-sonnet-4-5' : 'gpt-4o';
        body['model'] = model;
      } else model = `fault-${flaky[1]}`;
    }
    if (model === 'fault-stream-error-late' && body['stream'] === true && path.endsWith('/messages')) {
      // Anthropic's message_start, then its overloaded error.
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(
        ev('message_start', {
          message: {
            id: 'msg_overloaded',
            type: 'message',
            role: 'assistant',
            model,
            content: [],
            stop_reason: null,
            usage: { input_tokens: 12, output_tokens: 1 },
          },
        }) +
          ev('ping', {}) +
          ev('error', { error: { type: 'overloaded_error', message: 'Overloaded' } }),
      );
      return;
    }
    if (model === 'fault-stream-error' && body['stream'] === true) {
      // A stream accepted (200) whose first event is an error, as Anthropic's is when overloaded
      // (its streaming docs' error event), and as OpenAI's chat chunk of a server error.
      // A Responses stream says first that the response was made, then fails (a deployment at its
      // tokens a minute, as OpenAI's and Azure's do).
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const error = {
        code: 'rate_limit_exceeded',
        message: 'Rate limit reached for gpt-4o on tokens per min (TPM).',
      };
      const response = {
        id: 'resp_mock_failed',
        object: 'response',
        model: 'gpt-4o',
        output: [],
        usage: null,
      };
      res.end(
        path.endsWith('/messages')
          ? ev('error', { error: { type: 'overloaded_error', message: 'Overloaded' } })
          : path.endsWith('/responses')
            ? ev('response.created', {
                sequence_number: 0,
                response: { ...response, status: 'in_progress' },
              }) +
              ev('response.in_progress', {
                sequence_number: 1,
                response: { ...response, status: 'in_progress' },
              }) +
              ev('error', { sequence_number: 2, error: { type: 'tokens', ...error, param: null } }) +
              ev('response.failed', {
                sequence_number: 3,
                response: { ...response, status: 'failed', error },
              })
            : `data: ${JSON.stringify({ error: { message: 'The server had an error while processing your request.', type: 'server_error', param: null, code: null } })}\n\n`,
      );
      return;
    }
    if (model === 'fault-500' || model === 'fault-429') {
      const status = model === 'fault-500' ? 500 : 429;
      res.writeHead(status, { 'content-type': 'application/json', 'retry-after': '1' });
      // OpenAI's shapes: a 500 gives no code, a 429 for speed gives rate_limit_exceeded.
      const error =
        status === 500
          ? { message: 'mock 500', type: 'server_error', param: null, code: null }
          : { message: 'mock 429', type: 'requests', param: null, code: 'rate_limit_exceeded' };
      res.end(JSON.stringify({ error }));
      return;
    }
    if (path.endsWith('/messages')) {
      this.messages(body, res);
      return;
    }
    if (path.endsWith('/messages/count_tokens')) {
      json(res, 200, { input_tokens: JSON.stringify(body['messages'] ?? []).length });
      return;
    }
    if (path.includes('/chat/completions')) {
      this.chat(body, res);
      return;
    }
    if (path.endsWith('/responses/compact')) {
      // The conversation's input items kept, and one compaction item for the rest.
      json(res, 200, {
        id: `resp_cmp_${++this.responsesMade}`,
        object: 'response.compaction',
        created_at: 1_764_000_000,
        output: [...inputItems(body), { type: 'compaction', id: 'cmp_1', encrypted_content: 'gAAAAABmock' }],
        usage: {
          input_tokens: 900,
          input_tokens_details: { cached_tokens: 0 },
          output_tokens: 120,
          output_tokens_details: { reasoning_tokens: 64 },
          total_tokens: 1020,
        },
      });
      return;
    }
    if (path.endsWith('/responses/input_tokens')) {
      json(res, 200, {
        object: 'response.input_tokens',
        input_tokens: JSON.stringify(body['input'] ?? '').length,
      });
      return;
    }
    if (path.endsWith('/responses')) {
      this.responses(body, res);
      return;
    }
    if (path.includes('/embeddings')) {
      this.embeddings(body, res);
      return;
    }
    if (path.includes('/images/generations')) {
      imageAnswer(body, res);
      return;
    }
    if (path.endsWith('/audio/speech')) {
      speechAnswer(body, res);
      return;
    }
    if (path.endsWith('/completions')) {
      completionAnswer(body, res);
      return;
    }
    if (path.endsWith('/moderations')) {
      // As OpenAI answers a moderation: one result for each input.
      const inputs = Array.isArray(body['input']) ? body['input'] : [body['input']];
      json(res, 200, {
        id: 'modr-0d9740456c391e43c445bf0f010940c7',
        model: 'omni-moderation-latest',
        results: inputs.map((text) => ({
          flagged: String(text).includes('hurt'),
          categories: { violence: String(text).includes('hurt'), harassment: false },
          category_scores: { violence: String(text).includes('hurt') ? 0.91 : 0.0004, harassment: 0.0001 },
        })),
      });
      return;
    }
    if (path.endsWith('/models')) {
      json(res, 200, {
        object: 'list',
        data: [{ id: 'gpt-4o', object: 'model', created: 1, owned_by: 'openai' }],
      });
      return;
    }
    json(res, 404, { error: { message: 'not found', type: 'invalid_request_error' } });
  }

  private chat(body: Obj, res: ServerResponse): void {
    const model = String(body['model']);
    const stream = body['stream'] === true;
    const includeUsage = (body['stream_options'] as Obj | undefined)?.['include_usage'] === true;
    if (model.startsWith('fault-')) {
      this.faultStream(model, res);
      return;
    }
    if (Array.isArray(body['tools'])) {
      this.toolCall(model, stream, includeUsage, res);
      return;
    }
    const rec = pick(chatRecordings(), body, stream, includeUsage);
    if (!rec) {
      json(res, 404, { error: { message: `no recording for ${model}`, type: 'invalid_request_error' } });
      return;
    }
    // An error OpenAI answered (to this exact request) comes back as it did, streamed or not.
    // The recordings' ids are masked: a stored completion gets an id of its own, as OpenAI's look.
    let answer: unknown = rec.body;
    if (body['store'] === true && rec.status === 200) {
      const id = `chatcmpl-stored${String(++this.responsesMade).padStart(4, '0')}`;
      answer = stream ? (rec.body as Obj[]).map((c) => ({ ...c, id })) : { ...(rec.body as Obj), id };
      // Kept as OpenAI keeps a stored completion: the whole answer (a stream's first chunk for it).
      const whole = stream ? { ...(answer as Obj[])[0], object: 'chat.completion' } : (answer as Obj);
      this.storedChats.set(id, {
        completion: { ...whole, metadata: body['metadata'] ?? {} },
        messages: ((body['messages'] as Obj[] | undefined) ?? []).map((m, i) => ({ id: `${id}-${i}`, ...m })),
      });
    }
    if (!stream || rec.status !== 200) {
      json(res, rec.status, answer);
      return;
    }
    sse(res, (answer as Obj[]).map((c) => `data: ${JSON.stringify(c)}\n\n`).concat('data: [DONE]\n\n'));
  }

  private toolCall(model: string, stream: boolean, includeUsage: boolean, res: ServerResponse): void {
    const usage = { prompt_tokens: 82, completion_tokens: 17, total_tokens: 99 };
    const call = {
      id: 'call_abc123',
      type: 'function',
      function: { name: 'get_weather', arguments: '{"location":"Paris"}' },
    };
    const base = { id: 'chatcmpl-tool', created: 1_700_000_000, model: `${model}-2024-08-06` };
    if (!stream) {
      json(res, 200, {
        ...base,
        object: 'chat.completion',
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: null, tool_calls: [call] },
            finish_reason: 'tool_calls',
          },
        ],
        usage,
      });
      return;
    }
    const chunk = (o: Obj) =>
      `data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', ...o })}\n\n`;
    const events = [
      chunk({
        choices: [
          {
            index: 0,
            delta: {
              role: 'assistant',
              tool_calls: [{ index: 0, ...call, function: { name: 'get_weather', arguments: '' } }],
            },
            finish_reason: null,
          },
        ],
      }),
      chunk({
        choices: [
          {
            index: 0,
            delta: { tool_calls: [{ index: 0, function: { arguments: '{"location":' } }] },
            finish_reason: null,
          },
        ],
      }),
      chunk({
        choices: [
          {
            index: 0,
            delta: { tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] },
            finish_reason: null,
          },
        ],
      }),
      chunk({ choices: [{ index: 0, delta: {}, finish_reason: 'tool_calls' }] }),
    ];
    if (includeUsage) events.push(chunk({ choices: [], usage }));
    events.push('data: [DONE]\n\n');
    sse(res, events);
  }

  private faultStream(model: string, res: ServerResponse): void {
    const base = {
      id: 'chatcmpl-fault',
      object: 'chat.completion.chunk',
      created: 1,
      model: 'gpt-4o-2024-08-06',
    };
    const piece = (t: string) =>
      `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { content: t }, finish_reason: null }] })}\n\n`;
    if (model === 'fault-no-usage') {
      // A whole answer with no usage object, as some OpenAI-compatible servers send.
      json(res, 200, {
        ...base,
        object: 'chat.completion',
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: 'Hello there, friend.' },
            finish_reason: 'stop',
          },
        ],
      });
      return;
    }
    if (model === 'fault-endless-stream') {
      // A stream that goes on, 64 kB of text an event, until the connection is closed or 200 MB
      // are sent.
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      writeUntilClosed(res, piece('lorem ipsum '.repeat(5461)), 3200, 'data: [DONE]\n\n');
      return;
    }
    if (model === 'fault-late-end') {
      // The whole stream, usage and [DONE] included, then the end of the body held back 300 ms.
      const usage = { prompt_tokens: 12, completion_tokens: 2, total_tokens: 14 };
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(
        `${piece('Hello')}data: ${JSON.stringify({ ...base, choices: [], usage })}\n\ndata: [DONE]\n\n`,
      );
      const timer = setTimeout(() => res.end(), 300);
      res.on('close', () => clearTimeout(timer));
      return;
    }
    if (model === 'fault-split-utf8') {
      // Events and multi-byte characters both cut across writes, as a proxy or a TCP segment may.
      const usage = { prompt_tokens: 12, completion_tokens: 4, total_tokens: 16 };
      const bytes = Buffer.from(
        `${piece('héllo ')}${piece('😀 日本')}${piece('語 — ok')}data: ${JSON.stringify({ ...base, choices: [], usage })}\n\ndata: [DONE]\n\n`,
      );
      const pieces: Buffer[] = [];
      for (let at = 0; at < bytes.length; at += 7) pieces.push(bytes.subarray(at, at + 7));
      sse(res, pieces);
      return;
    }
    if (model === 'fault-malformed') {
      sse(res, [
        piece('Hello'),
        'data: {"id": "broken", "choices": [\n\n',
        piece(' world'),
        'data: [DONE]\n\n',
      ]);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    let i = 0;
    const timer = setInterval(
      () => {
        if (res.destroyed) {
          clearInterval(timer);
          return;
        }
        if (model === 'fault-cut' && i === 5) {
          clearInterval(timer);
          res.socket?.destroy();
          return;
        }
        if (i >= 40) {
          clearInterval(timer);
          res.end('data: [DONE]\n\n');
          return;
        }
        res.write(piece(` word${i++}`));
      },
      model === 'fault-slow' ? 25 : 5,
    );
    res.on('close', () => clearInterval(timer));
  }

  private responses(body: Obj, res: ServerResponse): void {
    const model = `${String(body['model'])}-2025-04-16`;
    const usage = {
      input_tokens: 1200,
      input_tokens_details: { cached_tokens: 1024 },
      output_tokens: 300,
      output_tokens_details: { reasoning_tokens: 256 },
      total_tokens: 1500,
    };
    // A request that offers the hosted search tools gets the items OpenAI's reference shows for
    // them: two web searches and a file search, and a third web search that failed.
    const offered = new Set(
      (Array.isArray(body['tools']) ? body['tools'] : []).map((t) => String((t as Obj)['type'])),
    );
    const hosted: Obj[] = [];
    if (offered.has('web_search') || offered.has('web_search_preview')) {
      hosted.push(
        {
          type: 'web_search_call',
          id: 'ws_1',
          status: 'completed',
          action: { type: 'search', query: 'news' },
        },
        {
          type: 'web_search_call',
          id: 'ws_2',
          status: 'completed',
          action: { type: 'search', query: 'more' },
        },
        { type: 'web_search_call', id: 'ws_3', status: 'failed', action: { type: 'search', query: 'lost' } },
      );
    }
    if (offered.has('file_search')) {
      hosted.push({
        type: 'file_search_call',
        id: 'fs_1',
        status: 'completed',
        queries: ['refund policy'],
        results: null,
      });
    }
    // The image generation tool makes one image (a PNG of one pixel), and one fails.
    if (offered.has('image_generation')) {
      const png =
        'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
      hosted.push(
        { type: 'image_generation_call', id: 'ig_1', status: 'completed', result: png },
        { type: 'image_generation_call', id: 'ig_2', status: 'failed', result: null },
      );
    }
    // The code interpreter runs twice in one container: the one the request names, else (auto) the
    // one the previous response of the conversation used, else a new one.
    // Each response an id of its own, as OpenAI's.
    let id = `resp_67ccd2bed1ec${String(++this.responsesMade).padStart(4, '0')}`;
    const ci = (Array.isArray(body['tools']) ? (body['tools'] as Obj[]) : []).find(
      (t) => t['type'] === 'code_interpreter',
    );
    if (ci) {
      id = `resp_ci_${this.responsesMade}`;
      const prev = this.containerOf.get(String(body['previous_response_id']));
      const container =
        typeof ci['container'] === 'string' ? ci['container'] : (prev ?? `cntr_auto_${this.responsesMade}`);
      this.containerOf.set(id, container);
      for (const n of [1, 2])
        hosted.push({
          type: 'code_interpreter_call',
          id: `ci_${n}`,
          status: 'completed',
          container_id: container,
          code: `print(${n} + 1)`,
          outputs: [{ type: 'logs', logs: String(n + 1) }],
        });
    }
    const response = (status: string, withUsage: boolean) => ({
      id,
      object: 'response',
      created_at: 1_741_476_542,
      status,
      model,
      output:
        status === 'completed'
          ? [
              ...hosted,
              {
                type: 'message',
                id: 'msg_1',
                status: 'completed',
                role: 'assistant',
                content: [{ type: 'output_text', text: 'Hi there.', annotations: [] }],
              },
            ]
          : [],
      usage: withUsage ? usage : null,
    });
    // A response in a conversation adds its input and its answer to the conversation's items.
    const conv = this.conversations.get(
      typeof body['conversation'] === 'string'
        ? body['conversation']
        : String((body['conversation'] as Obj | undefined)?.['id']),
    );
    if (conv) {
      const n = conv.items.length;
      conv.items.push(...inputItems(body).map((item, i) => ({ ...item, id: `msg_${n + i + 1}` })), {
        id: `msg_${n + inputItems(body).length + 1}`,
        type: 'message',
        role: 'assistant',
        content: [{ type: 'output_text', text: 'Hi there.' }],
      });
    }
    if (body['background'] === true) {
      // Stored whatever store says (as OpenAI requires of a background response), and answered
      // queued, without usage; model fault-background-lost is forgotten at once.
      if (body['model'] !== 'fault-background-lost')
        this.stored.set(id, {
          response: response('completed', true),
          input: inputItems(body),
          readyAt: Date.now() + this.backgroundMs,
        });
      if (body['stream'] !== true) {
        json(res, 200, response('queued', false));
        return;
      }
      // Streamed: its first events at once, the rest once it is ready.
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write(ev('response.created', { response: response('queued', false) }));
      res.write(ev('response.in_progress', { response: response('in_progress', false) }));
      setTimeout(() => {
        if (res.destroyed) return;
        res.write(
          ev('response.output_text.delta', { item_id: 'msg_1', output_index: 0, delta: 'Hi there.' }),
        );
        res.end(ev('response.completed', { response: response('completed', true) }));
      }, this.backgroundMs);
      return;
    }
    if (body['store'] !== false)
      this.stored.set(id, { response: response('completed', true), input: inputItems(body) });
    if (body['stream'] !== true) {
      json(res, 200, response('completed', true));
      return;
    }
    sse(res, [
      ev('response.created', { response: response('in_progress', false) }),
      ...hosted.flatMap((item, i) => [
        ev('response.output_item.added', { output_index: i, item: { ...item, status: 'in_progress' } }),
        ev('response.output_item.done', { output_index: i, item }),
      ]),
      ev('response.output_text.delta', { item_id: 'msg_1', output_index: 0, content_index: 0, delta: 'Hi' }),
      ev('response.output_text.delta', {
        item_id: 'msg_1',
        output_index: 0,
        content_index: 0,
        delta: ' there.',
      }),
      ev('response.completed', { response: response('completed', true) }),
    ]);
  }

  private embeddings(body: Obj, res: ServerResponse): void {
    const rec =
      embeddingRecordings().find(
        (r) => r.status === 200 && JSON.stringify(r.request) === JSON.stringify(body),
      ) ?? embeddingRecordings().find((r) => r.status === 200 && r.request['model'] === body['model']);
    if (!rec) {
      json(res, 404, { error: { message: 'no recording', type: 'invalid_request_error' } });
      return;
    }
    const inputs = Array.isArray(body['input']) ? body['input'].length : 1;
    const recorded = rec.body as { data: Obj[]; usage: { prompt_tokens: number } };
    if (inputs <= recorded.data.length) {
      json(res, 200, rec.body);
      return;
    }
    // A batch larger than any recording: the recorded vector once per input, with usage to match.
    const tokens = recorded.usage.prompt_tokens * inputs;
    json(res, 200, {
      ...recorded,
      data: Array.from({ length: inputs }, (_, index) => ({ ...recorded.data[0], index })),
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    });
  }

  private messages(body: Obj, res: ServerResponse): void {
    const model = String(body['model']);
    const usage: AnthropicUsage = {
      input_tokens: 2095,
      output_tokens: 503,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 1800,
    };
    // Fast mode and US-only inference, asked for in the request, are reported in the usage.
    if (body['speed'] === 'fast' || body['speed'] === 'standard') usage.speed = body['speed'];
    if (typeof body['inference_geo'] === 'string') usage.inference_geo = body['inference_geo'];
    if (body['stream'] === true && (model === 'fault-cut' || model === 'fault-cut-1h')) {
      // message_start (with its cache reads, and for fault-cut-1h an hour's cache writes) and two
      // deltas, then the connection drops.
      const events = anthropicStream(
        model,
        ['Hello', ', ', 'world', '!'],
        model === 'fault-cut'
          ? usage
          : {
              ...usage,
              cache_creation_input_tokens: 5000,
              cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 5000 },
            },
      );
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(
        events
          .filter((e) => String(e).includes('message_start') || String(e).includes('_delta'))
          .slice(0, 3)
          .join(''),
      );
      setTimeout(() => res.destroy(), 20);
      return;
    }
    // A call made to use one tool (tool_choice "tool") gets that tool's call alone, as Anthropic
    // answers it: no text before it. One made to use any of them ("any") once a tool's result has
    // come back gets a call of the last: the model gives its answer through it (before, it is
    // answered as any call with tools).
    const choice = body['tool_choice'] as Obj | undefined;
    const tools = (Array.isArray(body['tools']) ? body['tools'] : []) as Obj[];
    const messages = (Array.isArray(body['messages']) ? body['messages'] : []) as Obj[];
    const last = messages.at(-1)?.['content'];
    const afterResult = Array.isArray(last) && last.some((b) => (b as Obj)['type'] === 'tool_result');
    const forced =
      choice?.['type'] === 'tool'
        ? String(choice['name'])
        : choice?.['type'] === 'any' && afterResult && tools.length > 0
          ? String(tools.at(-1)?.['name'])
          : null;
    // With extended thinking on, the model thinks first: a signed thinking block leads the answer.
    const thinks = (body['thinking'] as Obj | undefined)?.['type'] === 'enabled';
    const stream = (events: string[]) => sse(res, thinks ? withThinkingStream(events) : events);
    const whole = (message: Record<string, unknown>) =>
      json(res, 200, thinks ? withThinking(message) : message);
    // A schema given as it is (structured outputs): the answer is the message's text, in it. With
    // the request's tools and no result of theirs back yet, the model calls one first.
    const format = (body['output_config'] as Obj | undefined)?.['format'] as Obj | undefined;
    if (format?.['type'] === 'json_schema' && (tools.length === 0 || afterResult)) {
      const text = JSON.stringify({ location: 'Paris', celsius: 18 });
      if (body['stream'] === true) stream(anthropicStream(model, [text.slice(0, 12), text.slice(12)], usage));
      else whole(anthropicMessage(model, text, usage));
      return;
    }
    if (forced !== null) {
      const tool = {
        id: 'toolu_01forced',
        name: forced,
        input: { location: 'Paris', celsius: 18 },
      };
      if (body['stream'] === true) stream(anthropicToolStream(model, usage, tool));
      else {
        const content = [{ type: 'tool_use', ...tool }];
        whole({ ...anthropicMessage(model, '', usage), content, stop_reason: 'tool_use' });
      }
      return;
    }
    if (body['stream'] === true) {
      stream(anthropicStream(model, ['Hello', ', ', 'world', '!'], usage));
      return;
    }
    if (Array.isArray(body['tools'])) {
      const answer = anthropicToolUse(model, usage);
      // Made to call a tool, the model writes no text before it.
      if (choice?.['type'] === 'any')
        answer['content'] = (answer['content'] as Obj[]).filter((b) => b['type'] === 'tool_use');
      whole(answer);
      return;
    }
    whole(anthropicMessage(model, 'Hello, world!', usage));
  }
}

/** The recording of this exact request if there is one, else an answer to one of the same model
 * and shape. */
function pick(recs: Recording[], body: Obj, stream: boolean, includeUsage: boolean): Recording | undefined {
  const exact = JSON.stringify(body);
  // This exact request's answer, an error OpenAI gave it included (an answer first, if both).
  const same = recs.filter((r) => JSON.stringify(r.request) === exact);
  const hit = same.find((r) => r.status === 200) ?? same[0];
  if (hit) return hit;
  const ok = recs.filter((r) => r.status === 200);
  const shaped = (r: Recording) =>
    (r.request['stream'] === true) === stream &&
    ((r.request['stream_options'] as Obj | undefined)?.['include_usage'] === true) === includeUsage &&
    String(body['model']).startsWith(String(r.request['model']));
  return ok.find((r) => shaped(r) && r.request['model'] === body['model']) ?? ok.find(shaped);
}

/** A Responses request's input as its stored input items: a string is one user message. */
function inputItems(body: Obj): Obj[] {
  const input = body['input'];
  const items: Obj[] =
    typeof input === 'string'
      ? [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: input }] }]
      : Array.isArray(input)
        ? (input as Obj[])
        : [];
  return items.map((item, i) => ({ id: `msg_in_${i + 1}`, ...item }));
}

/** An OpenAI error answer of type invalid_request_error, with no param or code. */
function invalidRequest(res: ServerResponse, status: number, message: string): void {
  json(res, status, { error: { message, type: 'invalid_request_error', param: null, code: null } });
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'x-request-id': 'req_mock',
    // As OpenAI and Anthropic send on every answer: the account the key belongs to.
    'openai-organization': 'org-mock',
    'openai-project': 'proj_mock',
    'anthropic-organization-id': 'aorg-mock',
    // And the account's own rate limits.
    'x-ratelimit-limit-requests': '10000',
    'x-ratelimit-limit-tokens': '30000000',
    'anthropic-ratelimit-tokens-limit': '400000',
  });
  res.end(text);
}

/** A named SSE event whose data is `{type: name, ...data}` (Anthropic's and the Responses API's). */
function ev(name: string, data: Obj): string {
  return `event: ${name}\ndata: ${JSON.stringify({ type: name, ...data })}\n\n`;
}

/** Writes SSE events a few milliseconds apart, as a real stream arrives. */
function sse(res: ServerResponse, events: (string | Buffer)[]): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  let i = 0;
  const next = () => {
    if (res.destroyed) return;
    if (i >= events.length) {
      res.end();
      return;
    }
    res.write(events[i++]);
    setTimeout(next, 2);
  };
  next();
}
