/**
 * Holdout assignment: a unit (a task, a user, an account) falls in the holdout when the hash of
 * its use case's salt and its id lands below the holdout share. The same function runs in the
 * server (POST /v1/assign) and here, so an app can assign locally, with no network call, and get the
 * server's answer.
 *
 * Because the hash of a unit never changes, raising the share from 10 % to 20 % moves only the
 * units between 0.10 and 0.20 into the holdout, and lowering it moves only those back: every
 * other unit keeps its arm.
 */
export type Arm = 'ai' | 'holdout';

export interface AssignmentConfig {
  /** The use case's salt: a new salt re-randomises every unit. */
  salt: string;
  /** The fraction of units kept without AI, from 0 to 1. */
  holdout_share: number;
}

const encoder = new TextEncoder();

/** A number in [0, 1) from the salt and the unit id: FNV-1a over their UTF-8 bytes, then
 * MurmurHash3's finaliser, whose avalanche spreads ids that differ in a single character. Changing
 * this function would reshuffle every running holdout: it is pinned by golden values in the tests. */
export function unitBucket(salt: string, unitId: string): number {
  const bytes = encoder.encode(`${salt}\u0000${unitId}`);
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 4294967296;
}

export function assignArm(config: AssignmentConfig, unitId: string): Arm {
  const share = config.holdout_share;
  if (!(share >= 0 && share <= 1)) throw new RangeError('holdout_share must be between 0 and 1');
  return unitBucket(config.salt, unitId) < share ? 'holdout' : 'ai';
}
