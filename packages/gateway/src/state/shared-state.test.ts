import { randomUUID } from 'node:crypto';
import { runSharedStateContract } from './contract.js';
import { MemoryState } from './memory-state.js';
import { RedisState } from './redis-state.js';

runSharedStateContract('in-process', () => new MemoryState());
// The machine's real Redis; a fresh prefix keeps runs apart.
runSharedStateContract(
  'redis',
  () => new RedisState('redis://127.0.0.1:6379', `tally-test:${randomUUID()}:`),
);
