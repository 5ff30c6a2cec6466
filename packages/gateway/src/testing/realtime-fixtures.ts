import type { IncomingMessage, Server, ServerResponse } from 'node:http';
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

  /** The WebRTC calls made (`POST /v1/realtime/calls`): the SDP offer and session each was made
   * with, whether it was hung up, and its sideband connection, once one is open. */
  readonly calls = new Map<
    string,
    { sdp: string; session: Obj; hungUp: boolean; sideband: WebSocket | null }
  >();

  /** `POST /v1/realtime/calls` (a multipart form of `sdp` and `session`, with the provider's key):
   * 201 with an SDP answer and the call's `Location`; and `POST /v1/realtime/calls/{id}/hangup`,
   * which ends the call and closes its sideband. */
  callRequest(req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    const path = (req.url ?? '').split('?')[0] ?? '';
    if (!String(req.headers.authorization ?? '').startsWith('Bearer sk-')) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          error: {
            message: 'Incorrect API key provided.',
            type: 'invalid_request_error',
            code: 'invalid_api_key',
          },
        }),
      );
      return;
    }
    const hangup = /^\/v1\/realtime\/calls\/([^/]+)\/hangup$/.exec(path);
    if (hangup) {
      const call = this.calls.get(hangup[1]!);
      if (!call || call.hungUp) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            error: { message: 'Call not found.', type: 'invalid_request_error', code: 'not_found' },
          }),
        );
        return;
      }
      call.hungUp = true;
      call.sideband?.close(1000, 'call ended');
      res.writeHead(200);
      res.end();
      return;
    }
    const boundary = /boundary=([^;\s]+)/.exec(String(req.headers['content-type'] ?? ''))?.[1];
    const fields: Record<string, string> = {};
    for (const part of boundary ? body.toString('utf8').split(`--${boundary}`) : []) {
      const m = /name="([^"]+)"\r\n(?:[^\r\n]+\r\n)*\r\n([\s\S]*)\r\n$/.exec(part);
      if (m) fields[m[1]!] = m[2]!;
    }
    if (!fields['sdp']?.startsWith('v=0')) {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          error: { message: 'Invalid SDP offer.', type: 'invalid_request_error', code: 'invalid_offer' },
        }),
      );
      return;
    }
    const id = `rtc_${this.calls.size + 1}`;
    this.calls.set(id, {
      sdp: fields['sdp'],
      session: JSON.parse(fields['session'] ?? '{}') as Obj,
      hungUp: false,
      sideband: null,
    });
    res.writeHead(201, { 'content-type': 'application/sdp', location: `/v1/realtime/calls/${id}` });
    res.end(`v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=answer for ${id}\r\n`);
  }

  /** What the model of a call answers its caller (who talks to the provider, not to the gateway): a
   * response's events, sent on the call's sideband as on any session; `slow` leaves it unfinished,
   * and `spokeMs` has the caller speak that long first (`speech_started` and `speech_stopped`). */
  speak(callId: string, opts: { slow?: boolean; max_output_tokens?: number; spokeMs?: number } = {}): void {
    const ws = this.calls.get(callId)?.sideband;
    if (!ws) throw new Error(`no sideband for ${callId}`);
    // The caller's speech, as the provider's voice detection marks it, before the response.
    if (opts.spokeMs) {
      ws.send(
        JSON.stringify({
          type: 'input_audio_buffer.speech_started',
          audio_start_ms: 1000,
          item_id: 'item_s',
        }),
      );
      ws.send(
        JSON.stringify({
          type: 'input_audio_buffer.speech_stopped',
          audio_end_ms: 1000 + opts.spokeMs,
          item_id: 'item_s',
        }),
      );
    }
    this.respond(
      ws,
      { max_output_tokens: opts.max_output_tokens, instructions: opts.slow ? 'slow' : '' },
      'inf',
    );
  }

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
      // A call made with the instructions `refuse sideband` has its sideband refused.
      const callId = new URL(req.url ?? '/', 'http://mock').searchParams.get('call_id');
      if (callId !== null && this.calls.get(callId)?.session['instructions'] === 'refuse sideband') {
        socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n');
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.session(req, ws));
    });
  }

  private session(req: IncomingMessage, ws: WebSocket): void {
    const params = new URL(req.url ?? '/', 'http://mock').searchParams;
    const call = this.calls.get(params.get('call_id') ?? '');
    if (call) call.sideband = ws;
    const model = params.get('model') ?? String(call?.session['model'] ?? '');
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
      const r = (e['response'] as Obj | undefined) ?? {};
      this.respond(ws, { ...r, instructions: JSON.stringify(e) }, session['max_output_tokens'] ?? 'inf');
    });
  }

  private responses = 0;

  /** A response's events: `response.created`, an audio delta and a transcript delta, then
   * `response.done` with REALTIME_USAGE (`failed` where its instructions say `fail`; none where they
   * say `slow`). It says the `max_output_tokens` it was asked with, else `sessionMax`. */
  private respond(ws: WebSocket, r: Obj, sessionMax: unknown): void {
    const send = (e: Obj) => ws.send(JSON.stringify({ event_id: `event_r${++this.responses}`, ...e }));
    const id = `resp_${this.responses}`;
    const instructions = String(r['instructions'] ?? '');
    send({
      type: 'response.created',
      response: {
        id,
        object: 'realtime.response',
        status: 'in_progress',
        max_output_tokens: r['max_output_tokens'] ?? sessionMax,
      },
    });
    send({
      type: 'response.output_audio.delta',
      response_id: id,
      delta: Buffer.alloc(4800, 7).toString('base64'),
    });
    send({ type: 'response.output_audio_transcript.delta', response_id: id, delta: 'Hello there.' });
    // A response whose instructions say `slow` takes a minute to end: long enough to be cut off.
    if (instructions.includes('slow')) return;
    send({
      type: 'response.done',
      response: {
        id,
        object: 'realtime.response',
        status: instructions.includes('fail') ? 'failed' : 'completed',
        output: [],
        usage: REALTIME_USAGE,
      },
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
