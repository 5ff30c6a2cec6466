import {
  auditFindings,
  buildScorecard,
  type EvidenceOptions,
  type Finding,
  prorateLedger,
  type Scorecard,
  TallyError,
} from '@tally/core';
import type { Store, UseCaseRecord } from '@tally/store';
import { specOf } from './use-case-schema.js';

const DAY = 86_400_000;
/** Without from/to, a scorecard covers the last eight weeks. */
export const DEFAULT_DAYS = 56;

export interface Period {
  from: number;
  to: number;
}

export function defaultPeriod(now: number): Period {
  return { from: now - DEFAULT_DAYS * DAY, to: now };
}

/** The scorecard of one use case: sums from the store, the ledger prorated over the period, then
 * the metric definitions of core. */
export async function scorecardFor(
  store: Store,
  rec: UseCaseRecord,
  period: Period,
  now: number,
  options: EvidenceOptions = {},
): Promise<Scorecard> {
  if (!(period.to > period.from)) throw new TallyError('invalid_query', 'from must be before to.');
  const [sums, ledger] = await Promise.all([
    store.outcomeSums(rec.tenant, rec.id, period.from, period.to),
    store.listLedger(rec.tenant, rec.id),
  ]);
  const l = prorateLedger(ledger, period.from, period.to);
  return buildScorecard({
    useCase: rec.id,
    stage: rec.stage,
    spec: specOf(rec),
    stats: {
      ...sums,
      ledgerNano: l.total,
      ledgerByCategory: l.byCategory,
      days: (period.to - period.from) / DAY,
    },
    now,
    options,
  });
}

/** Every red flag across the tenant's use cases, for the period. */
export async function auditTenant(
  store: Store,
  tenant: string,
  period: Period,
  now: number,
): Promise<Finding[]> {
  const [sums, useCases, budgets, ledger] = await Promise.all([
    store.auditSums(tenant, period.from, period.to),
    store.listUseCases(tenant),
    store.listBudgets(tenant),
    store.listLedger(tenant),
  ]);
  const entries = new Map<string, number>();
  for (const e of ledger) entries.set(e.use_case, (entries.get(e.use_case) ?? 0) + 1);
  const cards = await Promise.all(useCases.map((rec) => scorecardFor(store, rec, period, now)));
  return auditFindings({
    sums,
    useCases: useCases.map((rec, i) => ({
      id: rec.id,
      stage: rec.stage,
      spec: specOf(rec),
      scorecard: cards[i]!,
      ledgerEntries: entries.get(rec.id) ?? 0,
    })),
    budgets: budgets.map((b) => ({ scope: b.scope, subject: b.subject })),
  });
}
