import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Redis, RedisOptions } from 'ioredis';
import { OK, type RateVerdict, rateResult, refill } from './rate.js';
import type {
  AcquireResult,
  BudgetWindow,
  ParallelSlot,
  RateBucket,
  RateRequest,
  RateResult,
  ReserveResult,
  SharedState,
  WindowUsage,
} from './shared-state.js';

/** How long a reservation's or a settlement's id is kept, so that the same operation sent again
 * (ioredis resends what got no reply once it reconnects) is applied once. */
const OP_TTL_MS = 10 * 60_000;

/** How long a process's reservations outlive its last sign of life: a process that dies with calls
 * in flight (kill -9) does not hold its budgets' room past it. */
const LIVE_MS = 30_000;

/** A hash holding a total that processes share (a window's `reserved`, a slot's calls in flight
 * `n`) and each process's share of it (`<share><id>`, `share` two characters: `r:`, `p:`). The
 * shares of processes whose liveness key has lapsed are taken off the total, which never goes
 * below 0. */
const PURGE = `
local function negate(v)
  if string.sub(v, 1, 1) == '-' then return string.sub(v, 2) end
  return '-' .. v
end
local function purge(key, livePrefix, me, share, total)
  local fields = redis.call('HKEYS', key)
  for _, f in ipairs(fields) do
    if string.sub(f, 1, 2) == share and string.sub(f, 3) ~= me and redis.call('EXISTS', livePrefix .. string.sub(f, 3)) == 0 then
      redis.call('HINCRBY', key, total, negate(redis.call('HGET', key, f)))
      redis.call('HDEL', key, f)
    end
  end
  if tonumber(redis.call('HGET', key, total) or '0') < 0 then redis.call('HSET', key, total, '0') end
end
`;

/** All windows checked, then all reserved, in one script: atomic across replicas. Amounts go back
 * as the strings Redis keeps them in: Lua's tostring writes a number past 1e14 (a $100,000 window)
 * in exponent form. KEYS: the windows, then the operation's id if it has one. ARGV: the amount,
 * each window's limit and reset, the liveness prefix, this process's id, the operation's id. */
const RESERVE = `${PURGE}
local amount = tonumber(ARGV[1])
local n = #KEYS
local op = ARGV[#ARGV]
local me = ARGV[#ARGV - 1]
local livePrefix = ARGV[#ARGV - 2]
if op ~= '' then
  n = n - 1
  if redis.call('EXISTS', KEYS[n + 1]) == 1 then return {1} end
end
redis.call('SET', livePrefix .. me, '1', 'PX', ${LIVE_MS})
for i = 1, n do
  local key = KEYS[i]
  purge(key, livePrefix, me, 'r:', 'reserved')
  local limit = tonumber(ARGV[2 * i])
  local spent = redis.call('HGET', key, 'spent') or '0'
  local reserved = redis.call('HGET', key, 'reserved') or '0'
  if tonumber(spent) + tonumber(reserved) + amount > limit then
    return {0, i, spent, reserved}
  end
end
for i = 1, n do
  local key = KEYS[i]
  redis.call('HINCRBY', key, 'reserved', ARGV[1])
  redis.call('HINCRBY', key, 'r:' .. me, ARGV[1])
  redis.call('PEXPIREAT', key, tonumber(ARGV[2 * i + 1]) + 86400000)
end
if op ~= '' then redis.call('SET', KEYS[n + 1], '1', 'PX', ${OP_TTL_MS}) end
return {1}
`;

/** ARGV: the reservation to release, the actual cost, the operation's id ('' for none), this
 * process's id, how long the id is kept (ms). A process releases no more than its own share of a
 * window's reservations: once its share has been purged (its liveness lapsed while it lived on, or
 * it took over what a dead one held), what it would release is other processes' to hold. */
const SETTLE = `
local out = {}
local n = #KEYS
local again = false
local me = ARGV[4]
if ARGV[3] ~= '' then
  n = n - 1
  again = redis.call('SET', KEYS[n + 1], '1', 'NX', 'PX', tonumber(ARGV[5])) == false
end
for i = 1, n do
  local key = KEYS[i]
  local spent = redis.call('HGET', key, 'spent') or '0'
  local reserved = redis.call('HGET', key, 'reserved') or '0'
  if not again then
    local share = redis.call('HGET', key, 'r:' .. me)
    if ARGV[1] ~= '0' and share then
      -- Compared as numbers, written as the exact strings (see RESERVE).
      local give = ARGV[1]
      if tonumber(share) < tonumber(give) then give = share end
      local r = redis.call('HINCRBY', key, 'reserved', '-' .. give)
      if redis.call('HINCRBY', key, 'r:' .. me, '-' .. give) <= 0 then redis.call('HDEL', key, 'r:' .. me) end
      if r < 0 then redis.call('HSET', key, 'reserved', '0') end
    end
    redis.call('HINCRBY', key, 'spent', ARGV[2])
  end
  table.insert(out, spent)
  table.insert(out, reserved)
  table.insert(out, redis.call('HGET', key, 'spent') or '0')
  table.insert(out, redis.call('HGET', key, 'reserved') or '0')
end
return out
`;

/** A reservation held again by this process, with no limit weighed: what a process that stopped
 * held for a batch or a background call it watched, taken over with the watching. Not when the
 * settlement is already applied (the process stopped after it: nothing is left to hold), and once
 * under its own id. KEYS: the windows, the settlement's id, the hold's id. ARGV: the amount, each
 * window's reset, the liveness prefix, this process's id. Returns 1 when held. */
const HOLD = `${PURGE}
local n = #KEYS - 2
if redis.call('EXISTS', KEYS[n + 1]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[n + 2]) == 1 then return 1 end
local me = ARGV[#ARGV]
local livePrefix = ARGV[#ARGV - 1]
redis.call('SET', livePrefix .. me, '1', 'PX', ${LIVE_MS})
for i = 1, n do
  -- The stopped process's share goes now, if it has not yet: it is this one's to hold from here.
  purge(KEYS[i], livePrefix, me, 'r:', 'reserved')
  redis.call('HINCRBY', KEYS[i], 'reserved', ARGV[1])
  redis.call('HINCRBY', KEYS[i], 'r:' .. me, ARGV[1])
  redis.call('PEXPIREAT', KEYS[i], tonumber(ARGV[i + 1]) + 86400000)
end
redis.call('SET', KEYS[n + 2], '1', 'PX', ${OP_TTL_MS})
return 1
`;

/** Token buckets refilled continuously at limit per minute, several pairs at once: a request and
 * its tokens are taken from every pair, or from none when one would go short (the first such
 * refuses). KEYS: each pair's requests and tokens buckets. ARGV: tokens, now, then each pair's rpm
 * and tpm (0 = none). Returns the refusing pair's number (0 = none), which limit, the retry in ms,
 * then each pair's requests and tokens levels. */
const RATE = `
local want = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local n = #KEYS / 2
local function level(key, limit)
  local v = redis.call('HMGET', key, 'level', 'at')
  if not v[1] then return limit end
  local l = tonumber(v[1]) + math.max(0, now - tonumber(v[2])) * limit / 60000
  if l > limit then l = limit end
  return l
end
local rl, tl, rpm, tpm = {}, {}, {}, {}
local refused, limited, retry = 0, '', 0
for i = 1, n do
  rpm[i] = tonumber(ARGV[1 + 2 * i])
  tpm[i] = tonumber(ARGV[2 + 2 * i])
  rl[i] = 0
  tl[i] = 0
  if rpm[i] > 0 then rl[i] = level(KEYS[2 * i - 1], rpm[i]) end
  if tpm[i] > 0 then tl[i] = level(KEYS[2 * i], tpm[i]) end
  if refused == 0 then
    if rpm[i] > 0 and rl[i] < 1 then
      refused = i; limited = 'requests'; retry = math.ceil((1 - rl[i]) * 60000 / rpm[i])
    elseif tpm[i] > 0 and tl[i] < math.min(want, tpm[i]) then
      refused = i; limited = 'tokens'; retry = math.ceil((math.min(want, tpm[i]) - tl[i]) * 60000 / tpm[i])
    end
  end
end
local out = {refused, limited, retry}
for i = 1, n do
  if refused == 0 then
    if rpm[i] > 0 then rl[i] = rl[i] - 1 end
    if tpm[i] > 0 then tl[i] = tl[i] - want end
  end
  if rpm[i] > 0 then
    redis.call('HSET', KEYS[2 * i - 1], 'level', tostring(rl[i]), 'at', tostring(now))
    redis.call('PEXPIRE', KEYS[2 * i - 1], 120000)
  end
  if tpm[i] > 0 then
    redis.call('HSET', KEYS[2 * i], 'level', tostring(tl[i]), 'at', tostring(now))
    redis.call('PEXPIRE', KEYS[2 * i], 120000)
  end
  table.insert(out, tostring(rl[i]))
  table.insert(out, tostring(tl[i]))
end
return out
`;

/** Calls in flight: a slot's hash holds the total (`n`) and each process's share of it (`p:<id>`),
 * purged as reservations are (PURGE). KEYS: the slots. ARGV: the liveness prefix, this process's
 * id, each slot's limit. Returns 1, or 0 with the first full slot's number and what it holds. */
const ACQUIRE = `${PURGE}
local livePrefix = ARGV[1]
local me = ARGV[2]
redis.call('SET', livePrefix .. me, '1', 'PX', ${LIVE_MS})
for i = 1, #KEYS do
  purge(KEYS[i], livePrefix, me, 'p:', 'n')
  local n = tonumber(redis.call('HGET', KEYS[i], 'n') or '0')
  if n >= tonumber(ARGV[2 + i]) then return {0, i, n} end
end
for i = 1, #KEYS do
  redis.call('HINCRBY', KEYS[i], 'n', 1)
  redis.call('HINCRBY', KEYS[i], 'p:' .. me, 1)
  redis.call('PEXPIRE', KEYS[i], 86400000)
end
return {1}
`;

/** KEYS: the slots. ARGV: this process's id. */
const RELEASE = `
for i = 1, #KEYS do
  local key = KEYS[i]
  if redis.call('HINCRBY', key, 'p:' .. ARGV[1], -1) <= 0 then redis.call('HDEL', key, 'p:' .. ARGV[1]) end
  if redis.call('HINCRBY', key, 'n', -1) < 0 then redis.call('HSET', key, 'n', '0') end
end
return 1
`;

const ADJUST = `
local tpm = tonumber(ARGV[1])
local delta = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 'level', 'at')
local l = tpm
if v[1] then
  l = tonumber(v[1]) + math.max(0, now - tonumber(v[2])) * tpm / 60000
  if l > tpm then l = tpm end
end
redis.call('HSET', KEYS[1], 'level', tostring(l - delta), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], 120000)
return 1
`;

/** Spend raised to at least ARGV[1] (compared as numbers, exact to 2^53 nano-USD; written as the
 * caller's exact string). */
const AT_LEAST = `
local spent = redis.call('HGET', KEYS[1], 'spent') or '0'
if tonumber(spent) < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'spent', ARGV[1])
  redis.call('HSETNX', KEYS[1], 'reserved', '0')
  redis.call('PEXPIREAT', KEYS[1], tonumber(ARGV[2]) + 86400000)
end
return 1
`;

type Scripted = Redis & {
  tallyAtLeast(n: number, ...args: (string | number)[]): Promise<number>;
  tallyReserve(n: number, ...args: (string | number)[]): Promise<(string | number)[]>;
  tallySettle(n: number, ...args: (string | number)[]): Promise<string[]>;
  tallyHold(n: number, ...args: (string | number)[]): Promise<number>;
  tallyRate(n: number, ...args: (string | number)[]): Promise<[number, string, number, ...string[]]>;
  tallyAdjust(n: number, ...args: (string | number)[]): Promise<number>;
  tallyAcquire(n: number, ...args: (string | number)[]): Promise<number[]>;
  tallyRelease(n: number, ...args: (string | number)[]): Promise<number>;
};

/** The shared state in Redis, for several gateway replicas. Each operation is one Lua script. */
export class RedisState implements SharedState {
  private readonly redis: Scripted;
  /** The connection's last error, until it is ready again. */
  lastError: string | null = null;
  /** This process among those sharing the state: its reservations are its own (see PURGE). */
  private readonly instance = randomBytes(8).toString('hex');
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    urlOrOptions: string | RedisOptions = 'redis://127.0.0.1:6379',
    private readonly prefix = 'tally:',
  ) {
    // Loaded here, not at import: a gateway on in-process state never pays for the client.
    const { Redis: Client } = createRequire(import.meta.url)('ioredis') as typeof import('ioredis');
    const redis = (
      typeof urlOrOptions === 'string'
        ? // A call waits for Redis about a second at most (ioredis's default is 20 retries, 7–9 s):
          // past that it is refused with a 503, and a settlement is tried again in the background.
          new Client(urlOrOptions, { lazyConnect: false, maxRetriesPerRequest: 2, connectTimeout: 2000 })
        : new Client(urlOrOptions)
    ) as Scripted;
    // A lost connection is reported by the commands it fails (a 503, a settlement tried again);
    // without a listener ioredis would print each reconnect's error as unhandled.
    redis.on('error', (err: Error) => {
      this.lastError = err.message;
    });
    redis.on('ready', () => {
      this.lastError = null;
    });
    // Alive while it runs: each reservation says so too, and this covers a long stream's quiet.
    this.heartbeat = setInterval(() => {
      redis.set(this.livePrefix + this.instance, '1', 'PX', LIVE_MS).catch(() => undefined);
    }, LIVE_MS / 3);
    this.heartbeat.unref();
    redis.defineCommand('tallyReserve', { lua: RESERVE });
    redis.defineCommand('tallySettle', { lua: SETTLE });
    redis.defineCommand('tallyHold', { lua: HOLD });
    redis.defineCommand('tallyRate', { lua: RATE });
    redis.defineCommand('tallyAdjust', { lua: ADJUST });
    redis.defineCommand('tallyAcquire', { lua: ACQUIRE });
    redis.defineCommand('tallyRelease', { lua: RELEASE });
    redis.defineCommand('tallyAtLeast', { lua: AT_LEAST });
    this.redis = redis;
  }

  private k(key: string): string {
    return `${this.prefix}b:${key}`;
  }

  /** The windows' keys, then the operation's, if it has an id. */
  private keysOf(windows: BudgetWindow[], opId: string | undefined): string[] {
    const keys = windows.map((w) => this.k(w.key));
    if (opId) keys.push(`${this.prefix}op:${opId}`);
    return keys;
  }

  /** Where each process's liveness key is (see PURGE). */
  private get livePrefix(): string {
    return `${this.prefix}live:`;
  }

  async reserve(windows: BudgetWindow[], amountNano: bigint, opId?: string): Promise<ReserveResult> {
    if (windows.length === 0) return { ok: true };
    // As RESERVE reads them: KEYS the windows and the operation's; ARGV the amount, each window's
    // limit and reset, the liveness prefix, this process's id, the operation's id ('' for none).
    const keys = this.keysOf(windows, opId);
    const argv: (string | number)[] = [amountNano.toString()];
    for (const w of windows) argv.push(w.limitNano.toString(), w.resetAt);
    argv.push(this.livePrefix, this.instance, opId ?? '');
    const r = await this.redis.tallyReserve(keys.length, ...keys, ...argv);
    if (Number(r[0]) === 1) return { ok: true };
    const w = windows[Number(r[1]) - 1]!;
    return {
      ok: false,
      budgetId: w.budgetId,
      spentNano: BigInt(String(r[2])),
      reservedNano: BigInt(String(r[3])),
      limitNano: w.limitNano,
      resetAt: w.resetAt,
    };
  }

  async settle(
    windows: BudgetWindow[],
    reservedNano: bigint,
    actualNano: bigint,
    opId?: string,
    keepIdMs = OP_TTL_MS,
  ) {
    if (windows.length === 0) return [];
    const keys = this.keysOf(windows, opId);
    const r = await this.redis.tallySettle(
      keys.length,
      ...keys,
      reservedNano.toString(),
      actualNano.toString(),
      opId ?? '',
      this.instance,
      keepIdMs,
    );
    return windows.map((_, i) => ({
      before: { spentNano: BigInt(r[4 * i]!), reservedNano: BigInt(r[4 * i + 1]!) },
      after: { spentNano: BigInt(r[4 * i + 2]!), reservedNano: BigInt(r[4 * i + 3]!) },
    }));
  }

  async holdAgain(
    windows: BudgetWindow[],
    amountNano: bigint,
    settleOpId: string,
    opId: string,
  ): Promise<boolean> {
    if (windows.length === 0 || amountNano === 0n) return false;
    const keys = windows.map((w) => this.k(w.key));
    keys.push(`${this.prefix}op:${settleOpId}`, `${this.prefix}op:${opId}`);
    const argv: (string | number)[] = [amountNano.toString()];
    for (const w of windows) argv.push(w.resetAt);
    argv.push(this.livePrefix, this.instance);
    return (await this.redis.tallyHold(keys.length, ...keys, ...argv)) === 1;
  }

  async usage(w: BudgetWindow): Promise<WindowUsage> {
    const [spent, reserved] = await this.redis.hmget(this.k(w.key), 'spent', 'reserved');
    return { spentNano: BigInt(spent ?? '0'), reservedNano: BigInt(reserved ?? '0') };
  }

  async atLeast(w: BudgetWindow, spentNano: bigint): Promise<void> {
    await this.redis.tallyAtLeast(1, this.k(w.key), spentNano.toString(), w.resetAt);
  }

  async rateLimit(req: RateRequest): Promise<RateResult> {
    return (await this.rateLimitAll([req], req.tokens, req.now))[0] as RateResult;
  }

  async rateLimitAll(buckets: RateBucket[], tokens: number, now: number): Promise<RateResult[]> {
    const keys = buckets.flatMap((b) => [`${this.prefix}r:${b.key}`, `${this.prefix}t:${b.key}`]);
    const limits = buckets.flatMap((b) => [b.rpm ?? 0, b.tpm ?? 0]);
    const [refused, limited, retry, ...levels] = await this.redis.tallyRate(
      keys.length,
      ...keys,
      tokens,
      now,
      ...limits,
    );
    const at = Number(refused) - 1;
    return buckets.map((b, i) => {
      const v: RateVerdict =
        i === at
          ? {
              ok: false,
              limited: limited === 'tokens' ? 'tokens' : 'requests',
              retryAfterMs: Number(retry),
            }
          : OK;
      return rateResult(b, v, Number(levels[2 * i]), Number(levels[2 * i + 1]));
    });
  }

  private slot(key: string): string {
    return `${this.prefix}c:${key}`;
  }

  async acquireSlots(slots: ParallelSlot[]): Promise<AcquireResult> {
    if (slots.length === 0) return { ok: true };
    const r = await this.redis.tallyAcquire(
      slots.length,
      ...slots.map((s) => this.slot(s.key)),
      this.livePrefix,
      this.instance,
      ...slots.map((s) => s.limit),
    );
    return Number(r[0]) === 1 ? { ok: true } : { ok: false, at: Number(r[1]) - 1, inFlight: Number(r[2]) };
  }

  async releaseSlots(keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    await this.redis.tallyRelease(keys.length, ...keys.map((k) => this.slot(k)), this.instance);
  }

  async slotsInFlight(key: string): Promise<number> {
    return Math.max(0, Number((await this.redis.hget(this.slot(key), 'n')) ?? 0));
  }

  async rateStanding(b: RateBucket, now: number): Promise<RateResult> {
    const level = async (key: string, limit: number | null) => {
      if (!limit) return 0;
      const [l, at] = await this.redis.hmget(key, 'level', 'at');
      return l === null || at === null ? limit : refill({ level: Number(l), at: Number(at) }, limit, now);
    };
    const r = await level(`${this.prefix}r:${b.key}`, b.rpm);
    const t = await level(`${this.prefix}t:${b.key}`, b.tpm);
    return rateResult(b, OK, r, t);
  }

  async once(key: string, untilMs: number): Promise<boolean> {
    // Kept a day past its time, as the budget windows are.
    const r = await this.redis.set(
      `${this.prefix}o:${key}`,
      '1',
      'PXAT',
      Math.ceil(untilMs) + 86_400_000,
      'NX',
    );
    return r === 'OK';
  }

  async remember(key: string, value: string, untilMs: number): Promise<void> {
    await this.redis.set(`${this.prefix}r:${key}`, value, 'PXAT', Math.ceil(untilMs));
  }

  async recall(key: string): Promise<string | null> {
    return this.redis.get(`${this.prefix}r:${key}`);
  }

  async forget(key: string): Promise<void> {
    await this.redis.del(`${this.prefix}r:${key}`);
  }

  async adjustTokens(key: string, tpm: number, delta: number, now: number): Promise<void> {
    await this.redis.tallyAdjust(1, `${this.prefix}t:${key}`, tpm, delta, now);
  }

  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    // What this process still holds is released for the others at once.
    await this.redis.del(this.livePrefix + this.instance).catch(() => undefined);
    await this.redis.quit().catch(() => undefined);
  }
}
