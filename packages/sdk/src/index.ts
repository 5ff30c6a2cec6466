/** The Tally SDK: task events, holdout assignment and the gateway's attribution headers. */
export const SDK_VERSION = '0.1.0';
export { type Arm, type AssignmentConfig, assignArm, unitBucket } from './assign.js';
export { type SendStats, Tally, TallyError, type TallyOptions, type TaskEvent } from './client.js';
export { type Attribution, gatewayHeaders, openAIOptions, type Routing } from './headers.js';
