import { ZERO_TOKENS } from '@tally/core';
import { expect, it } from 'vitest';
import type { ContractContext } from '../contract.js';
import { DAY, makeCall, makeTask, newTenant, T0 } from './fixtures.js';

/** The scorecard's sums: they follow late events, corrections and calls that arrive after their
 * task, and a resent batch changes nothing. */
export function outcomeCases(ctx: ContractContext): void {
  const from = T0 - DAY;
  const to = T0 + 30 * DAY;
  const ev = (tenant: string, id: string, over: Parameters<typeof makeTask>[2]) =>
    makeTask(tenant, id, { outcome: null, handling_seconds: null, value_nano: null, ...over });

  it('sums arms, outcomes and human time per task; late and corrected events count once', async () => {
    const tenant = newTenant();
    const s = ctx.store;
    const first = [
      ev(tenant, 'e1', { type: 'task.eligible', task_id: 'A', arm: 'ai', covariate: 300, time: T0 }),
      ev(tenant, 'e2', { type: 'task.eligible', task_id: 'B', arm: 'holdout', covariate: 500, time: T0 }),
      ev(tenant, 'e3', {
        type: 'task.completed',
        task_id: 'A',
        outcome: 'failure',
        handling_seconds: 200,
        time: T0 + 1000,
      }),
      ev(tenant, 'e4', {
        type: 'task.completed',
        task_id: 'B',
        outcome: 'success',
        handling_seconds: 400,
        value_nano: 4_200_000_000n,
        time: T0 + 1000,
      }),
      ev(tenant, 'e5', { type: 'task.human', task_id: 'A', kind: 'edit', seconds: 45, time: T0 + 500 }),
    ];
    await s.ingest({ calls: [], tasks: first });
    let o = await s.outcomeSums(tenant, 'triage', from, to);
    expect(o.arms.ai).toMatchObject({ eligible: 1, aiUsed: 0, completed: 1, successes: 0, failures: 1 });
    expect(o.arms.holdout).toMatchObject({
      eligible: 1,
      completed: 1,
      successes: 1,
      valueNano: 4_200_000_000n,
    });
    expect(o.arms.ai.humanSeconds.edit).toBe(45);

    // Later: a call for task A (AI used), a corrected outcome, QA, and the first batch again.
    await s.ingest({ calls: [makeCall(tenant, 'c1', { task_id: 'A', time: T0 + 2000 })], tasks: [] });
    await s.ingest({
      calls: [],
      tasks: [
        ev(tenant, 'e6', {
          type: 'task.completed',
          task_id: 'A',
          outcome: 'success',
          handling_seconds: 180,
          value_nano: 4_200_000_000n,
          time: T0 + 5000,
        }),
        ev(tenant, 'e7', { type: 'task.quality', task_id: 'A', pass: true, reviewer: 'qa', time: T0 + 6000 }),
        ev(tenant, 'e8', { type: 'task.opt_out', task_id: 'C', reason: 'not trusted', time: T0 + 7000 }),
      ],
    });
    expect(await s.ingest({ calls: [], tasks: first })).toMatchObject({ inserted: 0, duplicates: 5 });
    o = await s.outcomeSums(tenant, 'triage', from, to);
    expect(o.arms.ai).toMatchObject({
      eligible: 1,
      aiUsed: 1,
      completed: 1,
      successes: 1,
      failures: 0,
      stableSuccesses: 0, // the edit is an intervention
      completedWithoutHuman: 0,
      qaSamples: 1,
      qaPasses: 1,
    });
    expect(o.arms.ai.handling).toEqual({ n: 1, sum: 180, sumSquares: 180 * 180 });
    expect(o.arms.ai.handlingCuped).toMatchObject({ n: 1, covariateSum: 300, crossProductSum: 180 * 300 });
    // A task with no eligible event has no arm.
    expect(o.unassigned).toMatchObject({ eligible: 1, optOuts: 1 });
    expect(o.optOutReasons).toEqual([{ reason: 'not trusted', count: 1 }]);
    expect(o.calls).toMatchObject({ calls: 1, withTask: 1, spendNano: 3_000_000n });
    // Percentiles come from 1 % log buckets: within half a percent.
    expect(Math.abs(o.calls.latency.p50! / 850 - 1)).toBeLessThanOrEqual(0.005);
    expect(o.weeks.find((w) => w.spendNano > 0n)?.latencyMs).toBe(850);
    // Outside the period: nothing.
    const before = await s.outcomeSums(tenant, 'triage', T0 - 10 * DAY, T0 - DAY);
    expect(before.arms.ai.eligible + before.arms.holdout.eligible).toBe(0);
  });

  it('groups completed AI tasks by week, and counts repeat users', async () => {
    const tenant = newTenant();
    // Repeat use counts the last four weeks of the period: u-1 is active in two of them, u-2 in one.
    const tasks = [0, 3, 8, 9, 15].map((d, i) =>
      ev(tenant, `w${i}`, {
        type: 'task.eligible',
        task_id: `W${i}`,
        arm: 'ai',
        user: i < 4 ? 'u-1' : 'u-2',
        time: T0 + d * DAY,
      }),
    );
    const done = tasks.map((t, i) =>
      ev(tenant, `d${i}`, {
        type: 'task.completed',
        task_id: t.task_id,
        outcome: 'success',
        handling_seconds: 60,
        time: t.time + 1000,
      }),
    );
    const used = tasks.map((t, i) =>
      ev(tenant, `u${i}`, { type: 'task.ai_used', task_id: t.task_id, user: t.user, time: t.time + 10 }),
    );
    await ctx.store.ingest({ calls: [], tasks: [...tasks, ...done, ...used] });
    const o = await ctx.store.outcomeSums(tenant, 'triage', from, to);
    expect(o.weeks.map((w) => w.aiCompleted).reduce((a, b) => a + b, 0)).toBe(5);
    expect(o.weeks.length).toBeGreaterThanOrEqual(3);
    expect(o.users).toEqual({ active: 2, repeat: 1 });
  });

  it('refreshRollups clears what ingest marked, and a read after it sees the same sums', async () => {
    const tenant = newTenant();
    await ctx.store.ingest({
      calls: [],
      tasks: [ev(tenant, 'r1', { type: 'task.eligible', task_id: 'R', arm: 'ai', time: T0 })],
    });
    expect(await ctx.store.refreshRollups()).toBeGreaterThan(0);
    expect(await ctx.store.refreshRollups()).toBe(0);
    const o = await ctx.store.outcomeSums(tenant, 'triage', from, to);
    expect(o.arms.ai.eligible).toBe(1);
  });

  it('marks a task AI-used from metered calls appended later, and not from calls with no task', async () => {
    const tenant = newTenant();
    const s = ctx.store;
    await s.ingest({
      calls: [],
      tasks: [
        ev(tenant, 'm1', { type: 'task.eligible', task_id: 'M', arm: 'ai', time: T0 }),
        ev(tenant, 'm2', { type: 'task.eligible', task_id: 'N', arm: 'ai', time: T0 }),
      ],
    });
    // A gateway batch with no task ids: nothing changes.
    await s.appendCalls([makeCall(tenant, 'g0', { use_case: null, task_id: null, time: T0 + 1000 })]);
    expect((await s.outcomeSums(tenant, 'triage', from, to)).arms.ai).toMatchObject({
      eligible: 2,
      aiUsed: 0,
    });
    // One that carries task M marks it, and only it.
    await s.appendCalls([
      makeCall(tenant, 'g1', { task_id: 'M', time: T0 + 2000 }),
      makeCall(tenant, 'g2', { use_case: null, task_id: null, time: T0 + 2000 }),
    ]);
    expect((await s.outcomeSums(tenant, 'triage', from, to)).arms.ai).toMatchObject({
      eligible: 2,
      aiUsed: 1,
    });
    // A call the gateway refused for task N went nowhere: N did not use AI, and the use case's
    // calls, errors and latency leave it out, as the audit does.
    const refused = makeCall(tenant, 'g3', {
      task_id: 'N',
      time: T0 + 3000,
      status: 'refused',
      error_type: 'budget_exceeded',
      latency_ms: null,
      cost_list_nano: 0n,
      cost_effective_nano: 0n,
    });
    await s.appendCalls([refused]);
    const o = await s.outcomeSums(tenant, 'triage', from, to);
    expect(o.arms.ai).toMatchObject({ eligible: 2, aiUsed: 1 });
    expect(o.calls).toMatchObject({ calls: 1, errors: 0, withTask: 1 });
    // A call that failed upstream is a call made, but not an answer of 3 tokens or fewer.
    await s.appendCalls([
      makeCall(tenant, 'g4', {
        task_id: 'M',
        time: T0 + 4000,
        status: 'error',
        error_type: 'upstream_500',
        tokens: { ...ZERO_TOKENS },
        cost_list_nano: 0n,
        cost_effective_nano: 0n,
      }),
    ]);
    const audit = await s.auditSums(tenant, from, to);
    expect(audit.calls.find((c) => c.useCase === 'triage')).toMatchObject({ calls: 2, tinyOutputs: 0 });
    expect((await s.spend({ tenant, groupBy: 'use_case' })).find((r) => r.group === 'triage')).toMatchObject({
      calls: 2,
      refused_calls: 1,
    });
  });
}
