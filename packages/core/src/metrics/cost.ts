import { usdToNano } from '../money.js';
import type { ArmOutcomes, UseCaseStats } from './inputs.js';

const DAY = 86_400_000;

/** Ledger entries are monthly; a period covers part of some months, so each entry counts for the
 * share of its month's days that fall in the period. */
export function prorateLedger(
  entries: readonly { month: string; category: string; amount_nano: bigint }[],
  from: number,
  to: number,
): { total: bigint; byCategory: Record<string, bigint> } {
  const byCategory: Record<string, bigint> = {};
  let total = 0n;
  for (const e of entries) {
    const [y, m] = e.month.split('-').map(Number) as [number, number];
    const start = Date.UTC(y, m - 1, 1);
    const end = Date.UTC(y, m, 1);
    const overlap = Math.max(0, Math.min(end, to) - Math.max(start, from));
    if (overlap === 0) continue;
    // In whole milliseconds over the month's: exact in bigint.
    const share = (e.amount_nano * BigInt(overlap)) / BigInt(end - start);
    byCategory[e.category] = (byCategory[e.category] ?? 0n) + share;
    total += share;
  }
  return { total, byCategory };
}

export function humanSeconds(a: ArmOutcomes): number {
  const h = a.humanSeconds;
  return h.review + h.edit + h.override + h.escalation;
}

/** Field by field sums of two records of counts (nested records included). */
function addCounts<T>(x: T, y: T): T {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(x as object)) {
    const a = (x as Record<string, unknown>)[k];
    const b = (y as Record<string, unknown>)[k];
    out[k] =
      typeof a === 'number' ? a + (b as number) : typeof a === 'bigint' ? a + (b as bigint) : addCounts(a, b);
  }
  return out as T;
}

/** The AI side of the use case: the AI arm, and tasks that were never assigned an arm. */
export function aiSide(s: UseCaseStats): ArmOutcomes {
  return addCounts(s.arms.ai, s.unassigned);
}

export interface AllInCost {
  /** LLM spend attributed to the use case. */
  llmNano: bigint;
  /** The hidden-cost ledger for the period. */
  ledgerNano: bigint;
  /** Human seconds on AI tasks × the reviewer's hourly cost. */
  humanNano: bigint;
  totalNano: bigint;
  /** Calls the catalog could not price: their cost is missing from llmNano. */
  unpricedCalls: number;
}

/** All-in AI cost = LLM spend + the ledger for the period + human seconds × hourly cost. */
export function allInCost(s: UseCaseStats, reviewerHourlyUsd: string | null): AllInCost {
  const seconds = humanSeconds(aiSide(s));
  const perHour = reviewerHourlyUsd ? usdToNano(reviewerHourlyUsd) : 0n;
  const humanNano = (perHour * BigInt(Math.round(seconds * 1000))) / 3_600_000n;
  return {
    llmNano: s.calls.spendNano,
    ledgerNano: s.ledgerNano,
    humanNano,
    totalNano: s.calls.spendNano + s.ledgerNano + humanNano,
    unpricedCalls: s.calls.unpriced,
  };
}

/** Divides nano-USD by a count, to the nano-dollar; null for no count. */
export function per(nano: bigint, count: number): bigint | null {
  return count > 0 ? nano / BigInt(count) : null;
}

/** Days in the period, and the factor that turns a period amount into a monthly one. */
export function monthly(s: { from: number; to: number }): { days: number; factor: number } {
  const days = (s.to - s.from) / DAY;
  return { days, factor: days > 0 ? 30.4375 / days : 0 };
}
