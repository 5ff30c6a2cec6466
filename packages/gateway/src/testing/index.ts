/** Test support for the gateway and the server: a mock upstream, recordings, fixtures. */
export * from './anthropic-fixtures.js';
export { mockSpeech } from './audio-fixtures.js';
export * from './mock-upstream.js';
export * from './ports.js';
export { REALTIME_USAGE } from './realtime-fixtures.js';
export * from './recorded.js';
