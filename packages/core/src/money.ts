/**
 * Money is never a float. Three integer scales are used:
 * - a *rate* is USD per unit (token, request, search) scaled by 1e24, so that any price quoted
 *   per million tokens with up to 18 decimals stays exact;
 * - an *exact amount* is USD scaled by 1e24 (tokens × rate, summed with bigint);
 * - a stored *cost* is integer nano-USD (1e-9), rounded once from the exact amount.
 */
export const RATE_SCALE_DIGITS = 24;
const RATE_SCALE = 10n ** BigInt(RATE_SCALE_DIGITS);
export const NANO_PER_USD = 1_000_000_000n;
const EXACT_PER_NANO = RATE_SCALE / NANO_PER_USD;

/** USD per unit, ×1e24. */
export type Rate = bigint;
/** USD, ×1e24. */
export type ExactUsd = bigint;
/** USD, ×1e9. */
export type NanoUsd = bigint;

const DECIMAL_RE = /^([+-])?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/** Parses a decimal string (or a JSON number, through its shortest round-trip text) into an integer
 * scaled by 10^scale. Throws on non-decimal input or on digits beyond the scale. */
export function parseScaled(value: string | number, scale: number): bigint {
  const text = typeof value === 'number' ? numberToText(value) : value.trim();
  const m = DECIMAL_RE.exec(text);
  if (!m || (m[2] === '' && (m[3] === undefined || m[3] === ''))) {
    throw new RangeError(`not a decimal number: ${JSON.stringify(value)}`);
  }
  const sign = m[1] === '-' ? -1n : 1n;
  const digits = (m[2] ?? '') + (m[3] ?? '');
  const exp = Number(m[4] ?? '0') - (m[3] ?? '').length + scale;
  let n = BigInt(digits === '' ? '0' : digits);
  if (exp >= 0) return sign * n * 10n ** BigInt(exp);
  const div = 10n ** BigInt(-exp);
  if (n % div !== 0n) {
    // Round half away from zero: only reached for prices quoted beyond 1e-24 USD.
    n = (n + div / 2n) / div;
  } else {
    n = n / div;
  }
  return sign * n;
}

function numberToText(n: number): string {
  if (!Number.isFinite(n)) throw new RangeError(`not a finite number: ${n}`);
  return String(n);
}

/** A price quoted in USD per `per` units (1 for per-token, 1e6 for per-million) as a per-unit rate. */
export function rateFrom(value: string | number, per = 1): Rate {
  const perDigits = Math.log10(per);
  if (!Number.isInteger(perDigits) || perDigits < 0)
    throw new RangeError(`per must be a power of ten: ${per}`);
  return parseScaled(value, RATE_SCALE_DIGITS - perDigits);
}

/** Formats an integer scaled by 10^scale as a plain decimal string, with no trailing zeros. */
export function formatScaled(n: bigint, scale: number): string {
  const neg = n < 0n;
  const abs = neg ? -n : n;
  const s = abs.toString().padStart(scale + 1, '0');
  const point = s.length - scale;
  // The fraction without its trailing zeros (a loop: a regular expression here was a third of the
  // cost, and this runs for the cost header of every call).
  let end = s.length;
  while (end > point && s.charCodeAt(end - 1) === 48) end--;
  const int = s.slice(0, point);
  return (neg ? '-' : '') + (end > point ? `${int}.${s.slice(point, end)}` : int);
}

export function exactToUsd(amount: ExactUsd): string {
  return formatScaled(amount, RATE_SCALE_DIGITS);
}

/** Rounds an exact amount to nano-USD, half away from zero. */
export function exactToNano(amount: ExactUsd): NanoUsd {
  return amount >= 0n ? (amount + HALF_NANO) / EXACT_PER_NANO : -((-amount + HALF_NANO) / EXACT_PER_NANO);
}

const HALF_NANO = EXACT_PER_NANO / 2n;

export function nanoToExact(nano: NanoUsd): ExactUsd {
  return nano * EXACT_PER_NANO;
}

export function nanoToUsd(nano: NanoUsd): string {
  return formatScaled(nano, 9);
}

/** Parses a USD decimal string (e.g. a billed cost) into nano-USD; more than 9 decimals are rounded. */
export function usdToNano(usd: string | number): NanoUsd {
  return parseScaled(usd, 9);
}

export function rateToString(rate: Rate, per = 1): string {
  return formatScaled(rate, RATE_SCALE_DIGITS - Math.log10(per));
}
