/**
 * A circuit breaker per upstream: after `threshold` failures in a row (429, 5xx, timeout or
 * connection error) it opens and the router skips that upstream for `cooldownMs`; then one call is
 * let through, and its result closes or reopens it.
 *
 * Planning a call only asks (allows); the probe is taken when an attempt is actually sent (claim),
 * and held for a cooldown at most: a probe that never reports back (its client left, say) cannot
 * keep the upstream out of routing.
 */
export class Breakers {
  private readonly state = new Map<string, { failures: number; openUntil: number; probeUntil: number }>();

  constructor(
    private readonly now: () => number,
    private readonly threshold = 5,
    private readonly cooldownMs = 30_000,
  ) {}

  /** Whether a call may be planned to this upstream now: closed, or half-open with no probe out. */
  allows(id: string): boolean {
    const s = this.state.get(id);
    if (!s || s.failures < this.threshold) return true;
    const now = this.now();
    return now >= s.openUntil && now >= s.probeUntil;
  }

  /** An attempt is going to this upstream: if it is half-open, this one is the probe. */
  claim(id: string): void {
    const s = this.state.get(id);
    if (s && s.failures >= this.threshold && this.now() >= s.openUntil)
      s.probeUntil = this.now() + this.cooldownMs;
  }

  /** An attempt ended without saying anything of the upstream (its client left): the probe, if it
   * was one, is handed back. */
  release(id: string): void {
    const s = this.state.get(id);
    if (s) s.probeUntil = 0;
  }

  success(id: string): void {
    this.state.delete(id);
  }

  failure(id: string): void {
    const s = this.state.get(id) ?? { failures: 0, openUntil: 0, probeUntil: 0 };
    s.failures++;
    s.probeUntil = 0;
    if (s.failures >= this.threshold) s.openUntil = this.now() + this.cooldownMs;
    this.state.set(id, s);
  }

  /** Each upstream that has failed since its last success: its failures in a row, and whether its
   * circuit is open now (calls skip it). */
  *failing(): IterableIterator<{ id: string; failures: number; open: boolean }> {
    for (const [id, s] of this.state) yield { id, failures: s.failures, open: this.isOpen(id) };
  }

  isOpen(id: string): boolean {
    const s = this.state.get(id);
    return !!s && s.failures >= this.threshold && this.now() < s.openUntil;
  }
}
