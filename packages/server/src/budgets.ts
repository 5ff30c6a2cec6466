import { createHash, createHmac } from 'node:crypto';
import { tagSubject } from '@tally/core';
import {
  type BudgetAlert,
  type BudgetRule,
  exhaustedOnce,
  type SharedState,
  windowsFor,
} from '@tally/gateway';
import type { BudgetRecord, Store } from '@tally/store';
import type { FastifyBaseLogger } from 'fastify';
import { request } from 'undici';

/** The budgets of each tenant, read from the store and kept for a few seconds; the gateway asks on
 * every call. Changes made through this server are seen at once. */
export class BudgetCache {
  private readonly byTenant = new Map<
    string,
    { rules: BudgetRule[]; at: number; loading?: Promise<BudgetRule[]> }
  >();

  constructor(
    private readonly store: Store,
    private readonly now: () => number,
    private readonly ttlMs = 2000,
    /** Called with the rules of a tenant the first time each is read (see seedSpend). */
    private readonly onFirstRead?: (tenant: string, rules: BudgetRule[]) => Promise<void>,
  ) {}

  private readonly read = new Set<string>();

  async rules(tenant: string): Promise<BudgetRule[]> {
    const hit = this.byTenant.get(tenant);
    if (hit && this.now() - hit.at < this.ttlMs) return hit.rules;
    if (hit?.loading) return hit.loading;
    const loading = this.store
      .listBudgets(tenant)
      .then((list) => list.map(toRule))
      .then(async (rules) => {
        const fresh = rules.filter((r) => !this.read.has(`${tenant}\u0000${r.id}`));
        if (fresh.length > 0 && this.onFirstRead) await this.onFirstRead(tenant, fresh);
        for (const r of fresh) this.read.add(`${tenant}\u0000${r.id}`);
        return rules;
      });
    this.byTenant.set(tenant, { rules: hit?.rules ?? [], at: hit?.at ?? 0, loading });
    try {
      const rules = await loading;
      this.byTenant.set(tenant, { rules, at: this.now() });
      return rules;
    } catch (err) {
      this.byTenant.delete(tenant);
      throw err;
    }
  }

  invalidate(tenant: string): void {
    this.byTenant.delete(tenant);
  }
}

/**
 * Adds to each budget's current window the spend the store holds for it, from the period's start
 * to now: the in-process state starts empty, so without it a restart would forget what a budget
 * had spent. Called once per budget, when this process first reads it; the calls this process
 * meters from then on are settled into the state as they happen.
 */
export async function seedSpend(
  store: Store,
  state: SharedState,
  tenant: string,
  rules: BudgetRule[],
  now: number,
): Promise<void> {
  // A block budget's exhaustion alerts, each raised once a period, are not raised again by a
  // restart. One stored without a reason was the period's first refusal.
  const exhausted = new Set(
    (await store.listAlerts(tenant, 1000))
      .filter((a) => a.kind === 'budget.exhausted')
      .map((a) => {
        const p = a.payload as { period?: unknown; reason?: unknown };
        return `${a.subject}\u0000${String(p.period)}\u0000${p.reason === 'spent' ? 'spent' : 'call_exceeds_remaining'}`;
      }),
  );
  for (const w of windowsFor(rules, now)) {
    for (const reason of ['spent', 'call_exceeds_remaining'] as const) {
      if (exhausted.has(`${w.rule.id}\u0000${w.label}\u0000${reason}`))
        await state.once(exhaustedOnce(w, reason), w.window.resetAt);
    }
    // A tag budget's spend is that of the calls with its tag; the others', their group's.
    const tag = w.rule.scope === 'tag' ? tagSubject(w.rule.subject) : null;
    const group = w.rule.scope === 'tenant' || w.rule.scope === 'tag' ? undefined : w.rule.scope;
    if (w.rule.scope === 'tag' && tag === null) continue;
    const rows = await store.spend({
      tenant,
      from: w.start,
      to: now + 1,
      ...(group ? { groupBy: group } : {}),
      ...(tag ? { tag } : {}),
      ...(w.rule.models?.length ? { models: w.rule.models } : {}),
    });
    const row = group ? rows.find((r) => r.group === w.rule.subject) : rows[0];
    if (row && row.cost_effective_nano > 0n) await state.atLeast(w.window, row.cost_effective_nano);
  }
}

export function toRule(b: BudgetRecord): BudgetRule {
  return {
    tenant: b.tenant,
    id: b.id,
    scope: b.scope,
    subject: b.subject,
    limitNano: b.limit_nano,
    period: b.period,
    timeZone: b.time_zone,
    thresholds: b.thresholds,
    action: b.action,
    downgradeModel: b.downgrade_model,
    models: b.models,
  };
}

/**
 * Budget alerts: stored (GET /v1/alerts reads them back), logged, and POSTed to the configured
 * webhook, retried with backoff (1 s doubling, 6 tries) until it answers 2xx.
 */
export class AlertService {
  private readonly inflight = new Set<Promise<void>>();
  /** The stores under way (a subset of inflight): a read of the alerts waits for these only, not
   * for a webhook's retries. */
  private readonly storing = new Set<Promise<void>>();

  constructor(
    private readonly store: Store,
    private readonly log: FastifyBaseLogger,
    private readonly webhookUrl: string | undefined,
    private readonly baseDelayMs = 1000,
    /** With it, each delivery is signed: `x-tally-signature: sha256=<hex>`, the HMAC-SHA256 of
     * `<x-tally-timestamp>.<body>` under this secret. */
    private readonly secret?: string,
  ) {}

  emit(alert: BudgetAlert): void {
    // An alert happens once: a budget's threshold (or exhaustion) in a period. Its id is made from
    // that, so an alert raised twice (a replica that resends one whose answer it lost, say) is
    // stored and delivered once.
    // The exhaustion of nothing left is another alert than the first refusal's, which keeps the
    // id all refusals shared before the two were told apart.
    const parts = [alert.tenant, alert.budgetId, alert.period, alert.kind, alert.threshold];
    if (alert.reason === 'spent') parts.push(alert.reason);
    const id = `alert_${createHash('sha256').update(parts.join('\u0000')).digest('hex').slice(0, 24)}`;
    const record = {
      tenant: alert.tenant,
      id,
      time: Date.parse(alert.time),
      kind: alert.kind,
      subject: alert.budgetId,
      payload: { ...alert },
    };
    const stored = this.store.addAlert(record).then(
      (r) => r.inserted > 0,
      (err: unknown) => {
        this.log.error({ err, alert }, 'could not store a budget alert');
        return true;
      },
    );
    const fresh = stored.then((isNew) => {
      if (!isNew) return;
      this.log.warn({ alert }, 'budget threshold crossed');
      // The stored alert's id goes with the webhook, so that a receiver can drop a retried delivery.
      if (this.webhookUrl) this.track(this.deliver(this.webhookUrl, { id, ...alert }));
    });
    this.track(fresh);
    this.track(fresh, this.storing);
  }

  private track(p: Promise<void>, set = this.inflight): void {
    const tracked = p.finally(() => set.delete(tracked));
    set.add(tracked);
  }

  private async deliver(url: string, alert: BudgetAlert & { id: string }): Promise<void> {
    const body = JSON.stringify({ type: alert.kind, ...alert });
    for (let attempt = 0; attempt < 6; attempt++) {
      try {
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (this.secret) {
          // Signed at each try, with the time of the try: a receiver can refuse an old replay.
          const timestamp = String(Math.floor(Date.now() / 1000));
          const mac = createHmac('sha256', this.secret).update(`${timestamp}.${body}`).digest('hex');
          headers['x-tally-timestamp'] = timestamp;
          headers['x-tally-signature'] = `sha256=${mac}`;
        }
        const res = await request(url, {
          method: 'POST',
          headers,
          body,
          headersTimeout: 10_000,
          bodyTimeout: 10_000,
        });
        await res.body.dump();
        if (res.statusCode >= 200 && res.statusCode < 300) return;
      } catch {
        // Retried below.
      }
      if (attempt < 5) await new Promise((r) => setTimeout(r, this.baseDelayMs * 2 ** attempt).unref());
    }
    this.log.error({ alert, url }, 'budget alert webhook failed after retries');
  }

  /** Waits for the alerts emitted so far to be stored. */
  async stored(): Promise<void> {
    await Promise.all([...this.storing]);
  }

  /** Waits for deliveries under way (tests, shutdown), or until `ms` have passed: a webhook that
   * does not answer does not hold a shutdown past it. */
  async drain(ms = Number.POSITIVE_INFINITY): Promise<void> {
    await this.stored();
    const all = Promise.all([...this.inflight]);
    if (!Number.isFinite(ms)) {
      await all;
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all, new Promise((r) => (timer = setTimeout(r, ms).unref()))]);
    clearTimeout(timer);
  }
}
