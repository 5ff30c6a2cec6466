/** How long to wait after the `tries`-th failure in a row: `baseMs` doubling, up to `capMs`. */
export function backoffMs(tries: number, baseMs = 1000, capMs = 60_000): number {
  return Math.min(capMs, baseMs * 2 ** (tries - 1));
}
