import type { IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';
import type { RawData, WebSocket, WebSocketServer } from 'ws';
import { attribute } from './attribution.js';
import { type Hold, reserveBudgets, settleBudgets } from './budget-guard.js';
import type { AttemptContext, AttemptOutcome } from './meter.js';
import { modelAllowed } from './model-allow.js';
import { type BudgetRule, countsModel, windowsFor } from './policy.js';
import { ENDPOINT_API, priceProviderOf, upstreamFor } from './providers.js';
import type { Accumulated } from './relay.js';
import {
  errorBody,
  type GatewayError,
  invalidKey,
  noRoute,
  notAllowed,
  stateUnavailable,
} from './replies.js';
import type { Attempt } from './router.js';
import { heldToRpm, isError } from './stored.js';
import type { GatewayDeps, ProviderConfig, VirtualKey } from './types.js';

type Obj = Record<string, unknown>;

/**
 * OpenAI's Realtime API through the gateway: a WebSocket at `/v1/realtime?model=...`, opened with
 * a virtual key (the `Authorization` header, or a browser's `openai-insecure-api-key.<key>`
 * subprotocol), relayed frame by frame to the provider the model routes to, with the provider's
 * key. A session counts as one request against the key's RPM; it opens only for a model the key
 * may use and while its budgets have room.
 *
 * Each `response.done` the provider sends is metered as a call, from the usage it carries (text,
 * audio and image tokens in, cached ones among them, text and audio tokens out), attributed as the
 * session's key and headers say, its request id the session's. The key's budgets are settled with
 * what it cost as it ends; a block budget that a response exhausts closes the session (code 1008)
 * after an `error` event that says which budget, as a call past it would be refused. The session's
 * input audio transcriptions (`conversation.item.input_audio_transcription.completed`, billed
 * apart, by the transcription model the session set up) are metered as calls of that model too.
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
}

/** The model a `session.created` or `session.updated` event says transcribes the input audio (the
 * GA API's `session.audio.input.transcription`, the beta's `session.input_audio_transcription`),
 * or null when it names none. */
function transcriberOf(text: string): string | null {
  try {
    const session = (JSON.parse(text) as Obj)['session'] as Obj | undefined;
    const audio = (session?.['audio'] as Obj | undefined)?.['input'] as Obj | undefined;
    const setting = (audio?.['transcription'] ?? session?.['input_audio_transcription']) as Obj | undefined;
    return typeof setting?.['model'] === 'string' ? setting['model'] : null;
  } catch {
    return null;
  }
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
): { url: string; headers: Record<string, string> } {
  const target = upstreamFor(p, 'realtime', model, req.headers);
  const { 'content-type': _json, 'accept-encoding': _coding, ...headers } = target.headers;
  const beta = req.headers['openai-beta'];
  if (typeof beta === 'string') headers['openai-beta'] = beta;
  const ws = target.origin.replace(/^http/, 'ws');
  // Azure's dated versions take the deployment in the query (its v1 API as OpenAI does, as model).
  if (p.kind === 'azure' && p.api_version && p.api_version !== 'v1') {
    const base = new URL(p.base_url).pathname.replace(/\/+$/, '');
    const deployment = p.deployments?.[model] ?? model;
    const q = `api-version=${encodeURIComponent(p.api_version)}&deployment=${encodeURIComponent(deployment)}`;
    return { url: `${ws}${base}/openai/realtime?${q}`, headers };
  }
  return { url: `${ws}${target.path}?model=${encodeURIComponent(target.bodyModel)}`, headers };
}

/** The input tokens a session's last response was billed: its text (and images) and its audio. */
interface LastInput {
  text: number;
  audio: number;
}

/** What a session was opened for: whose key, which model, where it goes, and the budgets that
 * count it. */
interface Session {
  key: VirtualKey;
  model: string;
  attempt: Attempt;
  rules: BudgetRule[];
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
  /** The sessions open: each client's socket, and the provider's it is relayed to. */
  private readonly open = new Map<WebSocket, WebSocket>();

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

  /** Takes an upgrade request for `/v1/realtime`: checks it, opens the provider's session, and
   * relays the two. A request refused is answered over HTTP, as OpenAI answers it. */
  async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => undefined);
    try {
      const checked = await this.check(req);
      if (isError(checked)) return refuse(socket, checked);
      const { key, model, attempt, rules } = checked;
      const { url, headers } = upstreamUrl(attempt.provider, attempt.model, req);
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
        this.wss.handleUpgrade(req, socket, head, (client) =>
          this.relay(client, upstream, { req, key, model, attempt, rules }),
        );
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
    const deps = this.env.deps;
    const inProtocol = protocolsOf(req).find((p) => p.startsWith(KEY_PROTOCOL));
    if (inProtocol && !req.headers.authorization)
      req.headers.authorization = `Bearer ${inProtocol.slice(KEY_PROTOCOL.length)}`;
    const key = await this.env.authenticate(req);
    if (!key) return invalidKey();
    const params = new URL(req.url ?? '/', 'http://gateway').searchParams;
    const model = params.get('model');
    if (!model)
      return {
        status: 400,
        type: 'invalid_request_error',
        code: 'missing_model',
        message: 'A realtime session names its model: /v1/realtime?model=...',
      } satisfies GatewayError;
    if (!modelAllowed(key.models, model)) return notAllowed(key, model);
    const attempt = this.env.plan(model, key.tenant)[0];
    if (!attempt) return noRoute(model, []);
    const rpm = await heldToRpm({ deps }, key);
    if (isError(rpm)) return rpm;
    const rules = (await deps.budgets(key, attribute(key, req.headers))).filter((r) => countsModel(r, model));
    const room = await this.room(key, model, rules);
    if (room) return room;
    return { key, model, attempt, rules };
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

  private relay(client: WebSocket, upstream: WebSocket, session: Session & { req: IncomingMessage }): void {
    const deps = this.env.deps;
    const sessionId = deps.newId();
    const attribution = attribute(session.key, session.req.headers);
    const since = performance.now();
    this.open.set(client, upstream);
    // What each side sends goes to the other as it came: text as text, binary as binary.
    client.on('message', (data: RawData, binary: boolean) => {
      if (upstream.readyState === OPEN) upstream.send(data, { binary });
    });
    let metering: Promise<void> = Promise.resolve();
    // The model that transcribes the session's input audio, as the session says it is set up.
    const transcriber: { model: string | null } = { model: null };
    // Each response's reservation, from its response.created to its response.done; and the input
    // the last response was billed, the conversation so far, which the next one's input is at least.
    const holds = new Map<string, Hold>();
    const last: LastInput = { text: 0, audio: 0 };
    upstream.on('message', (data: RawData, binary: boolean) => {
      if (client.readyState === OPEN) client.send(data, { binary });
      if (binary) return;
      const text = data.toString();
      if (text.includes('"session.created"') || text.includes('"session.updated"'))
        transcriber.model = transcriberOf(text) ?? transcriber.model;
      if (text.includes('"response.created"')) {
        metering = metering.then(() => this.reserve(text, session, holds, last, client, upstream));
        return;
      }
      const done = text.includes('"response.done"');
      if (!done && !text.includes('"conversation.item.input_audio_transcription.completed"')) return;
      const as = done ? null : transcriber.model;
      // In order, one at a time: a session's budgets are settled response by response.
      metering = metering.then(() =>
        this.meter(text, session, sessionId, attribution, since, client, as, holds, last),
      );
    });
    // A close code one side may send on (1005, 1006 and 1015 only say how a connection went).
    const closeCode = (code: number) =>
      (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
      (code >= 3000 && code <= 4999)
        ? code
        : 1000;
    // Once either side has closed, what is still held for responses that never ended (cut off
    // with the session) goes back: they gave no usage, and are not metered.
    const release = () => {
      metering = metering.then(() => this.release(holds, session.key));
    };
    client.on('close', (code, reason) => {
      this.open.delete(client);
      if (upstream.readyState === OPEN) upstream.close(closeCode(code), reason);
      release();
    });
    upstream.on('close', (code, reason) => {
      this.open.delete(client);
      if (client.readyState === OPEN) client.close(closeCode(code), reason);
      release();
    });
    client.on('error', () => upstream.terminate());
    upstream.on('error', () => client.terminate());
  }

  /** Meters one `response.done`, settles the budgets with it, and closes the session when a block
   * budget has no room left. */
  private async meter(
    text: string,
    session: Session,
    sessionId: string,
    attribution: ReturnType<typeof attribute>,
    since: number,
    client: WebSocket,
    /** For an input audio transcription's usage, the model that made it (null: not known). */
    transcriber: string | null,
    holds: Map<string, Hold>,
    last: LastInput,
  ): Promise<void> {
    const deps = this.env.deps;
    let event: Obj;
    try {
      event = JSON.parse(text) as Obj;
    } catch {
      return;
    }
    const transcript = event['type'] === 'conversation.item.input_audio_transcription.completed';
    const response = (transcript ? event : event['response']) as Obj | undefined;
    if (!transcript && event['type'] !== 'response.done') return;
    if (typeof response !== 'object' || response === null) return;
    // A response's usage is read from the event (the realtime extractor's root is response.usage);
    // a transcription's is a transcription's usage object.
    const given = typeof response['usage'] === 'object' && response['usage'] !== null;
    if (transcript && !given) return;
    const usage = given ? (transcript ? (response['usage'] as Obj) : event) : null;
    const time = deps.clock.now();
    const { key, model, attempt, rules } = session;
    const status = transcript ? 'completed' : response['status'];
    const ctx: AttemptContext = {
      id: deps.newId(),
      time,
      key,
      attribution,
      priceProvider: priceProviderOf(attempt.provider),
      upstreamApi: transcript ? ENDPOINT_API.transcriptions : ENDPOINT_API.realtime,
      // A transcription is its transcriber's call, a model the session asked for.
      modelRequested: transcript ? (transcriber ?? '') : model,
      modelSent: transcript ? (transcriber ?? '') : attempt.model,
      fallbackHops: 0,
      requestId: sessionId,
      routeTier: attempt.tier === 'primary' ? null : attempt.tier,
    };
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
      latencyMs: performance.now() - since,
      ttftMs: null,
    };
    const acc: Accumulated = { spentNano: 0n, tokens: 0, headers: {} };
    const cost = this.env.record(ctx, out, acc) ?? 0n;
    if (!transcript && usage) {
      const u = response['usage'] as Obj;
      const details = (u['input_token_details'] ?? {}) as Obj;
      const audio = typeof details['audio_tokens'] === 'number' ? details['audio_tokens'] : 0;
      const input = typeof u['input_tokens'] === 'number' ? u['input_tokens'] : 0;
      last.audio = audio;
      last.text = Math.max(0, input - audio);
    }
    if (rules.length === 0) return;
    // The response's reservation, released as its cost is added (a transcription held none).
    const id = transcript ? null : response['id'];
    const held = typeof id === 'string' ? holds.get(id) : undefined;
    if (typeof id === 'string') holds.delete(id);
    const hold: Hold = held ?? {
      held: windowsFor(rules, time),
      unheld: [],
      reserved: 0n,
      opId: deps.newId(),
    };
    try {
      await settleBudgets(deps, key, hold, cost, time);
    } catch (err) {
      deps.onError?.(err, 'realtime budget settlement');
    }
    const refused = await this.room(key, model, rules);
    if (refused && refused.code !== 'budget_state_unavailable') this.stop(client, refused);
  }

  /** Gives back the reservations of responses that did not end. */
  private async release(holds: Map<string, Hold>, key: VirtualKey): Promise<void> {
    const deps = this.env.deps;
    for (const [id, hold] of holds) {
      holds.delete(id);
      try {
        await settleBudgets(deps, key, hold, 0n, deps.clock.now());
      } catch (err) {
        deps.onError?.(err, 'realtime budget release');
      }
    }
  }

  /** Tells the client, in an `error` event, what a budget refused. */
  private tell(client: WebSocket, refused: GatewayError): void {
    if (client.readyState !== OPEN) return;
    client.send(
      JSON.stringify({
        type: 'error',
        event_id: `event_${this.env.deps.newId()}`,
        error: { type: refused.type, code: refused.code, message: refused.message, param: null },
      }),
    );
  }

  /** Tells the client why its session ends, and ends it (1008). */
  private stop(client: WebSocket, refused: GatewayError): void {
    this.tell(client, refused);
    if (client.readyState === OPEN) client.close(1008, refused.code.slice(0, 100));
  }

  /**
   * Reserves a response's largest cost as it starts (`response.created`): its input, at least the
   * last response's (the conversation only grows, unless the client truncates it), and its most
   * output, all of it audio, the dearer kind (`max_output_tokens`, else gateway.default_max_output).
   * A response its budgets cannot hold is cancelled at the provider, and the client told why in an
   * `error` event, as a call past a block budget is refused; what it made before the cancel is
   * metered at its `response.done`, and the session goes on (a smaller response may follow).
   */
  private async reserve(
    text: string,
    session: Session,
    holds: Map<string, Hold>,
    last: LastInput,
    client: WebSocket,
    upstream: WebSocket,
  ): Promise<void> {
    const { key, model, attempt, rules } = session;
    if (rules.length === 0) return;
    let response: Obj | undefined;
    try {
      response = (JSON.parse(text) as Obj)['response'] as Obj | undefined;
    } catch {
      return;
    }
    const id = response?.['id'];
    if (typeof id !== 'string') return;
    const deps = this.env.deps;
    const max = response?.['max_output_tokens'];
    const output =
      typeof max === 'number' && Number.isInteger(max) && max > 0
        ? max
        : (deps.config.default_max_output ?? 4096);
    const time = deps.clock.now();
    const costOf = (m: string) => {
      const priced = deps.price({
        provider: priceProviderOf(attempt.provider),
        model: m === model ? attempt.model : m,
        tokens: { input: last.text + last.audio, input_audio: last.audio, output, output_audio: output },
        time,
        tenant: key.tenant,
      });
      return priced.status === 'priced' ? priced.effectiveNano : { unpriced: priced.reason };
    };
    let refused: GatewayError | null = null;
    try {
      const admission = await reserveBudgets(deps, rules, key, model, costOf, time);
      if (admission.ok) holds.set(id, admission.hold);
      else refused = admission.error;
    } catch (err) {
      refused = stateUnavailable(err);
    }
    if (!refused) return;
    if (upstream.readyState === OPEN)
      upstream.send(JSON.stringify({ type: 'response.cancel', response_id: id }));
    this.tell(client, refused);
  }

  /** Closes every session (the gateway stops). */
  async close(): Promise<void> {
    for (const [client, upstream] of this.open) {
      client.close(1001, 'going away');
      upstream.close(1001, 'going away');
    }
    this.open.clear();
    const server = this.serverRef;
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}
