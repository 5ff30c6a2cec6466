import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Catalog, type CatalogOptions } from '../pricing/catalog.js';
import type { CatalogData } from '../pricing/catalog-types.js';
import type { Priced, PriceInput } from '../pricing/types.js';

/** Test helpers only (not exported from the package). */
export const CATALOG_PATH = fileURLToPath(new URL('../../catalog/catalog.json', import.meta.url));
let cached: CatalogData | null = null;

export function catalogData(): CatalogData {
  cached ??= JSON.parse(readFileSync(CATALOG_PATH, 'utf8')) as CatalogData;
  return cached;
}

export function testCatalog(opts: CatalogOptions = {}): Catalog {
  return new Catalog(catalogData(), opts);
}

/** A call's price, where a test expects it priced: an unpriced call fails with the reason. */
export function pricedBy(catalog: Catalog, input: PriceInput): Priced {
  const r = catalog.price(input);
  if (r.status !== 'priced') throw new Error(r.reason);
  return r;
}

/** The public data beside the repository (../shared/data). CI always has it; a bare clone may not. */
export const SHARED_DATA = fileURLToPath(new URL('../../../../../shared/data', import.meta.url));
export const HAS_SHARED_DATA = existsSync(SHARED_DATA);
/** Skip data-driven tests only outside CI when the data is absent; in CI its absence is a failure. */
export const SKIP_WITHOUT_SHARED = !HAS_SHARED_DATA && !process.env['CI'];
