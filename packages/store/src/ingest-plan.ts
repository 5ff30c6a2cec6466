import type { CallRecord, TaskEventRecord } from '@tally/core';
import type { IngestBatch, WriteResult } from './store.js';

/** The rows of several batches written in one transaction (a group commit), each (tenant, id)
 * once, with the batch that brought it first. */
export interface IngestPlan {
  readonly batches: readonly IngestBatch[];
  readonly calls: CallRecord[];
  readonly callOwners: number[];
  readonly tasks: TaskEventRecord[];
  readonly taskOwners: number[];
}

/** A row's identity. The length prefix keeps it unambiguous whatever characters a tenant holds. */
export const rowKey = (tenant: string, id: string): string => `${tenant.length}:${tenant}${id}`;

export function batchRows(b: IngestBatch): number {
  return b.calls.length + b.tasks.length;
}

/** Drops repeated (tenant, id) pairs; the first occurrence wins, in batch order. Calls and task
 * events are separate tables, so an id may appear once in each. */
export function planIngest(batches: readonly IngestBatch[]): IngestPlan {
  const plan: IngestPlan = { batches, calls: [], callOwners: [], tasks: [], taskOwners: [] };
  const seenCalls = new Set<string>();
  const seenTasks = new Set<string>();
  batches.forEach((b, owner) => {
    for (const c of b.calls) {
      const k = rowKey(c.tenant, c.id);
      if (seenCalls.has(k)) continue;
      seenCalls.add(k);
      plan.calls.push(c);
      plan.callOwners.push(owner);
    }
    for (const t of b.tasks) {
      const k = rowKey(t.tenant, t.id);
      if (seenTasks.has(k)) continue;
      seenTasks.add(k);
      plan.tasks.push(t);
      plan.taskOwners.push(owner);
    }
  });
  return plan;
}

/** The plan without the rows already stored (keys made by rowKey). */
export function withoutStored(
  plan: IngestPlan,
  storedCalls: Set<string>,
  storedTasks: Set<string>,
): IngestPlan {
  const out: IngestPlan = { batches: plan.batches, calls: [], callOwners: [], tasks: [], taskOwners: [] };
  plan.calls.forEach((c, i) => {
    if (storedCalls.has(rowKey(c.tenant, c.id))) return;
    out.calls.push(c);
    out.callOwners.push(plan.callOwners[i]!);
  });
  plan.tasks.forEach((t, i) => {
    if (storedTasks.has(rowKey(t.tenant, t.id))) return;
    out.tasks.push(t);
    out.taskOwners.push(plan.taskOwners[i]!);
  });
  return out;
}

/** Each batch's result once every row of the plan has been inserted: the rest were repeats. */
export function planResults(plan: IngestPlan): WriteResult[] {
  const inserted = plan.batches.map(() => 0);
  for (const owner of plan.callOwners) inserted[owner]!++;
  for (const owner of plan.taskOwners) inserted[owner]!++;
  return plan.batches.map((b, i) => writeResult(batchRows(b), inserted[i]!));
}

/** The result of a batch of `rows` rows of which `inserted` were new. */
export function writeResult(rows: number, inserted: number): WriteResult {
  return { inserted, duplicates: rows - inserted };
}
