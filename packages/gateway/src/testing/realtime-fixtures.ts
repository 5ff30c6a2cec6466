import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';

type Obj = Record<string, unknown>;

/** The usage each response of the mock's realtime sessions reports: 20 text and 100 audio tokens
 * in (none cached), 10 text and 50 audio tokens out. */
export const REALTIME_USAGE = {
  total_tokens: 180,
  input_tokens: 120,
  output_tokens: 60,
  input_token_details: {
    text_tokens: 20,
    audio_tokens: 100,
    image_tokens: 0,
    cached_tokens: 0,
    cached_tokens_details: { text_tokens: 0, audio_tokens: 0, image_tokens: 0 },
  },
  output_token_details: { text_tokens: 10, audio_tokens: 50 },
};

/** The usage of each input audio transcription of the mock's sessions (with one set up): 40 audio
 * tokens in, 12 text tokens out. */
export const TRANSCRIPTION_USAGE = {
  type: 'tokens',
  total_tokens: 52,
  input_tokens: 40,
  input_token_details: { text_tokens: 0, audio_tokens: 40 },
  output_tokens: 12,
};

/**
 * OpenAI's Realtime API (a WebSocket at /v1/realtime?model=...), in its documented event format:
 * `session.created` once open; `session.updated` for a `session.update` (its settings kept);
 * `input_audio_buffer.cleared` for a clear; for an
 * `input_audio_buffer.commit`, `input_audio_buffer.committed` and, where the session transcribes
 * its input, a `conversation.item.input_audio_transcription.completed` with the usage below; for a
 * `response.create`,
 * `response.created`, an audio delta and a transcript delta, then `response.done` with the usage
 * above (a response whose instructions say `fail` ends `failed`, and one that says `slow` does not
 * end while the test runs). A session without the
 * provider's key is refused with a 401, as OpenAI refuses it. Each session's upgrade request and
 * the events its client sent are kept. A response says the `max_output_tokens` it was asked
 * with, or the session's (`inf` by default).
 */
export class MockRealtime {
  private readonly wss = new WebSocketServer({ noServer: true });
  readonly sessions: { url: string; headers: IncomingMessage['headers']; events: Obj[]; binary: number }[] =
    [];

  attach(server: Server): void {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (!(req.url ?? '').startsWith('/v1/realtime')) return void socket.destroy();
      if (!String(req.headers.authorization ?? '').startsWith('Bearer sk-')) {
        const body = JSON.stringify({
          error: {
            message: 'Incorrect API key provided.',
            type: 'invalid_request_error',
            code: 'invalid_api_key',
          },
        });
        socket.end(
          `HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
        );
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.session(req, ws));
    });
  }

  private session(req: IncomingMessage, ws: WebSocket): void {
    const model = new URL(req.url ?? '/', 'http://mock').searchParams.get('model') ?? '';
    const kept = { url: req.url ?? '', headers: req.headers, events: [] as Obj[], binary: 0 };
    this.sessions.push(kept);
    let n = 0;
    const send = (e: Obj) => ws.send(JSON.stringify({ event_id: `event_${++n}`, ...e }));
    let session: Obj = {
      id: `sess_${this.sessions.length}`,
      object: 'realtime.session',
      type: 'realtime',
      model,
    };
    send({ type: 'session.created', session });
    ws.on('message', (data: RawData, binary: boolean) => {
      if (binary) {
        kept.binary++;
        return;
      }
      let e: Obj;
      try {
        e = JSON.parse(data.toString()) as Obj;
      } catch {
        send({
          type: 'error',
          error: { type: 'invalid_request_error', code: 'invalid_json', message: 'bad JSON' },
        });
        return;
      }
      kept.events.push(e);
      if (e['type'] === 'session.update') {
        session = { ...session, ...(e['session'] as Obj) };
        send({ type: 'session.updated', session });
      }
      if (e['type'] === 'input_audio_buffer.clear') send({ type: 'input_audio_buffer.cleared' });
      if (e['type'] === 'input_audio_buffer.commit') {
        const item = `item_${n}`;
        send({ type: 'input_audio_buffer.committed', item_id: item });
        const input = (session['audio'] as Obj | undefined)?.['input'] as Obj | undefined;
        if (input?.['transcription'])
          send({
            type: 'conversation.item.input_audio_transcription.completed',
            item_id: item,
            content_index: 0,
            transcript: 'Hello.',
            usage: TRANSCRIPTION_USAGE,
          });
      }
      if (e['type'] !== 'response.create') return;
      const id = `resp_${n}`;
      const asked = (e['response'] as Obj | undefined)?.['max_output_tokens'];
      const max = asked ?? session['max_output_tokens'] ?? 'inf';
      const failed = JSON.stringify(e).includes('fail');
      send({
        type: 'response.created',
        response: { id, object: 'realtime.response', status: 'in_progress', max_output_tokens: max },
      });
      send({
        type: 'response.output_audio.delta',
        response_id: id,
        delta: Buffer.alloc(4800, 7).toString('base64'),
      });
      send({ type: 'response.output_audio_transcript.delta', response_id: id, delta: 'Hello there.' });
      // A response whose instructions say `slow` takes a minute to end: long enough to be cut off.
      if (JSON.stringify(e).includes('slow')) return;
      send({
        type: 'response.done',
        response: {
          id,
          object: 'realtime.response',
          status: failed ? 'failed' : 'completed',
          output: [],
          usage: REALTIME_USAGE,
        },
      });
    });
  }

  /** How many of its sessions are open. */
  get open(): number {
    return this.wss.clients.size;
  }

  close(): void {
    for (const c of this.wss.clients) c.terminate();
    this.wss.close();
  }
}
