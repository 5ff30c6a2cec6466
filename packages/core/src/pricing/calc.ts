import { TallyError } from '../errors.js';
import { parseScaled, type Rate, rateFrom } from '../money.js';
import type { Price, PriceSet } from './catalog-types.js';
import { dimCount, isAncestorOrSelf, UNIT_BY_PRICE_KEY, type Unit } from './units.js';

/** Usage in the catalog's unit keys (input_tokens, cache_read_tokens, ...). Every count includes its
 * sub-categories: input_tokens counts cache reads, output_tokens counts reasoning. */
export type UnitUsage = Record<string, number>;

interface CompiledUnit {
  unit: Unit;
  /** Rate per unit, ×1e24 USD. */
  flat: Rate | null;
  /** Tiers by total input tokens, ascending: the whole count pays the highest tier passed. */
  tiers: { start: number; rate: Rate }[] | null;
  /** Indices (into the compiled list) of priced strict descendants. */
  descendants: number[];
}

export interface CompiledPrices {
  units: CompiledUnit[];
  tiered: boolean;
  hasRequests: boolean;
}

export interface CostBreakdown {
  input: bigint;
  output: bigint;
  total: bigint;
}

const cache = new WeakMap<PriceSet, CompiledPrices>();

function compilePrice(p: Price, per: number): Pick<CompiledUnit, 'flat' | 'tiers'> {
  if (typeof p === 'string') return { flat: rateFrom(p, per), tiers: null };
  const tiers = p.tiers
    .map((t) => ({ start: t.start, rate: rateFrom(t.price, per) }))
    .sort((a, b) => a.start - b.start);
  return { flat: rateFrom(p.base, per), tiers };
}

/** Prepares a price set once: rates as bigint, units ordered most specific first, and each unit's
 * priced descendants, so that pricing a call is a few integer operations. */
export function compilePrices(ps: PriceSet): CompiledPrices {
  const hit = cache.get(ps);
  if (hit) return hit;
  const list: CompiledUnit[] = [];
  for (const key in ps) {
    const price = ps[key as keyof PriceSet];
    const unit = UNIT_BY_PRICE_KEY.get(key);
    if (price === undefined || !unit) continue;
    list.push({ unit, ...compilePrice(price, unit.per), descendants: [] });
  }
  list.sort((a, b) => dimCount(b.unit) - dimCount(a.unit) || (a.unit.usageKey < b.unit.usageKey ? -1 : 1));
  for (let i = 0; i < list.length; i++) {
    for (let j = 0; j < list.length; j++) {
      if (i !== j && isAncestorOrSelf(list[i]!.unit, list[j]!.unit)) list[i]!.descendants.push(j);
    }
  }
  const compiled: CompiledPrices = {
    units: list,
    tiered: list.some((u) => u.tiers !== null),
    hasRequests: list.some((u) => u.unit.usageKey === 'requests'),
  };
  cache.set(ps, compiled);
  return compiled;
}

function times(rate: Rate, count: number): bigint {
  if (count === 0) return 0n;
  if (Number.isInteger(count)) return rate * BigInt(count);
  return (rate * parseScaled(count, 9)) / 1_000_000_000n;
}

/** calcCost's counts by unit, reused from call to call (it runs to the end before another starts):
 * a unit's descendants come before it, so each count read was written in the same call. */
let scratch = new Float64Array(64);

/**
 * Prices usage: each priced unit is charged for its exclusive count (its usage minus what its priced
 * descendants already took), so an unpriced sub-category is charged at its nearest priced
 * ancestor's rate and nothing is counted twice.
 */
export function calcCost(cp: CompiledPrices, usage: UnitUsage): CostBreakdown {
  const n = cp.units.length;
  if (scratch.length < n) scratch = new Float64Array(n * 2);
  const leaf = scratch;
  const tierBy = cp.tiered ? (usage['input_tokens'] ?? 0) : 0;
  let input = 0n;
  let output = 0n;
  let total = 0n;
  for (let i = 0; i < n; i++) {
    const u = cp.units[i]!;
    let count: number;
    if (u.unit.usageKey === 'requests') {
      count = 1;
    } else {
      count = usage[u.unit.usageKey] ?? 0;
      for (const j of u.descendants) count -= leaf[j]!;
      if (count < 0) {
        const parts = u.descendants.map((j) => cp.units[j]!.unit.usageKey).join(' + ');
        throw new TallyError(
          'invalid_usage',
          `Invalid usage: ${parts} exceed ${u.unit.usageKey} (${usage[u.unit.usageKey] ?? 0}).`,
        );
      }
    }
    leaf[i] = count;
    let rate = u.flat!;
    if (u.tiers) for (const t of u.tiers) if (tierBy > t.start) rate = t.rate;
    const cost = times(rate, count);
    total += cost;
    if (u.unit.direction === 'input') input += cost;
    else if (u.unit.direction === 'output') output += cost;
  }
  return { input, output, total };
}
