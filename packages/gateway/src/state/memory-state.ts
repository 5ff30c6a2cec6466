import { type Bucket, OK, rateResult, rateVerdict, refill } from './rate.js';
import {
  type AcquireResult,
  type BudgetWindow,
  type ParallelSlot,
  type RateBucket,
  type RateRequest,
  type RateResult,
  REMEMBERED_IN_PROCESS,
  type ReserveResult,
  type SharedState,
  type WindowUsage,
} from './shared-state.js';

/** The in-process shared state: exact, for one replica. JavaScript runs one thing at a time, so
 * each method is atomic by construction. */
export class MemoryState implements SharedState {
  private readonly windows = new Map<string, WindowUsage & { resetAt: number }>();
  private readonly buckets = new Map<string, { r: Bucket | null; t: Bucket | null }>();
  /** once(): each key and when it may fire again. */
  private readonly onces = new Map<string, number>();
  /** The number of marks at which once() next drops those past their time. */
  private purgeOncesAt = 10_000;
  /** remember(): each value and until when it is kept, oldest first. */
  private readonly kept = new Map<string, { value: string; until: number }>();

  private window(w: BudgetWindow): WindowUsage & { resetAt: number } {
    let u = this.windows.get(w.key);
    if (!u) {
      u = { spentNano: 0n, reservedNano: 0n, resetAt: w.resetAt };
      this.windows.set(w.key, u);
    }
    return u;
  }

  async reserve(windows: BudgetWindow[], amountNano: bigint): Promise<ReserveResult> {
    for (const w of windows) {
      const u = this.window(w);
      if (u.spentNano + u.reservedNano + amountNano > w.limitNano) {
        return {
          ok: false,
          budgetId: w.budgetId,
          spentNano: u.spentNano,
          reservedNano: u.reservedNano,
          limitNano: w.limitNano,
          resetAt: w.resetAt,
        };
      }
    }
    for (const w of windows) this.window(w).reservedNano += amountNano;
    return { ok: true };
  }

  async settle(windows: BudgetWindow[], reservedNano: bigint, actualNano: bigint) {
    return windows.map((w) => {
      const u = this.window(w);
      const before = { spentNano: u.spentNano, reservedNano: u.reservedNano };
      u.reservedNano -= reservedNano;
      if (u.reservedNano < 0n) u.reservedNano = 0n;
      u.spentNano += actualNano;
      return { before, after: { spentNano: u.spentNano, reservedNano: u.reservedNano } };
    });
  }

  async holdAgain(windows: BudgetWindow[], amountNano: bigint): Promise<boolean> {
    // In-process state starts empty with its process: nothing a stopped one did is known here.
    if (windows.length === 0 || amountNano === 0n) return false;
    for (const w of windows) this.window(w).reservedNano += amountNano;
    return true;
  }

  async once(key: string, untilMs: number): Promise<boolean> {
    if (this.onces.has(key)) return false;
    if (this.onces.size >= this.purgeOncesAt) {
      const now = Date.now();
      for (const [k, t] of this.onces) if (t < now) this.onces.delete(k);
      // Marks still in force (a busy day's code containers) are not scanned again on every call:
      // the next look is when as many again have been added.
      this.purgeOncesAt = Math.max(10_000, 2 * this.onces.size);
    }
    this.onces.set(key, untilMs);
    return true;
  }

  async remember(key: string, value: string, untilMs: number): Promise<void> {
    // Kept again, it moves to the back: the oldest is the first in the map's order.
    this.kept.delete(key);
    this.kept.set(key, { value, until: untilMs });
    if (this.kept.size > REMEMBERED_IN_PROCESS) {
      for (const k of this.kept.keys()) {
        this.kept.delete(k);
        if (this.kept.size <= REMEMBERED_IN_PROCESS) break;
      }
    }
  }

  async recall(key: string): Promise<string | null> {
    const hit = this.kept.get(key);
    if (!hit) return null;
    if (hit.until <= Date.now()) {
      this.kept.delete(key);
      return null;
    }
    return hit.value;
  }

  async forget(key: string): Promise<void> {
    this.kept.delete(key);
  }

  async atLeast(w: BudgetWindow, spentNano: bigint): Promise<void> {
    const u = this.window(w);
    if (u.spentNano < spentNano) u.spentNano = spentNano;
  }

  async usage(w: BudgetWindow): Promise<WindowUsage> {
    const u = this.windows.get(w.key);
    return { spentNano: u?.spentNano ?? 0n, reservedNano: u?.reservedNano ?? 0n };
  }

  async rateLimit(req: RateRequest): Promise<RateResult> {
    // One pair, the common case (a key's own limits), without rateLimitAll's lists.
    const rb = req.rpm ? this.bucket(req.key, 'r', req.rpm, req.now) : null;
    const tb = req.tpm ? this.bucket(req.key, 't', req.tpm, req.now) : null;
    const r = rb && req.rpm ? refill(rb, req.rpm, req.now) : 0;
    const t = tb && req.tpm ? refill(tb, req.tpm, req.now) : 0;
    const v = rateVerdict(req, r, t, req.tokens);
    const rNext = v.ok && req.rpm ? r - 1 : r;
    const tNext = v.ok && req.tpm ? t - req.tokens : t;
    if (rb) {
      rb.level = rNext;
      rb.at = req.now;
    }
    if (tb) {
      tb.level = tNext;
      tb.at = req.now;
    }
    return rateResult(req, v, rNext, tNext);
  }

  async rateLimitAll(buckets: RateBucket[], tokens: number, now: number): Promise<RateResult[]> {
    const pairs = buckets.map((b) => {
      const rb = b.rpm ? this.bucket(b.key, 'r', b.rpm, now) : null;
      const tb = b.tpm ? this.bucket(b.key, 't', b.tpm, now) : null;
      return { rb, tb, r: rb ? refill(rb, b.rpm!, now) : 0, t: tb ? refill(tb, b.tpm!, now) : 0 };
    });
    const verdicts = pairs.map((p, i) => rateVerdict(buckets[i] as RateBucket, p.r, p.t, tokens));
    const refused = verdicts.findIndex((v) => !v.ok);
    return buckets.map((b, i) => {
      const { rb, tb, r, t } = pairs[i]!;
      const rNext = refused < 0 && rb ? r - 1 : r;
      const tNext = refused < 0 && tb ? t - tokens : t;
      if (rb) {
        rb.level = rNext;
        rb.at = now;
      }
      if (tb) {
        tb.level = tNext;
        tb.at = now;
      }
      return rateResult(b, i === refused ? verdicts[i]! : OK, rNext, tNext);
    });
  }

  private readonly inFlight = new Map<string, number>();

  async acquireSlots(slots: ParallelSlot[]): Promise<AcquireResult> {
    for (let i = 0; i < slots.length; i++) {
      const s = slots[i] as ParallelSlot;
      const n = this.inFlight.get(s.key) ?? 0;
      if (n >= s.limit) return { ok: false, at: i, inFlight: n };
    }
    for (const s of slots) this.inFlight.set(s.key, (this.inFlight.get(s.key) ?? 0) + 1);
    return { ok: true };
  }

  async releaseSlots(keys: string[]): Promise<void> {
    for (const k of keys) {
      const n = (this.inFlight.get(k) ?? 0) - 1;
      if (n > 0) this.inFlight.set(k, n);
      else this.inFlight.delete(k);
    }
  }

  async slotsInFlight(key: string): Promise<number> {
    return this.inFlight.get(key) ?? 0;
  }

  async rateStanding(b: RateBucket, now: number): Promise<RateResult> {
    const pair = this.buckets.get(b.key);
    const r = b.rpm ? (pair?.r ? refill(pair.r, b.rpm, now) : b.rpm) : 0;
    const t = b.tpm ? (pair?.t ? refill(pair.t, b.tpm, now) : b.tpm) : 0;
    return rateResult(b, OK, r, t);
  }

  async adjustTokens(key: string, tpm: number, delta: number, now: number): Promise<void> {
    const b = this.bucket(key, 't', tpm, now);
    b.level = refill(b, tpm, now) - delta;
    b.at = now;
  }

  /** A key's request (r) or token (t) bucket, found by the key's id alone: a key made by joining
   * strings would be hashed anew on every call. */
  private bucket(key: string, kind: 'r' | 't', limit: number, now: number): Bucket {
    let pair = this.buckets.get(key);
    if (!pair) {
      pair = { r: null, t: null };
      this.buckets.set(key, pair);
    }
    let b = pair[kind];
    if (!b) {
      b = { level: limit, at: now };
      pair[kind] = b;
    }
    return b;
  }

  async close(): Promise<void> {
    this.windows.clear();
    this.buckets.clear();
  }
}
