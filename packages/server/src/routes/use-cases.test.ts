import { assignArm } from '@tally/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestApp, testApp } from '../testing/test-app.js';

describe('the use-case register', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await testApp();
  });
  afterAll(async () => {
    await t?.shutdown();
  });

  const call = (method: 'GET' | 'POST' | 'PATCH', url: string, payload?: unknown) =>
    t.app.inject({
      method,
      url,
      headers: t.auth,
      ...(payload === undefined ? {} : { payload: payload as object }),
    });
  const stage = (id: string, body: object) => call('POST', `/v1/use-cases/${id}/stage`, body);

  it('creates, reads, lists and updates a use case; bad fields are named', async () => {
    const made = await call('POST', '/v1/use-cases', {
      id: 'triage',
      name: 'Support triage',
      department: 'Customer support',
      holdout_share: 0.2,
      unit_value_usd: '4.20',
    });
    expect(made.statusCode).toBe(201);
    expect(made.json()).toMatchObject({
      id: 'triage',
      stage: 'idea',
      holdout: { share: 0.2, salt: expect.any(String) },
      unit_value_usd: '4.20',
      owners: { product: null, finance: null, data: null },
      history: [],
    });
    expect((await call('POST', '/v1/use-cases', { id: 'triage', name: 'again' })).json().error.code).toBe(
      'already_exists',
    );
    const bad = await call('POST', '/v1/use-cases', {
      name: 'x',
      holdout_share: 0.9,
      unit_value_usd: 12,
      colour: 'red',
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe('invalid_request');
    expect(bad.json().error.message).toMatch(/holdout_share/);
    expect(bad.json().error.message).toMatch(/unit_value_usd/);
    expect(bad.json().error.message).toMatch(/colour/);

    const patched = await call('PATCH', '/v1/use-cases/triage', {
      owners: { product: { name: 'Ana' } },
      baseline: { monthly_volume: 12000, cost_per_task_usd: '3.10' },
    });
    expect(patched.statusCode).toBe(200);
    expect(patched.json().owners).toEqual({ product: { name: 'Ana' }, finance: null, data: null });
    // Nested fields merge: a later patch keeps what an earlier one set.
    const again = await call('PATCH', '/v1/use-cases/triage', { baseline: { handling_seconds: 480 } });
    expect(again.json().baseline).toMatchObject({
      monthly_volume: 12000,
      cost_per_task_usd: '3.10',
      handling_seconds: 480,
    });
    expect((await call('GET', '/v1/use-cases/triage')).json().name).toBe('Support triage');
    expect((await call('GET', '/v1/use-cases')).json().data.map((u: { id: string }) => u.id)).toEqual([
      'triage',
    ]);
    expect((await call('GET', '/v1/use-cases/nope')).statusCode).toBe(404);
  });

  it('checks each stage gate, says why it fails, and keeps the history', async () => {
    const toReadiness = await stage('triage', { to: 'readiness' });
    expect(toReadiness.statusCode).toBe(409);
    expect(toReadiness.json().error).toMatchObject({ code: 'gate_failed' });
    expect(toReadiness.json().error.message).toMatch(
      /smart \(missing: task, metric, baseline, target, time_box\)/,
    );

    await call('PATCH', '/v1/use-cases/triage', {
      smart: {
        task: 'Route inbound tickets to the right queue',
        metric: 'handling time',
        baseline: '8 minutes',
        target: '6 minutes',
        time_box: 'Q1 2027',
      },
    });
    const ok = await stage('triage', { to: 'readiness', reason: 'card complete' });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ stage: 'readiness', gate: { passed: true } });

    // Skipping a stage is refused, even forced.
    const skip = await stage('triage', { to: 'production', force: true, reason: 'hurry' });
    expect(skip.statusCode).toBe(409);
    expect(skip.json().error.message).toMatch(/one_stage_at_a_time/);

    const gate = (await call('GET', '/v1/use-cases/triage/gate')).json();
    expect(gate).toMatchObject({ from: 'readiness', to: 'pilot', passed: false });
    expect(gate.checks.map((c: { check: string; passed: boolean }) => [c.check, c.passed])).toEqual([
      ['baseline', false],
      ['owners', false],
      ['data_readiness', false],
    ]);
    expect(gate.checks[1].detail).toBe('no finance, data owner');

    await call('PATCH', '/v1/use-cases/triage', {
      owners: { finance: { name: 'Bo' }, data: { name: 'Cy' } },
      baseline: { measured_at: '2026-10-01' },
      data_readiness: [
        { item: 'ticket history exported', done: true },
        { item: 'PII redaction reviewed', done: false },
      ],
    });
    const stillOpen = await stage('triage', { to: 'pilot' });
    expect(stillOpen.json().error.message).toMatch(/data_readiness \(open: PII redaction reviewed\)/);

    // An admin may force a failed gate, with a reason; the history records it as forced.
    const noReason = await stage('triage', { to: 'pilot', force: true });
    expect(noReason.json().error.code).toBe('invalid_request');
    const forced = await stage('triage', {
      to: 'pilot',
      force: true,
      reason: 'redaction signed off on paper',
    });
    expect(forced.statusCode).toBe(200);
    // Pilot → production needs evidence: with a baseline and no holdout data yet, the grade is C.
    const prod = await stage('triage', { to: 'production' });
    expect(prod.json().error.message).toMatch(/evidence_grade \(grade C \(A or B needed\)\)/);
    // Going back needs no gate.
    expect((await stage('triage', { to: 'readiness', reason: 'data issue' })).statusCode).toBe(200);

    const history = (await call('GET', '/v1/use-cases/triage')).json().history;
    expect(
      history.map((h: { from: string; to: string; forced: boolean }) => [h.from, h.to, h.forced]),
    ).toEqual([
      ['idea', 'readiness', false],
      ['readiness', 'pilot', true],
      ['pilot', 'readiness', false],
    ]);
    expect(history[1]).toMatchObject({ reason: 'redaction signed off on paper', by: 'config-admin' });
    expect(history[1].checks.find((c: { check: string }) => c.check === 'data_readiness').passed).toBe(false);
  });

  it('assigns units as the SDK does locally, and a share change moves only the units between the shares', async () => {
    const uc = (await call('GET', '/v1/use-cases/triage')).json();
    const ids = Array.from({ length: 400 }, (_, i) => `T-${i}`);
    const res = await call('POST', '/v1/assign', { use_case: 'triage', unit_ids: ids });
    expect(res.statusCode).toBe(200);
    const arms = res.json().assignments.map((a: { arm: string }) => a.arm);
    expect(arms).toEqual(ids.map((id) => assignArm({ salt: uc.holdout.salt, holdout_share: 0.2 }, id)));
    const one = await call('POST', '/v1/assign', { use_case: 'triage', unit_id: 'T-7' });
    expect(one.json()).toMatchObject({ unit_id: 'T-7', arm: arms[7], holdout_share: 0.2 });

    await call('PATCH', '/v1/use-cases/triage', { holdout_share: 0.3 });
    const after = (await call('POST', '/v1/assign', { use_case: 'triage', unit_ids: ids })).json()
      .assignments;
    for (let i = 0; i < ids.length; i++) {
      const b = after[i].bucket as number;
      if (arms[i] === 'holdout') expect(after[i].arm).toBe('holdout');
      expect(after[i].arm !== arms[i]).toBe(b >= 0.2 && b < 0.3);
    }
    expect((await call('POST', '/v1/assign', { use_case: 'triage' })).json().error.code).toBe(
      'invalid_request',
    );
    expect((await call('POST', '/v1/assign', { use_case: 'nope', unit_id: 'x' })).statusCode).toBe(404);
  });

  it('keeps a hidden-cost ledger and prices human review from task.human seconds', async () => {
    await call('PATCH', '/v1/use-cases/triage', { reviewer_hourly_usd: '60' });
    const entry = {
      id: 'led-1',
      use_case: 'triage',
      month: '2026-11',
      category: 'infrastructure',
      amount_usd: '1200.50',
    };
    expect((await call('POST', '/v1/ledger', entry)).statusCode).toBe(201);
    // The same id again is a duplicate, stored once.
    const dup = await call('POST', '/v1/ledger', { ...entry, amount_usd: '9' });
    expect(dup.json()).toMatchObject({ duplicate: true });
    await call('POST', '/v1/ledger', {
      use_case: 'triage',
      month: '2026-11',
      category: 'licences',
      amount_usd: '99.99',
    });
    const bad = await call('POST', '/v1/ledger', {
      use_case: 'triage',
      month: '2026-13',
      category: 'snacks',
      amount_usd: '-1',
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toMatch(/month.*category.*amount_usd/s);
    expect((await call('POST', '/v1/ledger', { ...entry, id: 'x', use_case: 'nope' })).statusCode).toBe(404);

    const ev = (id: string, time: string, seconds: number) => ({
      id,
      type: 'task.human',
      time,
      use_case: 'triage',
      task_id: id,
      kind: 'review',
      seconds,
    });
    const sent = await call('POST', '/v1/events', {
      events: [
        ev('h1', '2026-11-03T10:00:00Z', 90),
        ev('h2', '2026-11-04T10:00:00Z', 30.5),
        ev('h3', '2026-12-01T00:00:00Z', 60),
      ],
    });
    expect(sent.json().accepted).toBe(3);
    const ledger = (await call('GET', '/v1/ledger?use_case=triage')).json();
    expect(ledger.data).toHaveLength(2);
    expect(ledger.months).toEqual([
      {
        use_case: 'triage',
        month: '2026-11',
        // 120.5 s at $60 an hour = $2.008333333 (rounded down to the nano-dollar).
        by_category: { infrastructure: '1200.5', licences: '99.99', human_review_time: '2.008333333' },
        total_usd: '1302.498333333',
      },
      { use_case: 'triage', month: '2026-12', by_category: { human_review_time: '1' }, total_usd: '1' },
    ]);
  });

  it('needs an admin key to change the register', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/v1/use-cases', payload: { name: 'x' } });
    expect(res.statusCode).toBe(401);
  });
});
