export * from './build/build-catalog.js';
export { type CompiledPrices, type CostBreakdown, calcCost, compilePrices, type UnitUsage } from './calc.js';
export * from './catalog.js';
export * from './catalog-types.js';
export { extractUsage, KNOWN_APIS } from './extract.js';
export { matches } from './match.js';
export * from './tokens.js';
export * from './types.js';
