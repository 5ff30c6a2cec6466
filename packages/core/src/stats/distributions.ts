import chisquareCdf from '@stdlib/stats-base-dists-chisquare-cdf';
import normalCdf from '@stdlib/stats-base-dists-normal-cdf';
import normalQuantile from '@stdlib/stats-base-dists-normal-quantile';
import tCdf from '@stdlib/stats-base-dists-t-cdf';
import tQuantile from '@stdlib/stats-base-dists-t-quantile';

/** The distributions the tests need, from @stdlib: standard normal, Student t (fractional df
 * allowed, as Welch's test needs) and chi-square. */
export const phi = (x: number): number => normalCdf(x, 0, 1);
export const phiInv = (p: number): number => normalQuantile(p, 0, 1);
export const studentCdf = (x: number, df: number): number => tCdf(x, df);
export const studentQuantile = (p: number, df: number): number => tQuantile(p, df);
/** P(X > x) for X ~ chi-square(df). */
export const chiSquareSurvival = (x: number, df: number): number => 1 - chisquareCdf(x, df);
