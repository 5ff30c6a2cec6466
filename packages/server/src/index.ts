export { type BuildAppOptions, buildApp, type TallyApp } from './app.js';
export { Authenticator, generateKey, hashKey, type Principal, type Role } from './auth.js';
export { loadCompanyIntoStore } from './company-loader.js';
export { configSchema, type PriceOverrideConfig, priceOverrideSchema, type TallyConfig } from './config.js';
export type { AppContext } from './context.js';
export { toTallyError } from './errors.js';
export { buildReplica, ControlClient, type GatewayReplica, type ReplicaOptions } from './replica.js';
export { SecretBox } from './secrets.js';
