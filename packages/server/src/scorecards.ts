import {
  auditFindings,
  buildScorecard,
  type EvidenceOptions,
  type Finding,
  prorateLedger,
  type Scorecard,
  TallyError,
} from '@tally/core';
import type { LedgerEntry, Store, UseCaseRecord } from '@tally/store';
import { parseTimeParam } from './serialize.js';
import { specOf } from './use-case-schema.js';

const DAY = 86_400_000;
/** Without from/to, a scorecard covers the last eight weeks. */
const DEFAULT_DAYS = 56;

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
  /** The use case's ledger, when the caller has read it already. */
  ledgerEntries?: LedgerEntry[],
): Promise<Scorecard> {
  const [sums, ledger] = await Promise.all([
    store.outcomeSums(rec.tenant, rec.id, period.from, period.to),
    ledgerEntries ?? store.listLedger(rec.tenant, rec.id),
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

/** Every red flag across the tenant's use cases, for the period, and the scorecards they were
 * judged on (by use case id). */
export async function auditTenant(
  store: Store,
  tenant: string,
  period: Period,
  now: number,
): Promise<{ findings: Finding[]; cards: Map<string, Scorecard> }> {
  const [sums, useCases, budgets, ledger] = await Promise.all([
    store.auditSums(tenant, period.from, period.to),
    store.listUseCases(tenant),
    store.listBudgets(tenant),
    store.listLedger(tenant),
  ]);
  const ledgerOf = new Map<string, LedgerEntry[]>();
  for (const e of ledger) ledgerOf.set(e.use_case, [...(ledgerOf.get(e.use_case) ?? []), e]);
  const cards = await Promise.all(
    useCases.map((rec) => scorecardFor(store, rec, period, now, {}, ledgerOf.get(rec.id) ?? [])),
  );
  const findings = auditFindings({
    sums,
    useCases: useCases.map((rec, i) => ({
      id: rec.id,
      stage: rec.stage,
      spec: specOf(rec),
      scorecard: cards[i]!,
      ledgerEntries: ledgerOf.get(rec.id)?.length ?? 0,
    })),
    budgets: budgets.map((b) => ({ scope: b.scope, subject: b.subject })),
  });
  return { findings, cards: new Map(useCases.map((rec, i) => [rec.id, cards[i]!])) };
}

/** A period from the query's from and to (RFC 3339 or epoch ms), the last eight weeks by default. */
export function periodParam(q: Record<string, unknown>, now: number): Period {
  const def = defaultPeriod(now);
  const from = parseTimeParam('from', q['from']) ?? def.from;
  const to = parseTimeParam('to', q['to']) ?? def.to;
  if (!(to > from)) throw new TallyError('invalid_query', 'from must be before to.');
  return { from, to };
}
