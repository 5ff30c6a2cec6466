export * from './distributions.js';
export * from './intervals.js';
export * from './lift.js';
export * from './moments.js';
export * from './power.js';
export * from './srm.js';
