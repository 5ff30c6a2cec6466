import { formatScaled, parseScaled } from '../money.js';
import type { Price, PriceSet } from './catalog-types.js';
import { UNIT_BY_PRICE_KEY } from './units.js';

/** Prices are decimal strings of at most 24 decimals (per million tokens): exact at this scale. */
const SCALE = 24;
type Ratio = readonly [num: bigint, den: bigint];

const baseOf = (p: Price): string => (typeof p === 'string' ? p : p.base);

/** to / from, of the base (first) tier of each; null when either is absent or from is 0. */
function ratio(to: Price | undefined, from: Price | undefined): Ratio | null {
  if (to === undefined || from === undefined) return null;
  const den = parseScaled(baseOf(from), SCALE);
  return den === 0n ? null : [parseScaled(baseOf(to), SCALE), den];
}

function scaleDecimal(p: string, [num, den]: Ratio): string {
  // Rounded half up at 1e-24 USD per million tokens: far below a nano-dollar on any call.
  return formatScaled((parseScaled(p, SCALE) * num + den / 2n) / den, SCALE);
}

function scale(p: Price, r: Ratio): Price {
  if (typeof p === 'string') return scaleDecimal(p, r);
  return {
    base: scaleDecimal(p.base, r),
    tiers: p.tiers.map((t) => ({ start: t.start, price: scaleDecimal(t.price, r) })),
  };
}

/** A function of two price sets (and a third that the second implies), cached on the two: the same
 * sets give the same object, so that it is compiled once (calc.ts caches compiled prices by object). */
type OnSets = (a: PriceSet, b: PriceSet, c?: PriceSet) => PriceSet;
function cachedOnSets(fn: OnSets): OnSets {
  const cache = new WeakMap<PriceSet, WeakMap<PriceSet, PriceSet>>();
  return (a, b, c) => {
    let byB = cache.get(a);
    if (!byB) {
      byB = new WeakMap();
      cache.set(a, byB);
    }
    let out = byB.get(b);
    if (!out) {
      out = fn(a, b, c);
      byB.set(b, out);
    }
    return out;
  };
}

/**
 * The prices of a call at a variant of the standard ones (batch, a service tier, a tenant's own
 * prices), where the variant may give only some prices, and only flat ones:
 * - a flat variant price for a tiered standard one is the base tier's, and the higher tiers follow
 *   in the same ratio (a batch call above 200K input tokens pays the long-context rate, discounted);
 * - a price the variant does not give follows the standard one in the ratio of the variant's
 *   input price (input side: cache reads and writes, audio) or output price (output side); on a
 *   side whose own price the variant does not give, the standard prices stand;
 * - per-request and per-search fees stay as they are.
 */
export const applyVariant = cachedOnSets((standard, variant) => {
  const bySide = {
    input: ratio(variant.input_mtok, standard.input_mtok),
    output: ratio(variant.output_mtok, standard.output_mtok),
  };
  const out: PriceSet = {};
  for (const key of new Set([...Object.keys(standard), ...Object.keys(variant)]) as Set<keyof PriceSet>) {
    const v = variant[key];
    const s = standard[key];
    if (v !== undefined) {
      const r = typeof v === 'string' && s !== undefined && typeof s !== 'string' ? ratio(v, s) : null;
      out[key] = r ? scale(s!, r) : v;
      continue;
    }
    const side = UNIT_BY_PRICE_KEY.get(key)?.direction;
    const r = side ? bySide[side] : null;
    out[key] = r ? scale(s!, r) : s!;
  }
  return out;
});

/** A tenant's own standard prices (`own`) for a call at a variant of the list (`variant`, which
 * applyVariant gave from `standard`: batch, a service tier): each price moves as the list's does,
 * in the ratio of their base tiers, so that a negotiated rate keeps its distance from list. */
export const followVariant = cachedOnSets(
  (own: PriceSet, variant: PriceSet, standard: PriceSet = {}): PriceSet => {
    const out: PriceSet = {};
    for (const key of Object.keys(own) as (keyof PriceSet)[]) {
      const r = ratio(variant[key], standard[key]);
      out[key] = r ? scale(own[key]!, r) : own[key]!;
    }
    return out;
  },
);

const byFactor = new WeakMap<PriceSet, Map<string, PriceSet>>();

/** `prices` with every token price (its tiers too) times `factor`, a decimal string: a pricing
 * mode's (PriceModes). Per-request and per-search fees stay. The same set and factor give the same
 * object, so that it is compiled once. */
export function scaleTokenPrices(prices: PriceSet, factor: string): PriceSet {
  let cached = byFactor.get(prices);
  if (!cached) {
    cached = new Map();
    byFactor.set(prices, cached);
  }
  let out = cached.get(factor);
  if (!out) {
    const r: Ratio = [parseScaled(factor, SCALE), 10n ** BigInt(SCALE)];
    out = {};
    for (const key of Object.keys(prices) as (keyof PriceSet)[]) {
      const p = prices[key]!;
      out[key] = UNIT_BY_PRICE_KEY.get(key)?.direction ? scale(p, r) : p;
    }
    cached.set(factor, out);
  }
  return out;
}

/** The product of decimal factors, as a decimal string. */
export function multiplyFactors(a: string, b: string): string {
  return formatScaled((parseScaled(a, SCALE) * parseScaled(b, SCALE)) / 10n ** BigInt(SCALE), SCALE);
}
