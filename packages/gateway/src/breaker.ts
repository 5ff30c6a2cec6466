/**
 * A circuit breaker per upstream: after `threshold` failures in a row (429, 5xx, timeout or
 * connection error) it opens and the router skips that upstream for `cooldownMs`; then one call is
 * let through, and its result closes or reopens it.
 */
export class Breakers {
  private readonly state = new Map<string, { failures: number; openUntil: number; probing: boolean }>();

  constructor(
    private readonly now: () => number,
    private readonly threshold = 5,
    private readonly cooldownMs = 30_000,
  ) {}

  /** Whether a call may go to this upstream now. */
  allows(id: string): boolean {
    const s = this.state.get(id);
    if (!s || s.failures < this.threshold) return true;
    if (this.now() < s.openUntil || s.probing) return false;
    s.probing = true; // half-open: this one call decides
    return true;
  }

  success(id: string): void {
    this.state.delete(id);
  }

  failure(id: string): void {
    const s = this.state.get(id) ?? { failures: 0, openUntil: 0, probing: false };
    s.failures++;
    s.probing = false;
    if (s.failures >= this.threshold) s.openUntil = this.now() + this.cooldownMs;
    this.state.set(id, s);
  }

  isOpen(id: string): boolean {
    const s = this.state.get(id);
    return !!s && s.failures >= this.threshold && this.now() < s.openUntil;
  }
}
