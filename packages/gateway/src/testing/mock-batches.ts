import type { ServerResponse } from 'node:http';
import { type AnthropicUsage, anthropicMessage } from './anthropic-fixtures.js';
import { chatRecordings, embeddingRecordings } from './recorded.js';

type Obj = Record<string, unknown>;

/**
 * OpenAI's Files and Batch APIs, as a mock upstream keeps them: a file uploaded as multipart form
 * data, a batch made from it that runs `batchMs` after it is made, its requests answered from the
 * recorded chat completions and embeddings, and its output and error files as OpenAI writes them
 * (one JSON line a request). A request for model `fault-batch-error` fails, into the error file.
 */
export class MockBatches {
  readonly files = new Map<string, { meta: Obj; content: Buffer }>();
  readonly batches = new Map<string, Obj>();
  readonly messageBatches = new Map<string, { batch: Obj; requests: Obj[]; results: string[] }>();
  private made = 0;
  /** How long a batch runs before it has completed. */
  batchMs = 80;
  private readonly timers = new Set<NodeJS.Timeout>();

  /** Answers a request under /v1/files, /v1/batches or /v1/messages/batches. */
  handle(method: string, url: string, contentType: string, raw: Buffer, res: ServerResponse): void {
    const [path = '', query = ''] = url.split('?');
    if (path.startsWith('/v1/messages/batches')) {
      this.messageBatch(method, path, raw, res);
      return;
    }
    const parts = path.replace(/^\/v1\//, '').split('/');
    const [kind, id, action] = parts;
    if (kind === 'files') {
      if (id === undefined) {
        if (method === 'POST') {
          this.upload(contentType, raw, res);
          return;
        }
        const purpose = new URLSearchParams(query).get('purpose');
        json(
          res,
          200,
          list(
            [...this.files.values()].map((f) => f.meta).filter((m) => !purpose || m['purpose'] === purpose),
          ),
        );
        return;
      }
      const file = this.files.get(id);
      if (!file) {
        json(res, 404, {
          error: { message: `No such File object: ${id}`, type: 'invalid_request_error', code: null },
        });
        return;
      }
      if (action === 'content') {
        res.writeHead(200, {
          'content-type': 'application/octet-stream',
          'content-length': file.content.length,
        });
        res.end(file.content);
        return;
      }
      if (method === 'DELETE') {
        this.files.delete(id);
        json(res, 200, { id, object: 'file', deleted: true });
        return;
      }
      json(res, 200, file.meta);
      return;
    }
    if (id === undefined) {
      if (method === 'POST') {
        this.create(raw, res);
        return;
      }
      json(res, 200, list([...this.batches.values()]));
      return;
    }
    const batch = this.batches.get(id);
    if (!batch) {
      json(res, 404, {
        error: { message: `No batch found with id '${id}'.`, type: 'invalid_request_error', code: null },
      });
      return;
    }
    if (action === 'cancel' && method === 'POST') {
      if (batch['status'] === 'in_progress' || batch['status'] === 'validating') {
        batch['status'] = 'cancelled';
        batch['cancelled_at'] = Math.floor(Date.now() / 1000);
      }
    }
    json(res, 200, batch);
  }

  private addFile(purpose: string, filename: string, content: Buffer): Obj {
    const id = `file-mock${String(++this.made).padStart(4, '0')}`;
    const meta = {
      id,
      object: 'file',
      bytes: content.length,
      created_at: Math.floor(Date.now() / 1000),
      filename,
      purpose,
      status: 'processed',
    };
    this.files.set(id, { meta, content });
    return meta;
  }

  /** A multipart upload: its `purpose` field and its `file`. */
  private upload(contentType: string, raw: Buffer, res: ServerResponse): void {
    const form = mockForm(contentType, raw);
    if (!form) {
      json(res, 400, {
        error: { message: 'expected multipart/form-data', type: 'invalid_request_error' },
      });
      return;
    }
    const purpose = form.fields['purpose'] ?? '';
    const file = form.file?.bytes ?? null;
    const filename = form.file?.name || 'upload.jsonl';
    if (!file || !purpose) {
      json(res, 400, {
        error: { message: 'purpose and file are required', type: 'invalid_request_error' },
      });
      return;
    }
    json(res, 200, this.addFile(purpose, filename, file));
  }

  private create(raw: Buffer, res: ServerResponse): void {
    const body = JSON.parse(raw.toString('utf8')) as Obj;
    const input = this.files.get(String(body['input_file_id']));
    if (!input) {
      json(res, 400, { error: { message: 'input file not found', type: 'invalid_request_error' } });
      return;
    }
    const lines = this.linesOf(input.content);
    const id = `batch_mock${String(++this.made).padStart(4, '0')}`;
    const now = Math.floor(Date.now() / 1000);
    const batch: Obj = {
      id,
      object: 'batch',
      endpoint: body['endpoint'],
      errors: null,
      input_file_id: body['input_file_id'],
      completion_window: body['completion_window'] ?? '24h',
      status: 'in_progress',
      output_file_id: null,
      error_file_id: null,
      created_at: now,
      in_progress_at: now,
      completed_at: null,
      cancelled_at: null,
      request_counts: { total: lines.length, completed: 0, failed: 0 },
      metadata: body['metadata'] ?? null,
    };
    this.batches.set(id, batch);
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (batch['status'] !== 'in_progress') return;
      this.run(batch, lines);
    }, this.batchMs);
    this.timers.add(timer);
    json(res, 200, batch);
  }

  /** Runs a batch now, rather than when its time comes. */
  finishNow(id: string): void {
    const batch = this.batches.get(id);
    const input = batch ? this.files.get(String(batch['input_file_id'])) : undefined;
    if (!batch || !input || batch['status'] !== 'in_progress') return;
    this.run(batch, this.linesOf(input.content));
  }

  private linesOf(content: Buffer): Obj[] {
    return content
      .toString('utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Obj);
  }

  /** Answers each request of a batch, and completes it. */
  private run(batch: Obj, lines: Obj[]): void {
    const out: string[] = [];
    const errors: string[] = [];
    lines.forEach((line, i) => {
      const body = (line['body'] ?? {}) as Obj;
      const reqId = `batch_req_${String(i + 1).padStart(4, '0')}`;
      if (body['model'] === 'fault-batch-error') {
        errors.push(
          JSON.stringify({
            id: reqId,
            custom_id: line['custom_id'],
            response: null,
            error: { code: 'model_not_found', message: `The model ${String(body['model'])} does not exist.` },
          }),
        );
        return;
      }
      const answer = String(line['url']).endsWith('/embeddings') ? embeddingAnswer(body) : chatAnswer(body);
      out.push(
        JSON.stringify({
          id: reqId,
          custom_id: line['custom_id'],
          response: { status_code: 200, request_id: `req_batch_${i + 1}`, body: answer },
          error: null,
        }),
      );
    });
    const purpose = 'batch_output';
    if (out.length > 0)
      batch['output_file_id'] = this.addFile(
        purpose,
        'batch_output.jsonl',
        Buffer.from(`${out.join('\n')}\n`),
      )['id'];
    if (errors.length > 0)
      batch['error_file_id'] = this.addFile(
        purpose,
        'batch_errors.jsonl',
        Buffer.from(`${errors.join('\n')}\n`),
      )['id'];
    batch['status'] = 'completed';
    batch['completed_at'] = Math.floor(Date.now() / 1000);
    batch['request_counts'] = { total: lines.length, completed: out.length, failed: errors.length };
  }

  /** Anthropic's message batches: make one (its requests inline), retrieve, list, cancel or delete
   * it, and read its results once it has ended. */
  private messageBatch(method: string, path: string, raw: Buffer, res: ServerResponse): void {
    const [id, action] = path.slice('/v1/messages/batches'.length).replace(/^\//, '').split('/');
    const notFound = () =>
      json(res, 404, {
        type: 'error',
        error: { type: 'not_found_error', message: `No message batch ${id}.` },
      });
    if (!id) {
      if (method === 'GET') {
        json(res, 200, { ...list([...this.messageBatches.values()].map((b) => b.batch)) });
        return;
      }
      const requests = (JSON.parse(raw.toString('utf8')) as Obj)['requests'] as Obj[];
      const made = `msgbatch_mock${String(++this.made).padStart(4, '0')}`;
      const batch: Obj = {
        id: made,
        type: 'message_batch',
        processing_status: 'in_progress',
        request_counts: { processing: requests.length, succeeded: 0, errored: 0, canceled: 0, expired: 0 },
        ended_at: null,
        created_at: new Date().toISOString(),
        expires_at: new Date(Date.now() + 86_400_000).toISOString(),
        archived_at: null,
        cancel_initiated_at: null,
        results_url: null,
      };
      const kept = { batch, requests, results: [] as string[] };
      this.messageBatches.set(made, kept);
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        if (batch['processing_status'] === 'in_progress') this.endMessageBatch(kept, false);
      }, this.batchMs);
      this.timers.add(timer);
      json(res, 200, batch);
      return;
    }
    const kept = this.messageBatches.get(id);
    if (!kept) {
      notFound();
      return;
    }
    if (action === 'results') {
      if (kept.batch['processing_status'] !== 'ended') {
        notFound();
        return;
      }
      const body = Buffer.from(`${kept.results.join('\n')}\n`);
      res.writeHead(200, { 'content-type': 'application/binary', 'content-length': body.length });
      res.end(body);
      return;
    }
    if (action === 'cancel' && kept.batch['processing_status'] === 'in_progress')
      this.endMessageBatch(kept, true);
    if (method === 'DELETE') {
      this.messageBatches.delete(id);
      json(res, 200, { id, type: 'message_batch_deleted' });
      return;
    }
    json(res, 200, kept.batch);
  }

  /** Runs a message batch's requests now (or cancels them), and ends it. */
  finishMessageBatchNow(id: string): void {
    const kept = this.messageBatches.get(id);
    if (kept?.batch['processing_status'] === 'in_progress') this.endMessageBatch(kept, false);
  }

  private endMessageBatch(
    kept: { batch: Obj; requests: Obj[]; results: string[] },
    cancelled: boolean,
  ): void {
    const counts = { processing: 0, succeeded: 0, errored: 0, canceled: 0, expired: 0 };
    kept.results = kept.requests.map((r) => {
      const params = (r['params'] ?? {}) as Obj;
      let result: Obj;
      if (cancelled) {
        result = { type: 'canceled' };
        counts.canceled++;
      } else if (params['model'] === 'fault-batch-error') {
        result = {
          type: 'errored',
          error: { type: 'error', error: { type: 'invalid_request_error', message: 'model: not found' } },
        };
        counts.errored++;
      } else {
        const usage = { input_tokens: 25, output_tokens: 12, service_tier: 'batch' } as AnthropicUsage;
        result = { type: 'succeeded', message: anthropicMessage(String(params['model']), 'Hello!', usage) };
        counts.succeeded++;
      }
      return JSON.stringify({ custom_id: r['custom_id'], result });
    });
    const id = String(kept.batch['id']);
    Object.assign(kept.batch, {
      processing_status: 'ended',
      request_counts: counts,
      ended_at: new Date().toISOString(),
      ...(cancelled ? { cancel_initiated_at: new Date().toISOString() } : {}),
      // As Anthropic gives it: its own address, which a client of a gateway must not be sent to.
      results_url: `https://api.anthropic.com/v1/messages/batches/${id}/results`,
    });
  }

  stop(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}

/** A recorded chat completion of the request's model (or shape), as the batch's answer. */
function chatAnswer(body: Obj): Obj {
  const recs = chatRecordings().filter((r) => r.status === 200 && r.request['stream'] !== true);
  const rec = recs.find((r) => r.request['model'] === body['model']) ?? recs[0];
  return { ...(rec!.body as Obj), model: String((rec!.body as Obj)['model'] ?? body['model']) };
}

function embeddingAnswer(body: Obj): Obj {
  const recs = embeddingRecordings().filter((r) => r.status === 200);
  const rec = recs.find((r) => r.request['model'] === body['model']) ?? recs[0];
  return rec!.body as Obj;
}

/** A page of OpenAI's list format, the whole list in it. */
export const list = (data: Obj[]) => ({
  object: 'list',
  data,
  first_id: data[0]?.['id'] ?? null,
  last_id: data.at(-1)?.['id'] ?? null,
  has_more: false,
});

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** A multipart form as an upstream reads it: its text fields and its file. */
export function mockForm(
  contentType: string,
  raw: Buffer,
): { fields: Record<string, string>; file: { name: string; bytes: Buffer } | null; files: number } | null {
  const boundary = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType);
  if (!boundary) return null;
  const sep = Buffer.from(`--${boundary[1] ?? boundary[2]}`);
  const fields: Record<string, string> = {};
  let file: { name: string; bytes: Buffer } | null = null;
  let files = 0;
  let at = raw.indexOf(sep);
  while (at >= 0) {
    const next = raw.indexOf(sep, at + sep.length);
    if (next < 0) break;
    const part = raw.subarray(at + sep.length + 2, next - 2);
    const split = part.indexOf('\r\n\r\n');
    const head = part.subarray(0, split).toString('utf8');
    const body = part.subarray(split + 4);
    const name = /name="([^"]+)"/.exec(head)?.[1];
    const filename = /filename="([^"]*)"/.exec(head)?.[1];
    if (filename !== undefined) {
      file = { name: filename, bytes: Buffer.from(body) };
      files++;
    } else if (name !== undefined) fields[name] = body.toString('utf8');
    at = next;
  }
  return { fields, file, files };
}
