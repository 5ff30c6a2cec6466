import type { Stage } from '@tally/core';
import {
  type CallRecord,
  type Pricer,
  parseEvent,
  type SimCompany,
  type TaskEventRecord,
  usdToNano,
} from '@tally/core';
import type { Store } from '@tally/store';
import { applyFields, createSchema, emptySpec } from './use-case-schema.js';

/**
 * Writes a simulated company straight into a store (the demo, the benchmarks): its register, its
 * ledger and its events, parsed and priced exactly as POST /v1/events would.
 */
export async function loadCompanyIntoStore(
  store: Store,
  company: SimCompany,
  opts: { tenant: string; price: Pricer; now: number; batch?: number },
): Promise<{ useCases: number; calls: number; tasks: number }> {
  for (const uc of company.useCases) {
    const { stage, ...register } = uc.register;
    const fields = createSchema.parse(register);
    await store.putUseCase({
      tenant: opts.tenant,
      id: uc.register.id,
      name: fields.name,
      department: fields.department ?? null,
      stage: stage as Stage,
      spec: applyFields(emptySpec(), fields) as unknown as Record<string, unknown>,
      created_at: opts.now,
      updated_at: opts.now,
    });
    for (const [i, e] of uc.ledger.entries()) {
      await store.addLedgerEntry({
        tenant: opts.tenant,
        id: `${uc.register.id}-${e.month}-${i}`,
        use_case: uc.register.id,
        month: e.month,
        category: e.category as never,
        amount_nano: usdToNano(e.amount_usd),
        note: null,
        created_at: opts.now,
      });
    }
  }
  let calls: CallRecord[] = [];
  let tasks: TaskEventRecord[] = [];
  let nCalls = 0;
  let nTasks = 0;
  const flush = async () => {
    if (calls.length + tasks.length === 0) return;
    await store.ingest({ calls, tasks });
    nCalls += calls.length;
    nTasks += tasks.length;
    calls = [];
    tasks = [];
  };
  const ctx = { tenant: opts.tenant, price: opts.price };
  for (const raw of company.events) {
    const p = parseEvent(raw, ctx);
    if (p.kind === 'call') calls.push(p.record);
    else tasks.push(p.record);
    if (calls.length + tasks.length >= (opts.batch ?? 10_000)) await flush();
  }
  await flush();
  return { useCases: company.useCases.length, calls: nCalls, tasks: nTasks };
}
