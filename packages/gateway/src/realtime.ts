import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';
import { request } from 'undici';
import type { RawData, WebSocket, WebSocketServer } from 'ws';
import { attribute } from './attribution.js';
import { type Hold, reserveBudgets, settleBudgets } from './budget-guard.js';
import { readForm } from './form.js';
import { quotaBucket, upstreamQuotaExceeded } from './forward.js';
import type { AttemptContext, AttemptOutcome } from './meter.js';
import { modelAllowed } from './model-allow.js';
import { type BudgetRule, countsModel, type RateLimitRule, rateLimited, windowsFor } from './policy.js';
import { ENDPOINT_API, priceProviderOf, upstreamFor } from './providers.js';
import type { Accumulated } from './relay.js';
import {
  badRequest,
  errorBody,
  type GatewayError,
  invalidKey,
  noRoute,
  notAllowed,
  sendError,
  stateUnavailable,
} from './replies.js';
import { readBody } from './request-body.js';
import type { Attempt } from './router.js';
import type { RateBucket, RateResult } from './state/shared-state.js';
import { isError } from './stored.js';
import { countTokens } from './tokenizer.js';
import type { GatewayDeps, ProviderConfig, VirtualKey } from './types.js';
import { parseObject } from './upstream-answer.js';

type Obj = Record<string, unknown>;

/**
 * OpenAI's Realtime API through the gateway: a WebSocket at `/v1/realtime?model=...`, opened with
 * a virtual key (the `Authorization` header, or a browser's `openai-insecure-api-key.<key>`
 * subprotocol), relayed frame by frame to the provider the model routes to, with the provider's
 * key. A session counts as one request against the key's RPM (and its scopes'); it opens only for
 * a model the key may use and while its budgets have room.
 *
 * Each `response.done` the provider sends is metered as a call, from the usage it carries (text,
 * audio and image tokens in, cached ones among them, text and audio tokens out), attributed as the
 * session's key and headers say, its request id the session's. Each response is reserved on the
 * budgets and the TPM limits as it starts, and settled with what it cost as it ends; a block budget
 * that a response exhausts closes the session (code 1008) after an `error` event that says which
 * budget, as a call past it would be refused. A response the session's end cuts off is metered from
 * what it relayed, estimated. The session's input audio transcriptions
 * (`conversation.item.input_audio_transcription.completed`, billed apart, by the transcription
 * model the session set up) are metered as calls of that model too.
 *
 * A WebRTC call (`POST /v1/realtime/calls`) is metered the same way, from the events on its
 * sideband connection, which the gateway opens itself (see `call`).
 */

/** The longest the provider may take to accept the connection. */
const CONNECT_TIMEOUT_MS = 10_000;
/** The largest frame either side may send (a minute of 24 kHz PCM as base64 is 3.8 MB). */
const MAX_FRAME_BYTES = 16 * 1024 * 1024;
/** A browser's key, in a subprotocol (WebSocket gives no way to set headers there). */
const KEY_PROTOCOL = 'openai-insecure-api-key.';

export interface RealtimeEnv {
  deps: GatewayDeps;
  authenticate(req: IncomingMessage): Promise<VirtualKey | null>;
  /** Where a model's realtime sessions may go, in order. */
  plan(model: string, tenant: string): Attempt[];
  /** Meters a call: its cost, or null unpriced. */
  record(ctx: AttemptContext, out: AttemptOutcome, acc: Accumulated): bigint | null;
  /** A provider by its id, as a tenant's calls reach it. */
  provider(id: string, tenant: string): ProviderConfig | undefined;
  /** The rate limits that hold a key's calls of a model: its own, then its scopes'. */
  rateBuckets(
    key: VirtualKey,
    attribution: ReturnType<typeof attribute>,
    model: string,
  ): Promise<{ bucket: RateBucket; rule: RateLimitRule | null }[]>;
}

/** A limit that holds a session: a key's or a scope's rate limit (`rule` null for the key's own),
 * or its upstream deployment's quota (`upstream`). */
interface SessionLimit {
  bucket: RateBucket;
  rule: RateLimitRule | null;
  upstream?: Attempt;
}

/** The 429 of a limit that refused a session or a response. */
const limitRefusal = (r: RateResult, key: VirtualKey, limit: SessionLimit): GatewayError =>
  limit.upstream ? upstreamQuotaExceeded(r, limit.upstream) : rateLimited(r, key, limit.rule);

/** Audio tokens a second of speech, as OpenAI's realtime models bill it: 10 a second of the
 * input's audio, 20 of the output's. They estimate the input appended since a session's last
 * response, for the next one's reservation, and the audio of a response cut off before its usage
 * came. */
const AUDIO_IN_TOKENS_PER_SECOND = 10;
const AUDIO_OUT_TOKENS_PER_SECOND = 20;
/** 24 kHz 16-bit PCM, the default format both ways: bytes a second. */
const PCM_BYTES_PER_SECOND = 48_000;

/** The bytes a second of audio takes in a session's format: the GA API's `{type, rate}`, or the
 * beta's name (`pcm16`, `g711_ulaw`, `g711_alaw`); null when it names none. */
function bytesPerSecond(format: unknown): number | null {
  if (typeof format === 'string')
    return format === 'pcm16' ? PCM_BYTES_PER_SECOND : format.startsWith('g711') ? 8_000 : null;
  if (typeof format !== 'object' || format === null) return null;
  const { type, rate } = format as Obj;
  if (type === 'audio/pcm') return typeof rate === 'number' && rate > 0 ? 2 * rate : PCM_BYTES_PER_SECOND;
  return type === 'audio/pcmu' || type === 'audio/pcma' ? 8_000 : null;
}

/** The bytes a base64 string decodes to. */
function base64Bytes(b64: string): number {
  let pad = 0;
  if (b64.endsWith('==')) pad = 2;
  else if (b64.endsWith('=')) pad = 1;
  return Math.max(0, Math.floor((b64.length * 3) / 4) - pad);
}

/** The events whose `delta` is output text (or a tool call's arguments), GA and beta names. */
const TEXT_DELTAS = new Set([
  'response.output_text.delta',
  'response.text.delta',
  'response.output_audio_transcript.delta',
  'response.audio_transcript.delta',
  'response.function_call_arguments.delta',
]);
/** The events whose `delta` is output audio, base64. */
const AUDIO_DELTAS = new Set(['response.output_audio.delta', 'response.audio.delta']);

/** What a `session.created` or `session.updated` event says the session is set up with: the model
 * that transcribes its input audio (the GA API's `session.audio.input.transcription`, the beta's
 * `session.input_audio_transcription`), and its audio formats' bytes a second, each null where it
 * names none. */
function settingsOf(text: string): {
  transcriber: string | null;
  inRate: number | null;
  outRate: number | null;
} {
  const session = parseObject(text)?.['session'] as Obj | undefined;
  const audio = session?.['audio'] as Obj | undefined;
  const input = audio?.['input'] as Obj | undefined;
  const output = audio?.['output'] as Obj | undefined;
  const setting = (input?.['transcription'] ?? session?.['input_audio_transcription']) as Obj | undefined;
  return {
    transcriber: typeof setting?.['model'] === 'string' ? setting['model'] : null,
    inRate: bytesPerSecond(input?.['format'] ?? session?.['input_audio_format']),
    outRate: bytesPerSecond(output?.['format'] ?? session?.['output_audio_format']),
  };
}

/** The subprotocols a client offered, as the header lists them. */
function protocolsOf(req: IncomingMessage): string[] {
  const h = req.headers['sec-websocket-protocol'];
  return typeof h === 'string'
    ? h
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean)
    : [];
}

/** The model a transcription session (`intent=transcription`, no model named) is routed and held
 * to budgets as, until its settings name the one it transcribes with. */
const TRANSCRIPTION_MODEL = 'gpt-4o-transcribe';

/** How long a WebRTC call's owner is kept in the shared state, for a hang-up through any replica:
 * longer than OpenAI lets a session run (an hour). */
const CALL_KEPT_MS = 2 * 60 * 60 * 1000;
const callKey = (id: string) => `rtcall:${id}`;

/** Where a provider takes a model's realtime requests, with its headers but for the JSON body's
 * (a WebSocket, a hang-up and a call's form have none). */
function realtimeTarget(p: ProviderConfig, model: string, clientHeaders: IncomingMessage['headers']) {
  const target = upstreamFor(p, 'realtime', model, clientHeaders);
  const { 'content-type': _json, 'accept-encoding': _coding, ...headers } = target.headers;
  return { target, headers };
}

/** Hangs up a provider's WebRTC call. */
async function hangUpAt(p: ProviderConfig, model: string, id: string): Promise<void> {
  const { target, headers } = realtimeTarget(p, model, {});
  const r = await request(`${target.origin}${target.path}/calls/${encodeURIComponent(id)}/hangup`, {
    method: 'POST',
    headers,
    headersTimeout: p.timeout_ms ?? CONNECT_TIMEOUT_MS,
  });
  await r.body.dump();
  if (r.statusCode === 404) throw new CallGone();
  if (r.statusCode >= 300) throw new Error(`the upstream ${p.id} answered the hang-up ${r.statusCode}`);
}

/** A call the provider no longer knows (it has ended). */
class CallGone extends Error {}

/** The answer for a WebRTC call this gateway process does not have under way (`where` says why). */
const callNotFound = (id: string, where: string): GatewayError => ({
  status: 404,
  type: 'invalid_request_error',
  code: 'call_not_found',
  message: `No call ${id} is under way through this gateway${where}`,
});

/** The answer to a session asked for as the gateway stops. */
const stopping = (): GatewayError => ({
  status: 503,
  type: 'api_error',
  code: 'gateway_stopping',
  message: 'The gateway is stopping; open the session again.',
});

/** A browser's key, offered as a subprotocol, taken as its Authorization (where it sent none). */
function keyFromProtocol(req: IncomingMessage): void {
  const inProtocol = protocolsOf(req).find((p) => p.startsWith(KEY_PROTOCOL));
  if (inProtocol && !req.headers.authorization)
    req.headers.authorization = `Bearer ${inProtocol.slice(KEY_PROTOCOL.length)}`;
}

/** A refusal written on the socket as an HTTP answer, before any upgrade. */
function refuse(socket: Duplex, e: GatewayError): void {
  const body = errorBody('openai', e);
  const reason = e.status === 401 ? 'Unauthorized' : e.status === 403 ? 'Forbidden' : 'Error';
  const headers = Object.entries(e.headers ?? {})
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  socket.end(
    `HTTP/1.1 ${e.status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n${headers}\r\n${body}`,
  );
}

/** Where a provider takes a model's realtime session, and with which headers. */
export function upstreamUrl(
  p: ProviderConfig,
  model: string,
  req: IncomingMessage,
  transcription = false,
): { url: string; headers: Record<string, string> } {
  const { target, headers } = realtimeTarget(p, model, req.headers);
  const beta = req.headers['openai-beta'];
  if (typeof beta === 'string') headers['openai-beta'] = beta;
  const ws = target.origin.replace(/^http/, 'ws');
  // Azure's dated versions take the deployment in the query (its v1 API as OpenAI does, as model).
  if (p.kind === 'azure' && p.api_version && p.api_version !== 'v1') {
    const base = new URL(p.base_url).pathname.replace(/\/+$/, '');
    const deployment = p.deployments?.[model] ?? model;
    const q = transcription
      ? `api-version=${encodeURIComponent(p.api_version)}&intent=transcription`
      : `api-version=${encodeURIComponent(p.api_version)}&deployment=${encodeURIComponent(deployment)}`;
    return { url: `${ws}${base}/openai/realtime?${q}`, headers };
  }
  // A transcription session names no model: the one it transcribes with comes in its settings.
  const q = transcription ? 'intent=transcription' : `model=${encodeURIComponent(target.bodyModel)}`;
  return { url: `${ws}${target.path}?${q}`, headers };
}

/** Input tokens: text (and images), and audio. */
interface Input {
  text: number;
  audio: number;
}

/** A response from its `response.created` to its `response.done`: its input (as reserved), what
 * it holds of the budgets and the rate limits, and the output relayed so far, which prices it if
 * the session ends before its usage comes. */
interface Underway {
  input: Input;
  /** Text the client added since the last response, counted as the reservation is made. */
  newText: string[];
  /** The most output it may make: `max_output_tokens`, else gateway.default_max_output. */
  output: number;
  hold: Hold | null;
  /** The tokens taken from the rate limits' buckets for it, and those buckets. */
  rated: number;
  buckets: RateBucket[];
  text: string[];
  audioBytes: number;
  since: number;
}

/** What a session has said of itself, for its metering: its transcriber and audio formats, the
 * input its last response was billed (the conversation so far), what the client added since, and
 * its responses under way. */
interface Tally {
  transcriber: string | null;
  inRate: number;
  outRate: number;
  last: Input;
  /** Audio appended and not yet committed, committed since the last response, and text items. */
  uncommittedBytes: number;
  newAudioBytes: number;
  /** Where the speech a WebRTC call's provider detected started (its `audio_start_ms`). */
  speechStartMs: number | null;
  newText: string[];
  responses: Map<string, Underway>;
  /** Why responses still under way at the end were cut off: which side closed first. */
  cut: string | null;
}

/** What a session was opened for: whose key, which model, where it goes, and the budgets that
 * count it. */
interface Session {
  key: VirtualKey;
  model: string;
  attempt: Attempt;
  rules: BudgetRule[];
  /** The rate limits with a TPM that hold the session's responses (their RPM counted the session). */
  buckets: SessionLimit[];
  /** A transcription session (`intent=transcription`): it names no model as it opens, and the key
   * must be allowed the transcription model its settings name. */
  transcription: boolean;
  /** Whose its calls are: the key's and its headers' attribution as it opened. */
  attribution: ReturnType<typeof attribute>;
}

/** A session open: what it was opened for, its sockets, and its tally. */
interface Meta {
  session: Session;
  sessionId: string;
  since: number;
  /** The client's socket; null for a WebRTC call, whose client talks to the provider itself and
   * whose events the gateway reads on the call's sideband connection (`upstream`). */
  client: WebSocket | null;
  upstream: WebSocket;
  tally: Tally;
  /** A WebRTC call's hang-up, which ends it where closing the sideband would not. */
  hangup: (() => Promise<void>) | null;
}

/** Reads what the client sends for the input it adds: audio appended to the buffer (counted once
 * committed), and items (their text, and their audio). */
function fromClient(tally: Tally, text: string): void {
  const append = text.includes('"input_audio_buffer.append"');
  if (!append && !text.includes('"conversation.item.create"')) return;
  const event = parseObject(text);
  if (!event) return;
  if (event['type'] === 'input_audio_buffer.append') {
    if (typeof event['audio'] === 'string') tally.uncommittedBytes += base64Bytes(event['audio']);
    return;
  }
  if (event['type'] !== 'conversation.item.create') return;
  const item = event['item'] as Obj | undefined;
  if (typeof item !== 'object' || item === null) return;
  // A tool's output, or the parts of a message.
  for (const field of ['output', 'arguments'] as const)
    if (typeof item[field] === 'string') tally.newText.push(item[field]);
  const content = Array.isArray(item['content']) ? (item['content'] as Obj[]) : [];
  for (const part of content) {
    if (typeof part !== 'object' || part === null) continue;
    if (typeof part['text'] === 'string') tally.newText.push(part['text']);
    if (typeof part['transcript'] === 'string') tally.newText.push(part['transcript']);
    if (typeof part['audio'] === 'string') tally.newAudioBytes += base64Bytes(part['audio']);
  }
}

/** Adds the speech a `speech_stopped` event ends (since its `speech_started`) to the input the
 * client added, as bytes of the session's input format. */
function spoke(tally: Tally, text: string): void {
  const event = parseObject(text);
  if (!event) return;
  const start = event['audio_start_ms'];
  const end = event['audio_end_ms'];
  if (event['type'] === 'input_audio_buffer.speech_started' && typeof start === 'number')
    tally.speechStartMs = start;
  else if (event['type'] === 'input_audio_buffer.speech_stopped' && typeof end === 'number') {
    const from = tally.speechStartMs ?? end;
    tally.newAudioBytes += (Math.max(0, end - from) / 1000) * tally.inRate;
    tally.speechStartMs = null;
  }
}

/** Adds an output delta the provider sent to its response's tally. */
function relayed(tally: Tally, text: string): void {
  const event = parseObject(text);
  if (!event) return;
  const type = event['type'];
  const delta = event['delta'];
  const id = event['response_id'];
  if (typeof type !== 'string' || typeof delta !== 'string' || typeof id !== 'string') return;
  const u = tally.responses.get(id);
  if (!u) return;
  if (AUDIO_DELTAS.has(type)) u.audioBytes += base64Bytes(delta);
  else if (TEXT_DELTAS.has(type)) u.text.push(delta);
}

/** Starts a response's tally at its `response.created`, with the input the client added since the
 * last response (now its); its id, or null. */
function started(tally: Tally, text: string, defaultOutput: number): string | null {
  const response = parseObject(text)?.['response'] as Obj | undefined;
  const id = response?.['id'];
  if (typeof id !== 'string') return null;
  const max = response?.['max_output_tokens'];
  const audio = Math.ceil((tally.newAudioBytes / tally.inRate) * AUDIO_IN_TOKENS_PER_SECOND);
  tally.responses.set(id, {
    // What the client added; the last response's input is added as its reservation is made, after
    // that response's usage (metered in order) has come.
    input: { text: 0, audio },
    newText: tally.newText,
    output: typeof max === 'number' && Number.isInteger(max) && max > 0 ? max : defaultOutput,
    hold: null,
    rated: 0,
    buckets: [],
    text: [],
    audioBytes: 0,
    since: performance.now(),
  });
  tally.newText = [];
  tally.newAudioBytes = 0;
  return id;
}

/** A socket's states, open and closed, as the WebSocket standard numbers them (ws's
 * `WebSocket.OPEN` and `CLOSED`, known here without loading ws). */
const OPEN = 1;
const CLOSED = 3;

/** The WebSocket library, loaded at the first session, not at start: a gateway that serves none
 * never pays for it (about 30 ms and 2 MB of heap). */
let wsModule: typeof import('ws') | null = null;
const ws = (): typeof import('ws') =>
  (wsModule ??= createRequire(import.meta.url)('ws') as typeof import('ws'));

export class RealtimeSessions {
  private serverRef: WebSocketServer | null = null;
  private get wss(): WebSocketServer {
    this.serverRef ??= new (ws().WebSocketServer)({
      noServer: true,
      maxPayload: MAX_FRAME_BYTES,
      perMessageDeflate: false,
      // The client is answered the protocol it offered that is not its key ('realtime').
      handleProtocols: (offered) => [...offered].find((p) => !p.startsWith(KEY_PROTOCOL)) ?? false,
    });
    return this.serverRef;
  }
  /** The sessions open: the provider's socket of each, the client's it is relayed to (none for a
   * WebRTC call's sideband), and how to end its metering (the responses it cut off). */
  private readonly open = new Map<WebSocket, { client: WebSocket | null; end(why: string): Promise<void> }>();
  /** Set as the gateway stops: the sessions it closes are cut off by it. */
  private closing = false;

  constructor(private readonly env: RealtimeEnv) {}

  /** Whether an upgrade request is for a realtime session. */
  static wants(url: string | undefined): boolean {
    if (!url) return false;
    const q = url.indexOf('?');
    return (q < 0 ? url : url.slice(0, q)) === '/v1/realtime';
  }

  /** How many sessions are open. */
  get size(): number {
    return this.open.size;
  }

  /** WebRTC calls made through the gateway and not yet ended: whose each is, and its hang-up. */
  private readonly calls = new Map<
    string,
    { tenant: string; hangup(): Promise<void>; sideband: WebSocket; clients: Set<WebSocket> }
  >();

  /** Whether a request is one of a WebRTC call's: its making (`POST /v1/realtime/calls`), or its
   * hang-up (`POST /v1/realtime/calls/{id}/hangup`). */
  static callRoute(method: string | undefined, path: string): boolean {
    return (
      method === 'POST' &&
      (path === '/v1/realtime/calls' || /^\/v1\/realtime\/calls\/[^/]+\/hangup$/.test(path))
    );
  }

  /**
   * A WebRTC call, made as OpenAI's unified interface makes one: the client's SDP offer (a multipart
   * form of `sdp` and `session`, the session's settings with its `model`; or an `application/sdp`
   * body, with `?model=`) goes to the provider with its key, once the key may make the session.
   * The media then flows between the client and the provider. Before the SDP answer goes back, the
   * gateway opens the call's sideband connection (`/realtime?call_id=`), on which it reads the
   * call's events and meters it as any session, response by response; a call whose sideband cannot
   * be opened is hung up, not run unmetered. A block budget the call spends hangs it up.
   */
  async call(req: IncomingMessage, res: ServerResponse, key: VirtualKey): Promise<void> {
    const path = (req.url ?? '').split('?')[0] ?? '';
    if (path !== '/v1/realtime/calls') return this.hangUp(req, res, key, path.split('/')[4] ?? '');
    const deps = this.env.deps;
    const raw = await readBody(req, deps.config.body_limit_bytes ?? 32 * 1024 * 1024);
    if (!Buffer.isBuffer(raw)) return sendError(res, 'openai', raw);
    if (this.closing) return sendError(res, 'openai', stopping());
    const type = req.headers['content-type'];
    const form = readForm(raw, type);
    let sdp: string | null = null;
    let settings: Obj = {};
    if (form) {
      const given = form.fields['sdp'];
      sdp = typeof given === 'string' ? given : null;
      const session = form.fields['session'];
      if (typeof session === 'string') {
        const parsed = parseObject(session);
        if (!parsed)
          return sendError(
            res,
            'openai',
            badRequest('The `session` field is not a JSON object.', 'invalid_json'),
          );
        settings = parsed;
      }
    } else if (/^application\/sdp\b/i.test(type ?? '')) sdp = raw.toString('utf8');
    if (!sdp?.startsWith('v=0'))
      return sendError(
        res,
        'openai',
        badRequest(
          'A call is made with its SDP offer: the `sdp` field of a multipart form, or an application/sdp body.',
          'invalid_offer',
        ),
      );
    const asked = settings['model'];
    const model =
      typeof asked === 'string' ? asked : new URL(req.url ?? '/', 'http://gateway').searchParams.get('model');
    const checked = await this.authorize(key, model, req.headers);
    if (isError(checked)) return sendError(res, 'openai', checked);
    const { attempt } = checked;
    const p = attempt.provider;
    if (p.kind === 'azure' && p.api_version && p.api_version !== 'v1')
      return sendError(
        res,
        'openai',
        badRequest(`The provider ${p.id} takes WebRTC calls on Azure's v1 API only.`, 'unsupported_provider'),
      );
    const { target, headers } = realtimeTarget(p, attempt.model, req.headers);
    const boundary = `tally-${deps.newId()}`;
    const parts = [
      ['sdp', sdp],
      ['session', JSON.stringify({ type: 'realtime', ...settings, model: target.bodyModel })],
    ]
      .map(
        ([name, value]) =>
          `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`,
      )
      .join('');
    const timeout = p.timeout_ms ?? CONNECT_TIMEOUT_MS;
    let made: Awaited<ReturnType<typeof request>>;
    try {
      made = await request(`${target.origin}${target.path}/calls`, {
        method: 'POST',
        headers: { ...headers, 'content-type': `multipart/form-data; boundary=${boundary}` },
        body: `${parts}--${boundary}--\r\n`,
        headersTimeout: timeout,
        bodyTimeout: timeout,
      });
    } catch (err) {
      return sendError(res, 'openai', {
        status: 502,
        type: 'api_error',
        code: 'upstream_connection_error',
        message: `The upstream ${p.id} could not be reached: ${(err as Error).message}`,
      });
    }
    const answer = Buffer.from(await made.body.arrayBuffer());
    if (made.statusCode >= 300) {
      // The provider's refusal (a bad offer, a model it does not serve), passed on as it came.
      res.writeHead(made.statusCode, {
        'content-type': String(made.headers['content-type'] ?? 'application/json'),
      });
      res.end(answer);
      return;
    }
    const id = String(made.headers['location'] ?? '')
      .split('?')[0]!
      .split('/')
      .filter(Boolean)
      .at(-1);
    const hangup = () => hangUpAt(p, attempt.model, id ?? '');
    const failed = (why: string) => {
      sendError(res, 'openai', {
        status: 502,
        type: 'api_error',
        code: 'upstream_sideband_unavailable',
        message: `The call could not be metered, so it was ended: ${why}`,
      });
    };
    if (!id) return failed(`the upstream ${p.id} named no call id`);
    const sideband = new (ws().WebSocket)(
      `${target.origin.replace(/^http/, 'ws')}${target.path}?call_id=${encodeURIComponent(id)}`,
      {
        headers,
        perMessageDeflate: false,
        maxPayload: MAX_FRAME_BYTES,
        handshakeTimeout: Math.min(timeout, CONNECT_TIMEOUT_MS),
      },
    );
    const clients = new Set<WebSocket>();
    this.calls.set(id, { tenant: key.tenant, hangup, sideband, clients });
    // The call's events go to the sideband connections the client's servers attach (attach).
    sideband.on('message', (data: RawData, binary: boolean) => {
      for (const c of clients) if (c.readyState === OPEN) c.send(data, { binary });
    });
    sideband.on('close', () => {
      for (const c of clients) c.close(1000, 'call ended');
      this.calls.delete(id);
      deps.state
        .forget(callKey(id))
        .catch((err: unknown) => deps.onError?.(err, 'forgetting a realtime call'));
    });
    const { meta } = this.watch(sideband, checked, null, hangup);
    const opened = await new Promise<string | null>((resolve) => {
      sideband.once('open', () => resolve(null));
      sideband.once('error', (err) => resolve(err.message));
      sideband.once('unexpected-response', (_r, up) => {
        up.resume();
        resolve(`the upstream ${p.id} refused the sideband (${up.statusCode})`);
      });
    });
    sideband.on('error', (err) => deps.onError?.(err, 'a realtime call sideband'));
    if (opened !== null) {
      this.calls.delete(id);
      this.open.delete(sideband);
      sideband.terminate();
      void this.hangUpQuietly(hangup);
      return failed(opened);
    }
    // Whose it is, for a hang-up through another replica (the sideband stays with this one).
    const owner = JSON.stringify({ tenant: key.tenant, provider: p.id, model: attempt.model });
    await deps.state
      .remember(callKey(id), owner, deps.clock.now() + CALL_KEPT_MS)
      .catch((err: unknown) => deps.onError?.(err, 'remembering a realtime call'));
    res.writeHead(made.statusCode, {
      'content-type': String(made.headers['content-type'] ?? 'application/sdp'),
      location: `/v1/realtime/calls/${id}`,
      'x-tally-request-id': meta.sessionId,
    });
    res.end(answer);
  }

  /** A call's hang-up, through the gateway: only its own tenant's key may. A call made through
   * another replica is found in the shared state, and hung up at its provider from here. */
  private async hangUp(
    req: IncomingMessage,
    res: ServerResponse,
    key: VirtualKey,
    id: string,
  ): Promise<void> {
    req.resume();
    const callId = decodeURIComponent(id);
    const call = this.calls.get(callId) ?? (await this.elsewhere(callId, key.tenant));
    const notFound = () => sendError(res, 'openai', callNotFound(id, '.'));
    if (!call || call.tenant !== key.tenant) return notFound();
    try {
      await call.hangup();
    } catch (err) {
      if (err instanceof CallGone) return notFound();
      return sendError(res, 'openai', {
        status: 502,
        type: 'api_error',
        code: 'upstream_connection_error',
        message: (err as Error).message,
      });
    }
    res.writeHead(200);
    res.end();
  }

  /**
   * A sideband connection to a WebRTC call made through this gateway (`/v1/realtime?call_id=`), as
   * an application's server opens one to watch the call and steer it (answer its tool calls, update
   * its session): with a key of the call's tenant, it is joined to the gateway's own sideband. It
   * gets the call's events, and what it sends goes to the call. The call is metered once, on the
   * gateway's sideband. A call made through another replica is not joined here (404
   * `call_not_found`): its sideband is that replica's.
   */
  private async attach(req: IncomingMessage, socket: Duplex, head: Buffer, callId: string): Promise<void> {
    keyFromProtocol(req);
    const key = await this.env.authenticate(req).catch(() => null);
    if (!key) return refuse(socket, invalidKey());
    const call = this.calls.get(callId);
    if (!call || call.tenant !== key.tenant)
      return refuse(socket, callNotFound(callId, ' process; join it through the one that made it.'));
    this.wss.handleUpgrade(req, socket, head, (client) => {
      call.clients.add(client);
      client.on('message', (data: RawData, binary: boolean) => {
        if (call.sideband.readyState === OPEN) call.sideband.send(data, { binary });
      });
      client.on('close', () => call.clients.delete(client));
      client.on('error', () => client.terminate());
    });
  }

  /** A call another replica made, as the shared state keeps it, with its hang-up; null for none. */
  private async elsewhere(
    id: string,
    tenant: string,
  ): Promise<{ tenant: string; hangup(): Promise<void> } | null> {
    let kept: string | null;
    try {
      kept = await this.env.deps.state.recall(callKey(id));
    } catch {
      return null;
    }
    if (kept === null) return null;
    const o = JSON.parse(kept) as { tenant: string; provider: string; model: string };
    const p = o.tenant === tenant ? this.env.provider(o.provider, tenant) : undefined;
    return p ? { tenant: o.tenant, hangup: () => hangUpAt(p, o.model, id) } : null;
  }

  /** Takes an upgrade request for `/v1/realtime`: checks it, opens the provider's session, and
   * relays the two. A request refused is answered over HTTP, as OpenAI answers it. */
  async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => undefined);
    if (this.closing) return refuse(socket, stopping());
    const callId = new URL(req.url ?? '/', 'http://gateway').searchParams.get('call_id');
    if (callId !== null) return this.attach(req, socket, head, callId);
    try {
      const checked = await this.check(req);
      if (isError(checked)) return refuse(socket, checked);
      const { attempt } = checked;
      const { url, headers } = upstreamUrl(attempt.provider, attempt.model, req, checked.transcription);
      const offered = protocolsOf(req).filter((p) => !p.startsWith(KEY_PROTOCOL));
      const upstream = new (ws().WebSocket)(url, offered, {
        headers,
        perMessageDeflate: false,
        maxPayload: MAX_FRAME_BYTES,
        handshakeTimeout: Math.min(attempt.provider.timeout_ms ?? CONNECT_TIMEOUT_MS, CONNECT_TIMEOUT_MS),
      });
      upstream.on('unexpected-response', (_r, res) => {
        // The provider's refusal (a bad key, a model it does not serve), passed on as it came.
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => {
          const body = Buffer.concat(parts)
            .toString('utf8')
            .slice(0, 64 * 1024);
          refuse(socket, {
            status: res.statusCode ?? 502,
            type: 'api_error',
            code: 'upstream_refused',
            message: `The upstream ${attempt.provider.id} refused the session (${res.statusCode}): ${body}`,
          });
          upstream.terminate();
        });
      });
      upstream.on('error', (err) => {
        if (upstream.readyState === CLOSED && !socket.destroyed && !socket.writableEnded)
          refuse(socket, {
            status: 502,
            type: 'api_error',
            code: 'upstream_connection_error',
            message: `The upstream ${attempt.provider.id} could not be reached: ${err.message}`,
          });
      });
      upstream.on('open', () => {
        if (socket.destroyed) {
          upstream.close();
          return;
        }
        this.wss.handleUpgrade(req, socket, head, (client) => this.relay(client, upstream, checked));
      });
    } catch (err) {
      refuse(socket, {
        status: 500,
        type: 'api_error',
        code: 'internal',
        message: (err as Error).message,
      });
    }
  }

  /** The key, the model and where it goes, or why the session is refused. */
  private async check(req: IncomingMessage) {
    keyFromProtocol(req);
    const key = await this.env.authenticate(req);
    if (!key) return invalidKey();
    const params = new URL(req.url ?? '/', 'http://gateway').searchParams;
    const model = params.get('model');
    // A transcription session names no model; it is routed and held as one of TRANSCRIPTION_MODEL.
    if (!model && params.get('intent') === 'transcription')
      return this.authorize(key, TRANSCRIPTION_MODEL, req.headers, true);
    return this.authorize(key, model, req.headers);
  }

  /** Where a key's session of `model` goes, and what holds it; or why it is refused: no model, one
   * the key may not use or no provider serves, a rate limit or a budget with no room. */
  private async authorize(
    key: VirtualKey,
    model: string | null,
    headers: IncomingMessage['headers'],
    transcription = false,
  ) {
    const deps = this.env.deps;
    if (!model)
      return {
        status: 400,
        type: 'invalid_request_error',
        code: 'missing_model',
        message: 'A realtime session names its model: /v1/realtime?model=...',
      } satisfies GatewayError;
    if (!transcription && !modelAllowed(key.models, model)) return notAllowed(key, model);
    const attempt = this.env.plan(model, key.tenant)[0];
    if (!attempt) return noRoute(model, []);
    const attribution = attribute(key, headers);
    // The session is one request against the key's limits and its scopes' that count the model,
    // and its upstream deployment's quota; its responses take their tokens as each starts.
    const limits: SessionLimit[] = await this.env.rateBuckets(key, attribution, model);
    if (attempt.quota) limits.push({ bucket: quotaBucket(attempt), rule: null, upstream: attempt });
    if (limits.length > 0) {
      let results: Awaited<ReturnType<GatewayDeps['state']['rateLimitAll']>>;
      try {
        results = await deps.state.rateLimitAll(
          limits.map((l) => l.bucket),
          0,
          deps.clock.now(),
        );
      } catch (err) {
        return stateUnavailable(err);
      }
      const at = results.findIndex((r) => !r.ok);
      if (at >= 0) return limitRefusal(results[at]!, key, limits[at]!);
    }
    const rules = (await deps.budgets(key, attribution)).filter((r) => countsModel(r, model));
    const room = await this.room(key, model, rules);
    if (room) return room;
    const buckets = limits
      .filter((l) => l.bucket.tpm !== null)
      .map((l) => ({ ...l, bucket: { ...l.bucket, rpm: null } }));
    return { key, model, attempt, rules, buckets, attribution, transcription };
  }

  /** Null when the session's budgets have room for more, else the refusal a call would get. */
  private async room(key: VirtualKey, model: string, rules: BudgetRule[]): Promise<GatewayError | null> {
    if (rules.length === 0) return null;
    try {
      const admission = await reserveBudgets(
        this.env.deps,
        rules,
        key,
        model,
        () => 0n,
        this.env.deps.clock.now(),
      );
      return admission.ok ? null : admission.error;
    } catch (err) {
      return stateUnavailable(err);
    }
  }

  private relay(client: WebSocket, upstream: WebSocket, session: Session): void {
    const { meta, end } = this.watch(upstream, session, client, null);
    // What each side sends goes to the other as it came: text as text, binary as binary.
    client.on('message', (data: RawData, binary: boolean) => {
      if (upstream.readyState === OPEN) upstream.send(data, { binary });
      if (!binary) fromClient(meta.tally, data.toString());
    });
    // A close code one side may send on (1005, 1006 and 1015 only say how a connection went).
    const closeCode = (code: number) =>
      (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
      (code >= 3000 && code <= 4999)
        ? code
        : 1000;
    client.on('close', (code, reason) => {
      this.open.delete(upstream);
      if (upstream.readyState === OPEN) upstream.close(closeCode(code), reason);
      void end(this.closing ? 'gateway_interrupted' : 'client_disconnected');
    });
    upstream.on('close', (code, reason) => {
      if (client.readyState === OPEN) client.close(closeCode(code), reason);
    });
    client.on('error', () => upstream.terminate());
    upstream.on('error', () => client.terminate());
  }

  /**
   * Meters a session from what the provider sends on `upstream` (passed on to `client`, when there
   * is one): its settings, its responses (reserved as each starts, settled as each is done, and
   * estimated when the session ends first), and its input audio transcriptions. Returns how to end
   * it: the responses still under way are metered as cut off, `why`.
   */
  private watch(
    upstream: WebSocket,
    session: Session,
    client: WebSocket | null,
    hangup: (() => Promise<void>) | null,
  ): { meta: Meta; end(why: string): Promise<void> } {
    const deps = this.env.deps;
    const tally: Tally = {
      transcriber: null,
      inRate: PCM_BYTES_PER_SECOND,
      outRate: PCM_BYTES_PER_SECOND,
      last: { text: 0, audio: 0 },
      uncommittedBytes: 0,
      newAudioBytes: 0,
      speechStartMs: null,
      newText: [],
      responses: new Map(),
      cut: null,
    };
    const meta: Meta = {
      session,
      sessionId: deps.newId(),
      since: performance.now(),
      client,
      upstream,
      tally,
      hangup,
    };
    // In order, one at a time: a session's budgets are reserved and settled response by response.
    let metering: Promise<void> = Promise.resolve();
    // Once the session has ended, the responses that never ended (cut off with it) are metered
    // from what they relayed, and what they held goes back.
    const end = (why: string) => {
      tally.cut ??= why;
      metering = metering.then(() => this.cutOff(meta));
      return metering;
    };
    this.open.set(upstream, { client, end });
    upstream.on('message', (data: RawData, binary: boolean) => {
      if (client?.readyState === OPEN) client.send(data, { binary });
      if (binary) return;
      const text = data.toString();
      if (text.includes('"session.created"') || text.includes('"session.updated"')) {
        const set = settingsOf(text);
        tally.transcriber = set.transcriber ?? tally.transcriber;
        tally.inRate = set.inRate ?? tally.inRate;
        tally.outRate = set.outRate ?? tally.outRate;
        // A transcription session is the key's only with a model it may use.
        const { key } = session;
        if (session.transcription && tally.transcriber && !modelAllowed(key.models, tally.transcriber))
          this.stop(meta, notAllowed(key, tally.transcriber));
        return;
      }
      if (text.includes('.delta"')) return relayed(tally, text);
      if (text.includes('"input_audio_buffer.committed"')) {
        tally.newAudioBytes += tally.uncommittedBytes;
        tally.uncommittedBytes = 0;
        return;
      }
      if (text.includes('"input_audio_buffer.cleared"')) {
        tally.uncommittedBytes = 0;
        return;
      }
      // A WebRTC call's caller speaks to the provider, not through the gateway: the speech the
      // provider's voice detection marks is the input audio the next response takes.
      if (!client && text.includes('"input_audio_buffer.speech_')) return spoke(tally, text);
      if (text.includes('"response.created"')) {
        const id = started(tally, text, deps.config.default_max_output ?? 4096);
        if (id !== null) metering = metering.then(() => this.reserve(meta, id));
        return;
      }
      const done = text.includes('"response.done"');
      if (!done && !text.includes('"conversation.item.input_audio_transcription.completed"')) return;
      const as = done ? null : tally.transcriber;
      metering = metering.then(() => this.meter(text, meta, as));
    });
    upstream.on('close', () => {
      this.open.delete(upstream);
      void end(this.closing ? 'gateway_interrupted' : client ? 'upstream_stream_error' : 'call_ended');
    });
    return { meta, end };
  }

  /** The call of a response (or of an input audio transcription, `transcriber` its model). */
  private context(meta: Meta, transcriber: string | null, transcript: boolean): AttemptContext {
    const deps = this.env.deps;
    const { key, model, attempt } = meta.session;
    return {
      id: deps.newId(),
      time: deps.clock.now(),
      key,
      attribution: meta.session.attribution,
      priceProvider: priceProviderOf(attempt.provider),
      upstreamApi: transcript ? ENDPOINT_API.transcriptions : ENDPOINT_API.realtime,
      // A transcription is its transcriber's call, a model the session asked for.
      modelRequested: transcript ? (transcriber ?? '') : model,
      modelSent: transcript ? (transcriber ?? '') : attempt.model,
      fallbackHops: 0,
      requestId: meta.sessionId,
      routeTier: attempt.tier === 'primary' ? null : attempt.tier,
    };
  }

  /** Meters one `response.done` (or input audio transcription), settles the budgets and the rate
   * limits with it, and closes the session when a block budget has no room left. */
  private async meter(
    text: string,
    meta: Meta,
    /** For an input audio transcription's usage, the model that made it (null: not known). */
    transcriber: string | null,
  ): Promise<void> {
    const event = parseObject(text);
    if (!event) return;
    const transcript = event['type'] === 'conversation.item.input_audio_transcription.completed';
    const response = (transcript ? event : event['response']) as Obj | undefined;
    if (!transcript && event['type'] !== 'response.done') return;
    if (typeof response !== 'object' || response === null) return;
    // A response's usage is read from the event (the realtime extractor's root is response.usage);
    // a transcription's is a transcription's usage object.
    const given = typeof response['usage'] === 'object' && response['usage'] !== null;
    if (transcript && !given) return;
    const usage = given ? (transcript ? (response['usage'] as Obj) : event) : null;
    const status = transcript ? 'completed' : response['status'];
    const id = transcript ? null : response['id'];
    const underway = typeof id === 'string' ? meta.tally.responses.get(id) : undefined;
    if (typeof id === 'string') meta.tally.responses.delete(id);
    const out: AttemptOutcome = {
      status: status === 'failed' ? 'error' : 'ok',
      errorType:
        status === 'failed' || status === 'cancelled' || status === 'incomplete'
          ? `realtime_${status}`
          : usage
            ? null
            : 'upstream_no_usage',
      usage,
      estimated: null,
      modelServed: null,
      latencyMs: performance.now() - (underway?.since ?? meta.since),
      ttftMs: null,
    };
    const ctx = this.context(meta, transcriber, transcript);
    const acc: Accumulated = { spentNano: 0n, tokens: 0, headers: {} };
    const cost = this.env.record(ctx, out, acc);
    if (!transcript && usage) {
      const u = response['usage'] as Obj;
      const details = (u['input_token_details'] ?? {}) as Obj;
      const audio = typeof details['audio_tokens'] === 'number' ? details['audio_tokens'] : 0;
      const input = typeof u['input_tokens'] === 'number' ? u['input_tokens'] : 0;
      meta.tally.last = { audio, text: Math.max(0, input - audio) };
    }
    await this.settle(meta, ctx.time, underway, cost, acc.tokens);
    const { key, model, rules } = meta.session;
    if (rules.length === 0) return;
    const refused = await this.room(key, model, rules);
    if (refused && refused.code !== 'budget_state_unavailable') this.stop(meta, refused);
  }

  /** Settles what a response held with what it cost (a transcription held nothing, and adds its
   * cost): the budgets, at least its reservation when it could not be priced, and the buckets of
   * the rate limits, with the tokens it came to. */
  private async settle(
    meta: Meta,
    time: number,
    underway: Underway | undefined,
    cost: bigint | null,
    tokens: number,
  ): Promise<void> {
    const deps = this.env.deps;
    const { key, rules } = meta.session;
    if (rules.length > 0) {
      const hold: Hold = underway?.hold ?? {
        held: windowsFor(rules, time),
        unheld: [],
        reserved: 0n,
        opId: deps.newId(),
      };
      const spent = cost === null ? hold.reserved : cost;
      try {
        await settleBudgets(deps, key, hold, spent, time);
      } catch (err) {
        deps.onError?.(err, 'realtime budget settlement');
      }
    }
    const buckets = underway ? underway.buckets : meta.session.buckets.map((b) => b.bucket);
    const delta = tokens - (underway?.rated ?? 0);
    if (delta === 0) return;
    for (const b of buckets) {
      try {
        await deps.state.adjustTokens(b.key, b.tpm!, delta, time);
      } catch (err) {
        deps.onError?.(err, 'realtime rate limit settlement');
      }
    }
  }

  /** Meters the responses a session's end cut off before their usage came, from what they
   * relayed: their input as reserved, and their output's text by the tokenizer and audio by its
   * length; marked estimated, and failed as `tally.cut` says. What they held is settled so. */
  private async cutOff(meta: Meta): Promise<void> {
    const { tally } = meta;
    for (const [id, u] of tally.responses) {
      tally.responses.delete(id);
      const audio = Math.ceil((u.audioBytes / tally.outRate) * AUDIO_OUT_TOKENS_PER_SECOND);
      const text = u.text.length > 0 ? await countTokens(u.text.join('')) : 0;
      const out: AttemptOutcome = {
        status: 'error',
        errorType: tally.cut ?? 'client_disconnected',
        usage: null,
        estimated: {
          input: u.input.text + u.input.audio,
          input_audio: u.input.audio,
          output: text + audio,
          output_audio: audio,
        },
        modelServed: null,
        latencyMs: performance.now() - u.since,
        ttftMs: null,
      };
      const ctx = this.context(meta, null, false);
      const acc: Accumulated = { spentNano: 0n, tokens: 0, headers: {} };
      const cost = this.env.record(ctx, out, acc);
      await this.settle(meta, ctx.time, u, cost, acc.tokens);
    }
  }

  /** Tells the client, in an `error` event, what a budget refused (a WebRTC call's client hears
   * of it from the provider: the response ends cancelled). */
  private tell(client: WebSocket | null, refused: GatewayError): void {
    if (client?.readyState !== OPEN) return;
    client.send(
      JSON.stringify({
        type: 'error',
        event_id: `event_${this.env.deps.newId()}`,
        error: { type: refused.type, code: refused.code, message: refused.message, param: null },
      }),
    );
  }

  /** Hangs up a WebRTC call where no one waits for the answer: a failure is reported, not thrown. */
  private hangUpQuietly(hangup: () => Promise<void>): Promise<void> {
    return hangup().catch((err: unknown) => this.env.deps.onError?.(err, 'hanging up a realtime call'));
  }

  /** Tells the client why its session ends, and ends it (1008); a WebRTC call is hung up. */
  private stop(meta: Meta, refused: GatewayError): void {
    const { client, hangup } = meta;
    this.tell(client, refused);
    if (client?.readyState === OPEN) client.close(1008, refused.code.slice(0, 100));
    if (hangup) void this.hangUpQuietly(hangup);
  }

  /**
   * Reserves a response's largest cost as it starts (`response.created`): its input, the last
   * response's (the conversation only grows, unless the client truncates it) and what the client
   * added since (its audio at AUDIO_IN_TOKENS_PER_SECOND, its text by the tokenizer), and its most
   * output, all of it audio, the dearer kind (`max_output_tokens`, else gateway.default_max_output).
   * The same tokens are taken from the rate limits' buckets (TPM). A response its budgets or its
   * rate limits cannot hold is cancelled at the provider, and the client told why in an `error`
   * event, as such a call is refused; what it made before the cancel is metered at its
   * `response.done`, and the session goes on (a smaller response may follow).
   */
  private async reserve(meta: Meta, id: string): Promise<void> {
    const u = meta.tally.responses.get(id);
    if (!u) return;
    const { last } = meta.tally;
    u.input.text += last.text + (u.newText.length > 0 ? await countTokens(u.newText.join('\n')) : 0);
    u.input.audio += last.audio;
    u.newText = [];
    const { key, model, attempt, rules, buckets } = meta.session;
    if (rules.length === 0 && buckets.length === 0) return;
    const deps = this.env.deps;
    const output = u.output;
    const time = deps.clock.now();
    let refused: GatewayError | null = null;
    if (buckets.length > 0) {
      const tokens = u.input.text + u.input.audio + output;
      // What it comes to is added to them at its end, whether or not they had room for it now.
      u.buckets = buckets.map((b) => b.bucket);
      try {
        const results = await deps.state.rateLimitAll(u.buckets, tokens, time);
        const at = results.findIndex((r) => !r.ok);
        if (at >= 0) refused = limitRefusal(results[at]!, key, buckets[at]!);
        else u.rated = tokens;
      } catch (err) {
        refused = stateUnavailable(err);
      }
    }
    if (!refused && rules.length > 0) {
      const costOf = (m: string) => {
        const priced = deps.price({
          provider: priceProviderOf(attempt.provider),
          model: m === model ? attempt.model : m,
          tokens: {
            input: u.input.text + u.input.audio,
            input_audio: u.input.audio,
            output,
            output_audio: output,
          },
          time,
          tenant: key.tenant,
        });
        return priced.status === 'priced' ? priced.effectiveNano : { unpriced: priced.reason };
      };
      try {
        const admission = await reserveBudgets(deps, rules, key, model, costOf, time);
        if (admission.ok) u.hold = admission.hold;
        else refused = admission.error;
      } catch (err) {
        refused = stateUnavailable(err);
      }
    }
    if (!refused) return;
    if (meta.upstream.readyState === OPEN)
      meta.upstream.send(JSON.stringify({ type: 'response.cancel', response_id: id }));
    this.tell(meta.client, refused);
  }

  /** Closes every session and takes no more (the gateway stops). Its HTTP server's close waits for
   * every connection to end, a session's too: this goes first. */
  async close(): Promise<void> {
    this.closing = true;
    const ending: Promise<void>[] = [];
    for (const [upstream, { client, end }] of this.open) {
      client?.close(1001, 'going away');
      upstream.close(1001, 'going away');
      // The responses under way are metered as cut off by the stop, before the sink closes.
      ending.push(end('gateway_interrupted'));
    }
    this.open.clear();
    // A WebRTC call is hung up: with its sideband closed, it would run on unmetered.
    for (const call of this.calls.values()) ending.push(this.hangUpQuietly(call.hangup));
    this.calls.clear();
    await Promise.all(ending);
    const server = this.serverRef;
    this.serverRef = null;
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}
