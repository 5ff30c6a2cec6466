import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { attribute, bodyUser } from './attribution.js';
import type { Hold, Unpriceable } from './budget-guard.js';
import { KeptWatch, lookUp, type Watching } from './kept.js';
import type { AttemptContext, AttemptOutcome, Attribution } from './meter.js';
import { modelAllowed } from './model-allow.js';
import { countsModel } from './policy.js';
import { ENDPOINT_API, type Endpoint, priceProviderOf } from './providers.js';
import type { Accumulated } from './relay.js';
import { badRequest, type GatewayError, sendError, stateUnavailable } from './replies.js';
import {
  bodyOf,
  encodeOwner,
  type FollowUpEnv,
  heldToRpm,
  isError,
  isStoredId,
  notFound,
  ownerKey,
  ownerOf,
  pass,
  reaches,
  type StoredOwner,
  storeOf,
  wireOfStored,
  withGatewayResultsUrl,
} from './stored.js';
import type { ProviderConfig, VirtualKey } from './types.js';
import { ResponseTooLarge, type UpstreamCall } from './upstream.js';
import { parseObject } from './upstream-answer.js';

type Obj = Record<string, unknown>;

/**
 * Batches through the gateway: OpenAI's Batch API (a batch's input file is uploaded,
 * `POST /v1/files`, a batch made from it, `POST /v1/batches`, and its output file read once it has
 * ended), and Anthropic's message batches (`POST /v1/messages/batches`, the requests in the body,
 * the results read once it has ended). Their requests run at the provider, hours later, at the
 * provider's batch prices.
 *
 * - Files and batches are the provider account's, which every key of the gateway shares, so the
 *   gateway keeps whose each one is (the tenant and the project, as for stored responses): a key
 *   reaches only its own, and a batch is made only from a file of its own.
 * - Before a batch goes, the gateway reads its input file: every request must name a model the key
 *   may use, and the batch's largest cost (each request's prompt by the tokenizer, plus the most
 *   output it allows, at batch prices) is reserved on the key's budgets, as a call's is.
 * - Then it watches the batch (asking the provider after `batch_poll_ms`, then half as long again
 *   each time, up to ten minutes) until it has ended, or sees it ended in the client's own
 *   retrieve. It then reads the output file and meters every request in it as a call, at batch
 *   prices and the batch's time, with the attribution of the request that made the batch (and the
 *   tag `batch_id`); a request in the error file (an errored, canceled or expired result) is
 *   metered as a failed call, which costs nothing. Each call's id comes from
 *   the batch's and the request's `custom_id`, so a batch metered twice is stored once. The budgets
 *   are then settled with what the batch cost.
 * - The batches being watched are kept on disk, as background calls are (kept.ts), so they are
 *   metered even when the process that sent them has stopped.
 */

/** The statuses an OpenAI batch ends in. */
const ENDED = new Set(['completed', 'failed', 'expired', 'cancelled']);

/** Whether a batch has ended: an OpenAI batch by its status, an Anthropic one by its processing's. */
const hasEnded = (batch: Obj | null): boolean =>
  (typeof batch?.['status'] === 'string' && ENDED.has(batch['status'])) ||
  batch?.['processing_status'] === 'ended';

/** The most requests an Anthropic message batch takes. */
const MAX_MESSAGE_BATCH_REQUESTS = 100_000;

/** The longest wait between two looks at a batch. */
const LONGEST_WAIT_MS = 600_000;

/** How long the gateway keeps whose a file or batch is. */
export const BATCH_KEPT_MS = 365 * 86_400_000;

/** The endpoints a batch may run, and which the gateway meters them as (a completion's usage reads
 * as a chat completion's). */
const BATCH_ENDPOINTS = new Map<string, Endpoint>([
  ['/v1/chat/completions', 'chat'],
  ['/v1/embeddings', 'embeddings'],
  ['/v1/responses', 'responses'],
  ['/v1/completions', 'completions'],
]);

/** The largest input file a batch is made from, as OpenAI takes it. */
const DEFAULT_MAX_INPUT_BYTES = 200 * 1024 * 1024;

export interface BatchEnv extends FollowUpEnv {
  /** The most a batch request could cost on `provider` at batch prices, or why it has no price. */
  estimate(
    provider: ProviderConfig,
    endpoint: Endpoint,
    body: Obj,
    tenant: string,
    time: number,
  ): Promise<bigint | Unpriceable>;
  /** The Anthropic provider a model's messages go to, if one does. */
  anthropicProvider(model: string, tenant: string): ProviderConfig | undefined;
  /** Reserves a batch's largest cost (`costs`, by model) on the budgets of the key (and
   * attribution): on each budget, the cost of the models it counts. The holds (none with no
   * budget), or the refusal. */
  reserve(
    key: VirtualKey,
    attribution: Attribution,
    costs: Map<string, bigint | Unpriceable>,
    time: number,
  ): Promise<BatchHold[] | GatewayError>;
  /** Meters a call: its cost, or null unpriced. */
  record(ctx: AttemptContext, out: AttemptOutcome, acc: Accumulated): bigint | null;
  /** Settles the budgets a batch held. */
  settle(key: VirtualKey, hold: Hold, spentNano: bigint, time: number): Promise<void>;
  /** A stopped process's hold, held again here (see holdAgain in budget-guard). */
  holdAgain(hold: Hold): Promise<Hold>;
}

/** What a batch holds on its budgets: a hold for each set of its models that some of the key's
 * budgets count, with the cost of those models' requests (`models` null: every model of the
 * batch, as most budgets count). */
export interface BatchHold {
  models: string[] | null;
  hold: Hold;
}

/** What a batch's requests cost as they are metered: in all, and by the model each asked for. */
interface Spent extends Accumulated {
  byModel: Map<string, bigint>;
}

/** Adds one request's largest cost to its model's part of a batch's. Once one of a model's requests
 * has no price, that model's part has none (and the rest of its requests are not priced). */
async function addCost(
  costs: Map<string, bigint | Unpriceable>,
  model: string,
  estimate: () => Promise<bigint | Unpriceable>,
): Promise<void> {
  const sum = costs.get(model) ?? 0n;
  if (typeof sum !== 'bigint') return;
  const one = await estimate();
  costs.set(model, typeof one === 'bigint' ? sum + one : one);
}

/** What a batch's requests cost on one of its holds: all of them, or those of the models its
 * budgets count (a request metered under the snapshot that served it, its input file gone, counts
 * where the budgets' own lists take that name). */
function spentOn(h: BatchHold, acc: Spent): bigint {
  if (h.models === null) return acc.spentNano;
  const rule = (h.hold.held[0] ?? h.hold.unheld[0])?.rule;
  let spent = 0n;
  for (const [model, cost] of acc.byModel)
    if (h.models.includes(model) || (rule?.models?.length && countsModel(rule, model))) spent += cost;
  return spent;
}

/** What one request of a batch asked for: its model (where known) and the end user it names. */
interface Asked {
  model?: string;
  user: string | null;
}

/** A batch being watched, as it is kept on disk too. */
interface KeptBatch {
  id: string;
  /** OpenAI's Batch API (its files), or Anthropic's message batches. */
  api: 'openai' | 'anthropic';
  /** For a message batch, the end user each request names (`metadata.user_id`), by custom_id: its
   * results do not give the requests back. */
  users?: Record<string, string>;
  /** The provider that runs it (its id). */
  provider: string;
  key: VirtualKey;
  attribution: Attribution;
  /** For a message batch, the model its requests ask for (`model`, when they all ask for one) or
   * each request's (`models`, by custom_id): its results name the snapshot that served them. */
  model?: string;
  models?: Record<string, string>;
  /** When it was made (ms). */
  time: number;
  holds: BatchHold[];
  /** One hold on the budgets that counted every model, as a batch was kept before `holds`. */
  hold?: Hold | null;
}

interface Watched extends KeptBatch, Watching {}

/** A request's call id: the batch's id and its custom_id, so that it is the same each time. */
export function batchCallId(batchId: string, customId: string): string {
  return /^[A-Za-z0-9_-]{1,64}$/.test(customId)
    ? `${batchId}.${customId}`
    : `${batchId}.${createHash('sha256').update(customId).digest('hex').slice(0, 32)}`;
}

/** Reads a body's lines, a chunk at a time, and hands each whole one (as text) to `line`, one at a
 * time: while many wait for an async `line`, the upstream is held back, so that a large file is
 * never all in memory. Past `limit` bytes it rejects with ResponseTooLarge; it rejects too with
 * the first error `line` throws. */
async function eachLine(
  body: UpstreamCall,
  line: (text: string) => void | Promise<void>,
  limit = Number.POSITIVE_INFINITY,
): Promise<void> {
  let rest: Buffer = Buffer.alloc(0);
  let chain: Promise<void> = Promise.resolve();
  let failed: unknown = null;
  let waiting = 0;
  let held = false;
  const take = (text: string) => {
    waiting++;
    chain = chain
      .then(() => (failed === null ? line(text) : undefined))
      .catch((err: unknown) => {
        failed ??= err;
      })
      .finally(() => {
        waiting--;
        if (held && waiting < 64) {
          held = false;
          body.resume();
        }
      });
  };
  await body.read((chunk) => {
    let buf = rest.length > 0 ? Buffer.concat([rest, chunk]) : chunk;
    let nl = buf.indexOf(10);
    while (nl >= 0) {
      take(buf.subarray(0, nl).toString('utf8'));
      buf = buf.subarray(nl + 1);
      nl = buf.indexOf(10);
    }
    rest = Buffer.from(buf);
    if (waiting >= 256) held = true;
    return !held;
  }, limit);
  if (rest.length > 0) take(rest.toString('utf8'));
  await chain;
  if (failed !== null) throw failed;
}

export class Batches extends KeptWatch<Watched, KeptBatch> {
  constructor(
    private readonly env: BatchEnv,
    dir?: string,
  ) {
    super(dir, 'batches', 'batches', (err, doing) => env.deps.onError?.(err, doing), LONGEST_WAIT_MS);
  }

  protected keptItems(): KeptBatch[] {
    const out: KeptBatch[] = [];
    for (const w of this.watched.values()) {
      if (w.done) continue;
      out.push({
        id: w.id,
        api: w.api,
        ...(w.users ? { users: w.users } : {}),
        ...(w.model ? { model: w.model } : {}),
        ...(w.models ? { models: w.models } : {}),
        provider: w.provider,
        key: w.key,
        attribution: w.attribution,
        time: w.time,
        holds: w.holds,
      });
    }
    return out;
  }

  protected async adopt(batches: KeptBatch[]): Promise<void> {
    for (const { hold, ...b } of batches) {
      if (this.has(b.key.tenant, b.id)) continue;
      // The reservations went with the process that made them, and are held again here.
      const holds: BatchHold[] = [];
      for (const h of b.holds ?? (hold ? [{ models: null, hold }] : []))
        holds.push({ models: h.models, hold: await this.env.holdAgain(h.hold) });
      if (!this.has(b.key.tenant, b.id)) this.start({ ...b, holds });
    }
    await this.kept.save();
  }

  private start(b: KeptBatch): void {
    this.add({ ...b, wait: this.env.deps.config.batch_poll_ms ?? 60_000, timer: null, done: false });
    this.track(this.kept.save());
  }

  /** `POST /v1/files`: the upload goes, as it is read, to the provider the request names
   * (`x-tally-provider`), else to the default OpenAI-style one; the file is then kept as the key's. */
  async upload(req: IncomingMessage, res: ServerResponse, key: VirtualKey): Promise<void> {
    const headers = await heldToRpm(this.env, key);
    if (isError(headers)) {
      req.resume();
      return sendError(res, 'openai', headers);
    }
    const provider = this.providerFor(req, key);
    if (isError(provider)) {
      req.resume();
      return sendError(res, 'openai', provider);
    }
    const type = req.headers['content-type'];
    if (typeof type !== 'string' || !type.toLowerCase().startsWith('multipart/form-data')) {
      req.resume();
      return sendError(
        res,
        'openai',
        badRequest(
          'A file is uploaded as multipart/form-data, with its purpose and the file.',
          'invalid_upload',
        ),
      );
    }
    const store = storeOf(provider, 'file', req.headers);
    // The upload goes as it came: its form, its length and its coding.
    const kept: Record<string, string> = { 'content-type': type };
    for (const h of ['content-length', 'content-encoding']) {
      const v = req.headers[h];
      if (typeof v === 'string') kept[h] = v;
    }
    const answer = await pass(this.env, res, provider, headers, {
      origin: store.origin,
      path: store.path,
      method: 'POST',
      headers: { ...store.headers, ...kept },
      body: req,
    });
    const made = answer ? parseObject(answer.toString('utf8')) : null;
    if (typeof made?.['id'] === 'string' && res.statusCode < 300)
      await this.remember('file', made['id'], provider.id, key, attribute(key, req.headers).project);
  }

  /** `POST /v1/batches`: from a file of the key's, checked and reserved on its budgets (see above),
   * then made at the provider that holds the file, and watched until it ends. */
  async create(req: IncomingMessage, res: ServerResponse, key: VirtualKey): Promise<void> {
    const raw = await bodyOf(this.env, req, 'POST');
    if (!Buffer.isBuffer(raw)) return sendError(res, 'openai', raw);
    const headers = await heldToRpm(this.env, key);
    if (isError(headers)) return sendError(res, 'openai', headers);
    const body = parseObject(raw.toString('utf8'));
    if (!body)
      return sendError(
        res,
        'openai',
        badRequest('The request body is not a valid JSON object.', 'invalid_json'),
      );
    const fileId = body['input_file_id'];
    if (typeof fileId !== 'string' || fileId === '')
      return sendError(res, 'openai', badRequest('input_file_id is required.', 'missing_input_file_id'));
    const endpoint = BATCH_ENDPOINTS.get(String(body['endpoint']));
    if (!endpoint) {
      return sendError(
        res,
        'openai',
        badRequest(
          `endpoint must be one of ${[...BATCH_ENDPOINTS.keys()].join(', ')}: the batches the gateway meters.`,
          'batch_endpoint_unsupported',
        ),
      );
    }
    let owner: StoredOwner | null;
    try {
      owner = await ownerOf(this.env.deps, 'file', fileId);
    } catch (err) {
      return sendError(res, 'openai', stateUnavailable(err));
    }
    if (!owner || !reaches(key, owner)) return sendError(res, 'openai', notFound('file', fileId));
    const provider = this.env.provider(owner.provider, key.tenant);
    if (!provider) return sendError(res, 'openai', notFound('file', fileId));
    const time = this.env.deps.clock.now();
    const attribution = attribute(key, req.headers);
    const input = await this.readInput(provider, fileId, key, endpoint, time);
    if (isError(input)) return sendError(res, 'openai', input);
    const held = await this.env.reserve(key, attribution, input, time);
    if (isError(held)) return sendError(res, 'openai', held);
    await this.send(res, req, raw, provider, headers, {
      api: 'openai',
      provider: provider.id,
      key,
      attribution,
      time,
      holds: held,
    });
  }

  /** `POST /v1/messages/batches` (Anthropic's message batches): its requests, in the body, are
   * checked and their largest cost reserved as a batch file's are; the batch goes to the Anthropic
   * provider the request names (`x-tally-provider`), else to the one its first model's messages go
   * to, and is watched until it ends. */
  async createMessageBatch(req: IncomingMessage, res: ServerResponse, key: VirtualKey): Promise<void> {
    const raw = await bodyOf(this.env, req, 'POST');
    if (!Buffer.isBuffer(raw)) return sendError(res, 'anthropic', raw);
    const headers = await heldToRpm(this.env, key);
    if (isError(headers)) return sendError(res, 'anthropic', headers);
    const body = parseObject(raw.toString('utf8'));
    const requests = body?.['requests'];
    if (!Array.isArray(requests) || requests.length === 0 || requests.length > MAX_MESSAGE_BATCH_REQUESTS) {
      return sendError(
        res,
        'anthropic',
        badRequest(
          `requests must be a list of 1 to ${MAX_MESSAGE_BATCH_REQUESTS} requests, each with its custom_id and params.`,
          'invalid_batch_input',
        ),
      );
    }
    const time = this.env.deps.clock.now();
    const models: string[] = [];
    const asked: Record<string, string> = {};
    for (let i = 0; i < requests.length; i++) {
      const r = requests[i] as Obj | null;
      const params = r?.['params'] as Obj | undefined;
      const model = params?.['model'];
      if (typeof r?.['custom_id'] !== 'string' || typeof params !== 'object' || typeof model !== 'string') {
        return sendError(
          res,
          'anthropic',
          badRequest(
            `requests[${i}] is not a request with a custom_id and params that name a model.`,
            'invalid_batch_input',
          ),
        );
      }
      if (!modelAllowed(key.models, model)) {
        return sendError(res, 'anthropic', {
          status: 403,
          type: 'permission_error',
          code: 'model_not_allowed',
          message: `requests[${i}] asks for model ${model}, which this key may not use. Allowed: ${key.models.join(', ')}.`,
        });
      }
      models.push(model);
      asked[r['custom_id']] = model;
    }
    const named = req.headers['x-tally-provider'];
    const provider =
      typeof named === 'string'
        ? this.env.provider(named, key.tenant)
        : this.env.anthropicProvider(models[0]!, key.tenant);
    if (provider?.kind !== 'anthropic') {
      return sendError(res, 'anthropic', {
        status: 404,
        type: 'not_found_error',
        code: 'provider_not_found',
        message:
          typeof named === 'string'
            ? `No Anthropic provider ${named.slice(0, 64)} is configured to run message batches.`
            : `No Anthropic provider is configured for model ${models[0]!.slice(0, 256)}, to run its message batch.`,
      });
    }
    const costs = new Map<string, bigint | Unpriceable>();
    for (const r of requests as Obj[]) {
      const params = r['params'] as Obj;
      await addCost(costs, params['model'] as string, () =>
        this.env.estimate(provider, 'messages', params, key.tenant, time),
      );
    }
    const attribution = attribute(key, req.headers);
    const held = await this.env.reserve(key, attribution, costs, time);
    if (isError(held)) return sendError(res, 'anthropic', held);
    const users: Record<string, string> = {};
    for (const r of requests as Obj[]) {
      const user = bodyUser(r['params'] as Obj);
      if (user !== null) users[r['custom_id'] as string] = user;
    }
    await this.send(res, req, raw, provider, headers, {
      api: 'anthropic',
      ...(Object.keys(users).length > 0 ? { users } : {}),
      ...(costs.size === 1 ? { model: models[0]! } : { models: asked }),
      provider: provider.id,
      key,
      attribution,
      time,
      holds: held,
    });
  }

  /** Makes the batch at `provider` and passes its answer on; a batch made is kept as the key's and
   * watched, and the reservation of one not made goes back. */
  private async send(
    res: ServerResponse,
    req: IncomingMessage,
    raw: Buffer,
    provider: ProviderConfig,
    headers: Record<string, string>,
    batch: Omit<KeptBatch, 'id'>,
  ): Promise<void> {
    const { api, key, attribution, time, holds } = batch;
    const on = api === 'anthropic' ? 'message_batch' : 'batch';
    const store = storeOf(provider, on, req.headers);
    let answer: Buffer | null = null;
    try {
      answer = await pass(this.env, res, provider, headers, {
        origin: store.origin,
        path: store.path,
        method: 'POST',
        headers: store.headers,
        body: raw,
        wire: api,
        ...(api === 'anthropic' ? { transform: withGatewayResultsUrl } : {}),
      });
    } finally {
      const made = answer ? parseObject(answer.toString('utf8')) : null;
      const id = made?.['id'];
      if (typeof id === 'string' && isStoredId(id) && res.statusCode < 300) {
        await this.remember(on, id, provider.id, key, attribution.project);
        this.start({ id, ...batch });
        if (hasEnded(made)) this.observe(key.tenant, id, made);
      } else {
        // Not made: nothing will run, and the reservations go back.
        for (const h of holds) await this.env.settle(key, h.hold, 0n, time);
      }
    }
  }

  /** Reads a batch's input file: the models its requests ask for, and the batch's largest cost;
   * or the refusal (a request for a model the key may not use, a file that is not a batch's). */
  private async readInput(
    provider: ProviderConfig,
    fileId: string,
    key: VirtualKey,
    endpoint: Endpoint,
    time: number,
  ): Promise<Map<string, bigint | Unpriceable> | GatewayError> {
    const limit = this.env.deps.config.batch_input_max_bytes ?? DEFAULT_MAX_INPUT_BYTES;
    const costs = new Map<string, bigint | Unpriceable>();
    let problem: GatewayError | null = null;
    let lineNo = 0;
    try {
      const given = await this.readFile(
        provider,
        fileId,
        async (text) => {
          lineNo++;
          if (problem || text.trim() === '') return;
          const line = parseObject(text);
          const body = line?.['body'];
          const model = (body as Obj | undefined)?.['model'];
          if (!line || typeof body !== 'object' || body === null || typeof model !== 'string') {
            problem = badRequest(
              `Line ${lineNo} of the input file is not a batch request with a body that names a model.`,
              'invalid_batch_input',
            );
          } else if (!modelAllowed(key.models, model)) {
            problem = {
              status: 403,
              type: 'invalid_request_error',
              code: 'model_not_allowed',
              message: `Line ${lineNo} of the input file asks for model ${model}, which this key may not use. Allowed: ${key.models.join(', ')}.`,
            };
          } else {
            await addCost(costs, model, () =>
              this.env.estimate(provider, endpoint, body as Obj, key.tenant, time),
            );
          }
        },
        limit,
      );
      if (!given)
        return { ...notFound('file', fileId), message: `The provider could not give the file '${fileId}'.` };
    } catch (err) {
      if (err instanceof ResponseTooLarge)
        return badRequest(`The input file is larger than ${limit} bytes.`, 'batch_input_too_large');
      return {
        status: 502,
        type: 'api_error',
        code: 'upstream_connection_error',
        message: `The upstream ${provider.id} did not give the input file.`,
      };
    }
    if (problem) return problem;
    if (costs.size === 0) return badRequest('The input file holds no requests.', 'invalid_batch_input');
    return costs;
  }

  /** Keeps whose a file or batch is. */
  private async remember(
    on: 'file' | 'batch' | 'message_batch',
    id: string,
    provider: string,
    key: VirtualKey,
    project: string | null,
  ): Promise<void> {
    if (!isStoredId(id)) return;
    try {
      await this.env.deps.state.remember(
        ownerKey(on, id),
        encodeOwner({ provider, tenant: key.tenant, project }),
        this.env.deps.clock.now() + BATCH_KEPT_MS,
      );
    } catch (err) {
      this.env.deps.onError?.(err, `remembering a ${on}`);
    }
  }

  /** The provider a request names (`x-tally-provider`), else the default OpenAI-style one (for an
   * Anthropic list, the first Anthropic provider the tenant reaches). */
  private providerFor(
    req: IncomingMessage,
    key: VirtualKey,
    api: 'openai' | 'anthropic' = 'openai',
  ): ProviderConfig | GatewayError {
    const named = req.headers['x-tally-provider'];
    const provider =
      typeof named === 'string'
        ? this.env.provider(named, key.tenant)
        : api === 'anthropic'
          ? this.env.anthropicProvider('claude', key.tenant)
          : this.env.defaultProvider(key.tenant);
    if (provider && (provider.kind === 'anthropic') === (api === 'anthropic')) return provider;
    const style = api === 'anthropic' ? 'Anthropic' : 'OpenAI-style';
    return {
      status: 404,
      type: api === 'anthropic' ? 'not_found_error' : 'invalid_request_error',
      code: 'provider_not_found',
      message:
        typeof named === 'string'
          ? `No ${style} provider ${named.slice(0, 64)} is configured to hold batches.`
          : `No ${style} provider is configured to hold batches.`,
    };
  }

  /** `GET /v1/files` and `GET /v1/batches`: the provider's list (of the provider the request
   * names, else the default one), with only the key's own in it. */
  async list(
    req: IncomingMessage,
    res: ServerResponse,
    key: VirtualKey,
    on: 'file' | 'batch' | 'message_batch',
  ): Promise<void> {
    req.resume();
    const wire = wireOfStored(on);
    const headers = await heldToRpm(this.env, key);
    if (isError(headers)) return sendError(res, wire, headers);
    const provider = this.providerFor(req, key, wire);
    if (isError(provider)) return sendError(res, wire, provider);
    const store = storeOf(provider, on, req.headers);
    const q = req.url?.indexOf('?') ?? -1;
    const query = q < 0 ? '' : req.url!.slice(q);
    await pass(this.env, res, provider, headers, {
      origin: store.origin,
      path: `${store.path}${query}`,
      method: 'GET',
      headers: store.headers,
      body: Buffer.alloc(0),
      wire,
      // The list, cut to the key's own before it is written.
      transform: async (answer) => {
        const list = parseObject(answer.toString('utf8'));
        if (!list || !Array.isArray(list['data'])) return answer;
        const data: Obj[] = [];
        for (const item of list['data'] as Obj[]) {
          const id = item?.['id'];
          if (typeof id !== 'string') continue;
          const owner = await ownerOf(this.env.deps, on, id);
          if (owner && owner.provider === provider.id && reaches(key, owner)) data.push(item);
        }
        const cut = Buffer.from(JSON.stringify({ ...list, data }));
        return on === 'message_batch' ? withGatewayResultsUrl(cut) : cut;
      },
    });
  }

  /** A batch as a follow-up answered it: if it has ended and is being watched, metered now. */
  observe(tenant: string, id: string, batch: Obj | null): void {
    const w = this.get(tenant, id);
    if (!w || !batch) return;
    this.learnFiles(w, batch);
    if (hasEnded(batch)) this.track(this.finish(w, batch));
  }

  /** A batch's output and error files are its maker's too. */
  private learnFiles(w: Watched, batch: Obj): void {
    for (const f of ['output_file_id', 'error_file_id']) {
      const id = batch[f];
      if (typeof id === 'string' && id !== '')
        this.track(this.remember('file', id, w.provider, w.key, w.attribution.project));
    }
  }

  /** Asks the provider for the batch: metered once it has ended, else asked again later. */
  protected async look(w: Watched): Promise<void> {
    w.timer = null;
    if (w.done || this.closed) return;
    const maxMs = (this.env.deps.config.batch_max_hours ?? 72) * 3_600_000;
    if (this.env.deps.clock.now() - w.time > maxMs) {
      // It never ended: nothing more will be known of it, and its reservation goes back.
      this.env.deps.onError?.(
        new Error(`batch ${w.id} did not end in ${maxMs / 3_600_000} hours`),
        'watching a batch',
      );
      return this.finish(w, null);
    }
    const got = await lookUp(
      this.env,
      this.env.provider(w.provider, w.key.tenant),
      w.provider,
      (p) => storeOf(p, w.api === 'anthropic' ? 'message_batch' : 'batch', {}),
      w.id,
      'watching a batch',
    );
    if (w.done) return;
    if (got) {
      const batch = got.status === 200 ? got.json : null;
      if (batch) this.learnFiles(w, batch);
      if (hasEnded(batch)) return this.finish(w, batch);
      if (got.status === 404) return this.finish(w, null);
    }
    if (!w.done) this.schedule(w);
  }

  /** Meters every request of an ended batch (none for a batch lost or never ended), and settles
   * its budgets. Once. */
  private async finish(w: Watched, batch: Obj | null): Promise<void> {
    if (w.done) return;
    w.done = true;
    if (w.timer) clearTimeout(w.timer);
    const acc: Spent = { spentNano: 0n, tokens: 0, headers: {}, byModel: new Map() };
    let failed = false;
    try {
      const provider = this.env.provider(w.provider, w.key.tenant);
      const endpoint = BATCH_ENDPOINTS.get(String(batch?.['endpoint'])) ?? 'chat';
      if (batch && provider && w.api === 'anthropic') await this.meterResults(w, provider, batch, acc);
      else if (batch && provider) {
        const asked = await this.askedRequests(provider, batch);
        for (const f of ['output_file_id', 'error_file_id']) {
          const fileId = batch[f];
          if (typeof fileId === 'string' && fileId !== '')
            await this.meterFile(w, provider, endpoint, fileId, batch, asked, acc);
        }
      }
    } catch (err) {
      // Its output could not be read: it is watched again, from the next process if need be.
      failed = true;
      this.env.deps.onError?.(err, `metering batch ${w.id}`);
    }
    if (failed && !this.closed) {
      w.done = false;
      this.schedule(w);
      return;
    }
    this.remove(w);
    try {
      for (const h of w.holds) await this.env.settle(w.key, h.hold, spentOn(h, acc), w.time);
    } finally {
      await this.kept.save();
    }
  }

  /** Meters each request of one of a batch's files (its output, or its errors). */
  private async meterFile(
    w: Watched,
    provider: ProviderConfig,
    endpoint: Endpoint,
    fileId: string,
    batch: Obj,
    asked: Map<string, Asked> | null,
    acc: Spent,
  ): Promise<void> {
    const endedAt = ['completed_at', 'failed_at', 'expired_at', 'cancelled_at']
      .map((f) => batch[f])
      .find((v) => typeof v === 'number') as number | undefined;
    const latencyMs = endedAt
      ? Math.max(0, endedAt * 1000 - w.time)
      : Math.max(0, this.env.deps.clock.now() - w.time);
    const given = await this.readFile(provider, fileId, (text) => {
      if (text.trim() === '') return;
      const line = parseObject(text);
      if (!line) return;
      const customId = typeof line['custom_id'] === 'string' ? line['custom_id'] : String(line['id'] ?? '');
      const response = (line['response'] ?? null) as Obj | null;
      const status = typeof response?.['status_code'] === 'number' ? response['status_code'] : 0;
      const body = (response?.['body'] ?? null) as Obj | null;
      const error = (line['error'] ?? (body?.['error'] as Obj | undefined) ?? null) as Obj | null;
      const ok = status >= 200 && status < 300 && !line['error'];
      const code = typeof error?.['code'] === 'string' ? error['code'] : null;
      const failure = code ?? (status > 0 ? `upstream_${status}` : 'failed');
      this.meterRequest(
        w,
        provider,
        endpoint,
        customId,
        ok ? body : null,
        failure,
        asked?.get(customId),
        latencyMs,
        acc,
      );
    });
    if (!given) throw new Error(`the provider did not give file ${fileId}`);
  }

  /** Meters each request of an ended Anthropic message batch, from its results. */
  private async meterResults(w: Watched, provider: ProviderConfig, batch: Obj, acc: Spent): Promise<void> {
    const endedAt = typeof batch['ended_at'] === 'string' ? Date.parse(batch['ended_at']) : Number.NaN;
    const latencyMs = Math.max(0, (Number.isFinite(endedAt) ? endedAt : this.env.deps.clock.now()) - w.time);
    const given = await this.readFile(
      provider,
      '',
      (text) => {
        const line = parseObject(text);
        if (!line) return;
        const customId = typeof line['custom_id'] === 'string' ? line['custom_id'] : '';
        const result = (line['result'] ?? null) as Obj | null;
        const type = typeof result?.['type'] === 'string' ? result['type'] : 'unknown';
        const message = (result?.['message'] ?? null) as Obj | null;
        const inner = ((result?.['error'] as Obj | undefined)?.['error'] ?? result?.['error']) as
          | Obj
          | undefined;
        const why = typeof inner?.['type'] === 'string' ? `${type}:${inner['type']}` : type;
        this.meterRequest(
          w,
          provider,
          'messages',
          customId,
          type === 'succeeded' ? message : null,
          why,
          {
            ...(w.model || w.models?.[customId] ? { model: (w.model ?? w.models?.[customId])! } : {}),
            user: w.users?.[customId] ?? null,
          },
          latencyMs,
          acc,
        );
      },
      undefined,
      w.id,
    );
    if (!given) throw new Error(`the provider did not give the results of ${w.id}`);
  }

  /** Meters one request of a batch: an answer from its body (with usage), else a failed call. */
  private meterRequest(
    w: Watched,
    provider: ProviderConfig,
    endpoint: Endpoint,
    customId: string,
    answer: Obj | null,
    failure: string,
    asked: Asked | undefined | null,
    latencyMs: number,
    acc: Spent,
  ): void {
    const usage = answer && typeof answer['usage'] === 'object' ? (answer['usage'] as Obj | null) : null;
    const model = typeof answer?.['model'] === 'string' ? answer['model'] : '';
    const id = batchCallId(w.id, customId);
    const ctx: AttemptContext = {
      id,
      time: w.time,
      key: w.key,
      // Tagged with its batch, so that spend groups by batch (group_by=tag:batch_id); its user,
      // where neither the key nor the batch's request named one, the end user its body names.
      attribution: {
        ...w.attribution,
        user: w.attribution.user ?? asked?.user ?? null,
        tags: { ...w.attribution.tags, batch_id: w.id },
      },
      priceProvider: priceProviderOf(provider),
      upstreamApi: ENDPOINT_API[endpoint],
      modelRequested: asked?.model ?? model,
      modelSent: asked?.model ?? model,
      fallbackHops: 0,
      // Each request of a batch is a request of its own.
      requestId: id,
      routeTier: null,
    };
    const out: AttemptOutcome = {
      status: answer ? 'ok' : 'error',
      errorType: answer ? null : `batch_${failure}`.slice(0, 128),
      usage: answer ? usage : null,
      estimated: null,
      modelServed: model || null,
      serviceTier: 'batch',
      latencyMs,
      ttftMs: null,
    };
    const cost = this.env.record(ctx, out, acc);
    // By the model it asked for, which the budgets are scoped by.
    if (cost) acc.byModel.set(ctx.modelRequested, (acc.byModel.get(ctx.modelRequested) ?? 0n) + cost);
  }

  /** Reads one of the provider's files a line at a time (see eachLine); false when the provider
   * does not give it. */
  private async readFile(
    provider: ProviderConfig,
    fileId: string,
    line: (text: string) => void | Promise<void>,
    limit?: number,
    /** What to read, if not a file: an Anthropic batch's results. */
    results?: string,
  ): Promise<boolean> {
    const store = storeOf(provider, results ? 'message_batch' : 'file', {});
    const { 'content-type': _bodyless, ...headers } = store.headers;
    const up = await this.env.upstreams.request(store.origin, {
      path: results ? `${store.path}/${results}/results` : `${store.path}/${fileId}/content`,
      method: 'GET',
      headers,
      timeoutMs: provider.timeout_ms ?? this.env.deps.config.timeout_ms,
    });
    if (up.statusCode !== 200) {
      await up.body.dump().catch(() => undefined);
      return false;
    }
    await eachLine(up.body, line, limit);
    return true;
  }

  /** What each request of a batch's input file asked for, by its custom_id: its model (the
   * answers name the model that served it, a dated snapshot) and the end user its body names; null
   * when the file is no longer there. */
  private async askedRequests(provider: ProviderConfig, batch: Obj): Promise<Map<string, Asked> | null> {
    const input = batch['input_file_id'];
    if (typeof input !== 'string') return null;
    const asked = new Map<string, Asked>();
    try {
      const given = await this.readFile(provider, input, (text) => {
        const line = parseObject(text);
        const body = line?.['body'] as Obj | undefined;
        const model = body?.['model'];
        if (typeof line?.['custom_id'] === 'string' && typeof model === 'string')
          asked.set(line['custom_id'], { model, user: bodyUser(body) });
      });
      return given ? asked : null;
    } catch {
      return null;
    }
  }

  /** Stops watching. The batches still running stay in this process's file, for the next process to
   * take over (without a directory, they are no longer watched). The looks under way are waited for. */
  async close(): Promise<void> {
    await this.stop();
    await this.kept.save();
    this.kept.close();
  }
}
