export * from './clock.js';
export * from './errors.js';
export * from './events/parse-event.js';
export * from './events/wire.js';
export * from './model.js';
export * from './money.js';
export * from './periods.js';
export * from './pricing/index.js';
