import { formatScaled, parseScaled } from '../../money.js';
import {
  type CatalogModel,
  type CatalogProvider,
  type Price,
  type PriceSet,
  SERVICE_TIERS,
  type TieredPrice,
} from '../catalog-types.js';
import { UNIT_BY_PRICE_KEY } from '../units.js';
import { isZeroPrice } from './common.js';
import type { SecondaryPrice } from './secondary.js';

const SCALE = 24;
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
const baseOf = (p: Price | undefined) => (p === undefined || typeof p === 'string' ? p : p.base);

/**
 * What LiteLLM says of one genai-prices model, where it says it clearly: the entry named as the
 * model's id, else every entry the model's match takes in for the same provider when they agree.
 * A value they disagree on is left out rather than guessed.
 */
export function agreed<T>(
  model: CatalogModel,
  entries: SecondaryPrice[],
  read: (s: SecondaryPrice) => T | undefined,
): T | undefined {
  const named = entries.find((s) => s.model === model.id.toLowerCase());
  let value: T | undefined;
  for (const s of named ? [named] : entries) {
    const v = read(s);
    if (v === undefined) continue;
    if (value !== undefined && !same(value, v)) return undefined;
    value = v;
  }
  return value;
}

/** `p`'s tiers at the ratio of `from`'s tiers to its base: a long-context tier the tables give for
 * input only, carried over to another input-side price (Anthropic's 1 hour cache writes). */
function tiersLike(p: string, from: TieredPrice): TieredPrice | null {
  const base = parseScaled(from.base, SCALE);
  if (base === 0n) return null;
  const v = parseScaled(p, SCALE);
  return {
    base: p,
    tiers: from.tiers.map((t) => ({
      start: t.start,
      price: formatScaled((v * parseScaled(t.price, SCALE) + base / 2n) / base, SCALE),
    })),
  };
}

/**
 * Fills a genai-prices model's token prices from LiteLLM where genai-prices lacks them, never
 * changing a price it gives, and only in a price set whose input (or output) price LiteLLM gives
 * too, for the prices of that side:
 * - a price it has no field for (the audio rates of gpt-4o-audio-preview);
 * - the long-context tiers of a flat price whose base LiteLLM agrees with (claude-sonnet-4-0 above
 *   200K), for a model whose prices do not change over time (a dated list is genai-prices' own
 *   account of when tiers came and went). Its other prices on that side without tiers of their own
 *   then take the same ratio.
 * - the prices of the priority and flex service tiers, where LiteLLM's standard input price is the
 *   model's current one.
 * Fees (per request, per search) and zero prices are not filled: a missing fee is no gap.
 */
export function fillFromLiteLlm(model: CatalogModel, entries: SecondaryPrice[]): void {
  // The pricing modes' factors apply to whatever prices the model has: taken where LiteLLM's
  // entries for it agree.
  if (!model.modes) {
    const modes = agreed(model, entries, (s) => s.modes);
    if (modes) model.modes = modes;
  }
  const sets = priceSetsOf(model);
  const dated = Array.isArray(model.prices);
  const main = {
    input: agreed(model, entries, (s) => s.prices.input_mtok),
    output: agreed(model, entries, (s) => s.prices.output_mtok),
  };
  for (const set of sets) {
    let tiered = false;
    for (const [key, unit] of UNIT_BY_PRICE_KEY) {
      const k = key as keyof PriceSet;
      // Only where LiteLLM's input (or output) price is this set's: else it speaks of other prices
      // (another period of a dated list, another version).
      const side = unit.direction === null ? undefined : main[unit.direction];
      if (side === undefined || baseOf(side) !== baseOf(set[`${unit.direction!}_mtok`])) continue;
      const v = agreed(model, entries, (s) => s.prices[k]);
      if (v === undefined || isZeroPrice(v)) continue;
      const own = set[k];
      if (own === undefined) {
        set[k] = v;
      } else if (!dated && typeof own === 'string' && typeof v !== 'string' && v.base === own) {
        set[k] = v;
        tiered = true;
      }
    }
    if (tiered) carryTiers(set);
  }
  // Service tiers are priced against today's standard prices: LiteLLM's must be the last set's.
  const last = sets[sets.length - 1]!;
  if (baseOf(main.input) === undefined || baseOf(main.input) !== baseOf(last.input_mtok)) return;
  const tiers = { ...model.service_tiers };
  for (const tier of SERVICE_TIERS) {
    const v = tiers[tier] ?? agreed(model, entries, (s) => s.service_tiers?.[tier]);
    if (v) tiers[tier] = v;
  }
  if (Object.keys(tiers).length > 0) model.service_tiers = tiers;
}

/** The hosted tools' per-call fees that fillToolFees takes from Portkey. */
const TOOL_FEES = ['web_searches_kcount', 'storage_searches_kcount'] as const;

/**
 * Fills the per-call fees of hosted tools (OpenAI's web search and file search) that a
 * genai-prices model lacks from Portkey, which quotes them for each model. Only in a price set
 * whose input and output prices Portkey's entries for the model agree with, so that the fee is
 * that model's as it is priced: a model only named alike, or another period of a dated list,
 * takes none. A fee genai-prices gives stands.
 */
export function fillToolFees(model: CatalogModel, entries: SecondaryPrice[]): void {
  const input = agreed(model, entries, (s) => s.prices.input_mtok);
  const output = agreed(model, entries, (s) => s.prices.output_mtok);
  if (input === undefined || output === undefined) return;
  for (const set of priceSetsOf(model)) {
    if (
      !samePrice(baseOf(input), baseOf(set.input_mtok)) ||
      !samePrice(baseOf(output), baseOf(set.output_mtok))
    )
      continue;
    for (const k of TOOL_FEES) {
      if (set[k] !== undefined) continue;
      const fee = agreed(model, entries, (s) => s.prices[k]);
      if (fee !== undefined && !isZeroPrice(fee)) set[k] = fee;
    }
  }
}

/** A provider's fee for a code container session (litellmContainerFees) in each of its models'
 * price sets that has none: the session is billed whichever model runs it. */
export function fillContainerFee(provider: CatalogProvider, kcount: string): void {
  for (const model of provider.models) {
    for (const set of priceSetsOf(model)) set.code_containers_kcount ??= kcount;
  }
}

/** Each price set of a model: its one, or each period's of a dated list. */
const priceSetsOf = (model: CatalogModel): PriceSet[] =>
  Array.isArray(model.prices) ? model.prices.map((c) => c.prices) : [model.prices];

/** Two decimal prices that are the same number ('2.5' and '2.50'). */
const samePrice = (a: string | undefined, b: string | undefined) =>
  a !== undefined && b !== undefined && parseScaled(a, SCALE) === parseScaled(b, SCALE);

/** Each flat token price takes the tiers of its side's main price (input_mtok or output_mtok). */
function carryTiers(set: PriceSet): void {
  for (const [key, unit] of UNIT_BY_PRICE_KEY) {
    const k = key as keyof PriceSet;
    const own = set[k];
    const main =
      unit.direction === 'input' ? set.input_mtok : unit.direction === 'output' ? set.output_mtok : undefined;
    if (typeof own !== 'string' || main === undefined || typeof main === 'string') continue;
    const t = tiersLike(own, main);
    if (t) set[k] = t;
  }
}
