import { createRequire } from 'node:module';

type Dist = (x: number, a: number, b?: number) => number;

/** @stdlib's distributions, loaded on first use: a few hundred small modules (about 140 ms to
 * import on their own, and 2-3 MB of the server's idle RSS) that a gateway, or a server not yet
 * asked for a statistic, does not need. */
let loaded: Record<'chisquareCdf' | 'normalCdf' | 'normalQuantile' | 'tCdf' | 'tQuantile', Dist> | null =
  null;

function dists() {
  if (!loaded) {
    const require = createRequire(import.meta.url);
    loaded = {
      chisquareCdf: require('@stdlib/stats-base-dists-chisquare-cdf'),
      normalCdf: require('@stdlib/stats-base-dists-normal-cdf'),
      normalQuantile: require('@stdlib/stats-base-dists-normal-quantile'),
      tCdf: require('@stdlib/stats-base-dists-t-cdf'),
      tQuantile: require('@stdlib/stats-base-dists-t-quantile'),
    };
  }
  return loaded;
}

/** The distributions the tests need, from @stdlib: standard normal, Student t (fractional df
 * allowed, as Welch's test needs) and chi-square. */
export const phi = (x: number): number => dists().normalCdf(x, 0, 1);
export const phiInv = (p: number): number => dists().normalQuantile(p, 0, 1);
export const studentCdf = (x: number, df: number): number => dists().tCdf(x, df);
export const studentQuantile = (p: number, df: number): number => dists().tQuantile(p, df);
/** P(X > x) for X ~ chi-square(df). */
export const chiSquareSurvival = (x: number, df: number): number => 1 - dists().chisquareCdf(x, df);
