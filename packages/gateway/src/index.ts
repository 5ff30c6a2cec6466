export { uuidv7 } from './ids.js';
export { ENDPOINT_API, type Endpoint, priceProviderOf } from './providers.js';
export { Gateway } from './proxy.js';
export { errorBody, type GatewayError, sendError, type Wire } from './replies.js';
export { type Attempt, Router } from './router.js';
export { BatchingSink, type BatchingSinkOptions } from './sink.js';
export { SseSplitter } from './sse.js';
export { countTokens, estimatePromptTokens } from './tokenizer.js';
export * from './types.js';
