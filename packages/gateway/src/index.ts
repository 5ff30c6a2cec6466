export { backoffMs } from './backoff.js';
export { exhaustedOnce } from './budget-guard.js';
export { uuidv7 } from './ids.js';
export * from './policy.js';
export { ENDPOINT_API, type Endpoint, priceProviderOf } from './providers.js';
export { Gateway } from './proxy.js';
export { RealtimeSessions } from './realtime.js';
export { errorBody, errorCodeOf, type GatewayError, sendError, type Wire } from './replies.js';
export { type Attempt, Router } from './router.js';
export {
  BatchingSink,
  type BatchingSinkOptions,
  ChunkPartlyWritten,
  RecordChunk,
  recordSink,
  type SinkChunk,
} from './sink.js';
export { ChunkSpool, type SpoolCodec, type SpoolOptions } from './spool.js';
export { SseSplitter } from './sse.js';
export { MemoryState } from './state/memory-state.js';
export { RedisState } from './state/redis-state.js';
export * from './state/shared-state.js';
export { countTokens, estimatePromptTokens, warmTokenizer } from './tokenizer.js';
export * from './types.js';
