import { type Clock, type Scorecard, type SimCompany, simulateCompany } from '@tally/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCompany } from './testing/company.js';
import { type TestApp, testApp } from './testing/test-app.js';

const END = Date.parse('2026-11-30T00:00:00Z');
const clock: Clock = { now: () => END };

type Metric = Scorecard['buckets']['outcomes'][number];
const metric = (s: Scorecard, key: string): Metric =>
  Object.values(s.buckets)
    .flat()
    .find((m) => m.key === key)!;

describe('the scorecard on a simulated company', () => {
  let t: TestApp;
  let company: SimCompany;
  const cards = new Map<string, Scorecard>();

  beforeAll(async () => {
    t = await testApp({}, clock);
    company = simulateCompany({ seed: 11, end: END, weeks: 8 });
    await loadCompany(t, company);
    for (const uc of company.useCases) {
      const res = await t.app.inject({ url: `/v1/use-cases/${uc.register.id}/scorecard`, headers: t.auth });
      expect(res.statusCode, res.body).toBe(200);
      cards.set(uc.register.id, res.json());
    }
  }, 120_000);
  afterAll(async () => {
    await t?.shutdown();
  });

  it('support triage: the 23 % cut in handling time is recovered, grade A', () => {
    const s = cards.get('support-triage')!;
    const h = metric(s, 'handling_seconds');
    const lift = h.comparison!.lift!;
    expect(lift.method).toBe('cuped');
    expect(lift.ci[0]).toBeLessThan(-0.23);
    expect(lift.ci[1]).toBeGreaterThan(-0.23);
    expect(lift.ci[1]).toBeLessThan(0);
    expect(h.status).toBe('good');
    expect(s.evidence.grade).toBe('A');
    expect(s.srm).toMatchObject({ passed: true });
    expect(s.roi.status).toBe('ok');
    expect(s.roi.method).toBe('holdout_lift');
    expect(s.roi.ci![0]).toBeLessThan(s.roi.roi!);
  });

  it('every number follows its definition, checked against the simulated tasks', () => {
    const s = cards.get('support-triage')!;
    const tasks = company.tasks.filter((x) => x.useCase === 'support-triage');
    const ai = tasks.filter((x) => x.arm === 'ai');
    const hold = tasks.filter((x) => x.arm === 'holdout');
    expect(metric(s, 'adoption').value).toBeCloseTo(ai.filter((x) => x.aiUsed).length / ai.length, 12);
    expect(metric(s, 'success_rate').value).toBeCloseTo(ai.filter((x) => x.success).length / ai.length, 12);
    const meanOf = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const h = metric(s, 'handling_seconds');
    expect(h.value).toBeCloseTo(meanOf(ai.map((x) => x.handling)), 6);
    expect(h.comparison!.holdout).toBeCloseTo(meanOf(hold.map((x) => x.handling)), 6);
    // All-in cost = LLM spend + prorated ledger + human seconds × $45 an hour.
    const events = company.events.filter((e) => e['use_case'] === 'support-triage');
    const seconds = events
      .filter((e) => e['type'] === 'task.human')
      .reduce((a, e) => a + (e['seconds'] as number), 0);
    const human = (45 * seconds) / 3600;
    expect(Number(s.cost.human_usd)).toBeCloseTo(human, 6);
    expect(Number(s.cost.all_in_usd)).toBeCloseTo(
      Number(s.cost.llm_usd) + Number(s.cost.ledger_usd) + Number(s.cost.human_usd),
      6,
    );
    // The ledger: $850 a month, over the 27 days of October and 29 of November in the period.
    expect(Number(s.cost.ledger_usd)).toBeCloseTo((850 * 27) / 31 + (850 * 29) / 30, 6);
    const successes = ai.filter((x) => x.success).length;
    expect(Number(metric(s, 'cost_per_outcome').value)).toBeCloseTo(Number(s.cost.all_in_usd) / successes, 6);
  });

  it('ROI is (benefit − all-in cost) / all-in cost, a month, with the benefit from the measured lifts', () => {
    const s = cards.get('support-triage')!;
    const ai = company.tasks.filter((x) => x.useCase === 'support-triage' && x.arm === 'ai');
    const factor = 30.4375 / 56;
    const handling = metric(s, 'handling_seconds').comparison!.lift!;
    const success = metric(s, 'success_rate').comparison!.lift!;
    // Per AI task: the handling-time cut valued at the baseline cost per task, plus the success-rate
    // change valued at the unit value.
    const perTask = -handling.estimate * 3.1 + success.estimate * 4.2;
    const benefit = perTask * ai.length * factor;
    const cost = Number(s.cost.all_in_usd) * factor;
    expect(s.roi.monthlyBenefitUsd).toBeCloseTo(benefit, 6);
    expect(s.roi.monthlyCostUsd).toBeCloseTo(cost, 6);
    expect(s.roi.roi).toBeCloseTo((benefit - cost) / cost, 9);
    expect(s.roi.ci![0]).toBeLessThan(s.roi.roi!);
    expect(s.roi.ci![1]).toBeGreaterThan(s.roi.roi!);
  });

  it('stability, oversight, abandonment and opt-outs follow their definitions', () => {
    const s = cards.get('support-triage')!;
    const byTask = new Map<string, Record<string, unknown>[]>();
    for (const e of company.events) {
      if (e['use_case'] !== 'support-triage' || String(e['type']).startsWith('llm')) continue;
      const list = byTask.get(e['task_id'] as string) ?? [];
      list.push(e);
      byTask.set(e['task_id'] as string, list);
    }
    let completed = 0;
    let stable = 0;
    let abandoned = 0;
    let human = 0;
    let eligible = 0;
    let optOut = 0;
    for (const evs of byTask.values()) {
      if (evs.find((e) => e['type'] === 'task.eligible')?.['arm'] !== 'ai') continue;
      eligible++;
      if (evs.some((e) => e['type'] === 'task.opt_out')) optOut++;
      const done = evs.find((e) => e['type'] === 'task.completed');
      const humans = evs.filter((e) => e['type'] === 'task.human');
      human += humans.reduce((a, e) => a + (e['seconds'] as number), 0);
      if (!done) continue;
      completed++;
      if (done['outcome'] === 'abandoned') abandoned++;
      if (
        done['outcome'] === 'success' &&
        !humans.some((e) => ['edit', 'override', 'escalation'].includes(e['kind'] as string))
      )
        stable++;
    }
    expect(metric(s, 'stability_rate').value).toBeCloseTo(stable / completed, 12);
    expect(metric(s, 'abandonment').value).toBeCloseTo(abandoned / completed, 12);
    expect(metric(s, 'opt_out').value).toBeCloseTo(optOut / eligible, 12);
    // Human seconds on AI tasks over the baseline seconds those tasks represent (480 s each).
    expect(metric(s, 'oversight_ratio').value).toBeCloseTo(human / (completed * 480), 12);
  });

  it('the code-review assistant, which has no effect, is inconclusive', () => {
    const s = cards.get('code-review')!;
    const lift = metric(s, 'handling_seconds').comparison!.lift!;
    expect(lift.ci[0]).toBeLessThan(0);
    expect(lift.ci[1]).toBeGreaterThan(0);
    expect(s.evidence.grade).toBe('B');
    expect(s.evidence.reasons.join(' ')).toMatch(/inconclusive|underpowered/);
  });

  it('marketing copy: cost per outcome rises with volume; before/after only, grade C', () => {
    const s = cards.get('marketing-copy')!;
    const u = metric(s, 'unit_economics');
    expect(u.ci![0]).toBeGreaterThan(0);
    expect(u.status).toBe('bad');
    expect(s.evidence.grade).toBe('C');
    expect(s.roi.method).toBe('baseline_comparison');
  });

  it('sales email has no baseline: grade D, and the gate names what is missing', () => {
    const s = cards.get('sales-email')!;
    expect(s.evidence.grade).toBe('D');
    expect(s.roi.status).toBe('insufficient_data');
    expect(s.gate?.passed).toBe(false);
  });

  it('every metric has a status and the five buckets', () => {
    for (const s of cards.values()) {
      expect(Object.keys(s.buckets)).toEqual(['outcomes', 'adoption', 'quality', 'speed', 'cost']);
      for (const m of Object.values(s.buckets).flat()) {
        expect(['good', 'warn', 'bad', 'unknown']).toContain(m.status);
        expect(JSON.stringify(m)).not.toMatch(/NaN/);
      }
    }
  });

  it('before building, the opportunity model: volume × cost per task less the AI’s projected cost', async () => {
    const made = await t.app.inject({
      method: 'POST',
      url: '/v1/use-cases',
      headers: t.auth,
      payload: {
        id: 'invoice-coding',
        name: 'Invoice coding',
        baseline: {
          monthly_volume: 10000,
          cost_per_task_usd: '2.50',
          handling_seconds: 300,
          measured_at: '2026-09-01',
        },
        ai_estimate: { cost_per_task_usd: '0.40', fixed_monthly_usd: '1500' },
        smart: { task: 'Code supplier invoices to GL accounts', metric: 'minutes per invoice' },
      },
    });
    expect(made.statusCode).toBe(201);
    const s = (await t.app.inject({ url: '/v1/use-cases/invoice-coding/scorecard', headers: t.auth })).json();
    expect(s.opportunity).toMatchObject({
      monthly_usd: '19500',
      current_usd: '25000',
      projected_ai_usd: '5500',
      basis: 'estimate',
    });
    expect(s.opportunity.smart[0]).toMatchObject({
      check: 'smart',
      passed: false,
      detail: 'missing: baseline, target, time_box',
    });
    expect(s.evidence.grade).toBe('C');
  });

  it('answers a bad period with a code', async () => {
    const res = await t.app.inject({
      url: '/v1/use-cases/support-triage/scorecard?from=2026-11-30T00:00:00Z&to=2026-11-01T00:00:00Z',
      headers: t.auth,
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('invalid_query');
  });

  it('the audit flags each bad case, with its evidence and a fix', async () => {
    // A chatbot that answers yes/no to the same prompt: calls flow, no outcomes are reported.
    await t.app.inject({
      method: 'POST',
      url: '/v1/use-cases',
      headers: t.auth,
      payload: { id: 'faq-bot', name: 'FAQ bot' },
    });
    const calls = Array.from({ length: 60 }, (_, i) => ({
      id: `faq-${i}`,
      type: 'llm.call',
      time: new Date(END - 86_400_000 - i * 60_000).toISOString(),
      project: 'faq',
      use_case: 'faq-bot',
      provider: 'openai',
      api: 'openai-chat',
      model: 'gpt-4o-mini',
      usage: { prompt_tokens: 812, completion_tokens: 1 },
    }));
    expect(
      (
        await t.app.inject({ method: 'POST', url: '/v1/events', headers: t.auth, payload: { events: calls } })
      ).json().accepted,
    ).toBe(60);
    await t.app.inject({
      method: 'POST',
      url: '/v1/use-cases/marketing-copy/stage',
      headers: t.auth,
      payload: { to: 'readiness', force: true, reason: 'test' },
    });
    await t.app.inject({
      method: 'POST',
      url: '/v1/budgets',
      headers: t.auth,
      payload: { scope: 'project', subject: 'support-triage', limit_usd: '5000' },
    });

    const res = await t.app.inject({ url: '/v1/audit', headers: t.auth });
    expect(res.statusCode).toBe(200);
    const findings = res.json().findings as {
      flag: string;
      severity: string;
      subject: { use_case?: string; project?: string };
      evidence: { numbers: object; query: string };
      fix: string;
    }[];
    const has = (flag: string, subject: string) =>
      findings.some(
        (f) => f.flag === flag && (f.subject.use_case ?? f.subject.project ?? '').includes(subject),
      );
    expect(has('no_baseline', 'sales-email')).toBe(true);
    expect(has('no_adoption_owner', 'sales-email')).toBe(true);
    expect(has('benefits_counted_twice', 'marketing-copy')).toBe(true);
    expect(has('benefits_counted_twice', 'sales-email')).toBe(true);
    expect(has('cost_per_outcome_rising', 'marketing-copy')).toBe(true);
    expect(has('bloated_context', 'marketing-copy')).toBe(true);
    expect(has('roi_before_data_readiness', 'marketing-copy')).toBe(true);
    expect(has('hidden_costs_missing', 'marketing-copy')).toBe(true);
    expect(has('success_counted_as_shipping', 'faq-bot')).toBe(true);
    expect(has('rule_would_do', 'faq-bot')).toBe(true);
    expect(has('no_budget', 'code-review')).toBe(true);
    // What is fine is not flagged.
    expect(has('no_budget', 'support-triage')).toBe(false);
    expect(findings.filter((f) => f.subject.use_case === 'support-triage').map((f) => f.flag)).toEqual([]);
    for (const f of findings) {
      expect(['high', 'medium', 'low']).toContain(f.severity);
      expect(f.evidence.query.length).toBeGreaterThan(10);
      expect(Object.keys(f.evidence.numbers).length).toBeGreaterThan(0);
      expect(f.fix.length).toBeGreaterThan(10);
    }
    const shared = findings.find((f) => f.flag === 'benefits_counted_twice')!;
    const claimed = company.tasks.filter((x) => x.useCase === 'sales-email').length;
    expect((shared.evidence.numbers as { tasks: number }).tasks).toBe(claimed);
    const only = (await t.app.inject({ url: '/v1/audit?use_case=faq-bot', headers: t.auth })).json().findings;
    expect(only.every((f: { subject: { use_case?: string } }) => f.subject.use_case === 'faq-bot')).toBe(
      true,
    );
  });

  it('renders the executive one-pager as html with inline SVG charts, and as markdown', async () => {
    const html = await t.app.inject({
      url: '/v1/use-cases/support-triage/report?format=html',
      headers: t.auth,
    });
    expect(html.statusCode).toBe(200);
    expect(html.headers['content-type']).toMatch(/text\/html/);
    const page = html.body;
    expect(page).toMatch(/^<!doctype html>/);
    expect(page.match(/<svg /g)?.length).toBeGreaterThanOrEqual(3);
    expect(page).toMatch(/evidence grade <b>A<\/b>/);
    expect(page).toMatch(/ROI -?\d+% a month \(95% CI/);
    expect(page).toMatch(/<h2>Red flags<\/h2>/);
    expect(page).toMatch(/<h2>Next steps<\/h2>/);
    expect(page).not.toMatch(/<script/);
    const md = await t.app.inject({ url: '/v1/use-cases/marketing-copy/report?format=md', headers: t.auth });
    expect(md.body).toMatch(/^# Marketing copy generation/);
    expect(md.body).toMatch(/\| Cost \| Unit economics .*\| bad \|/);
    expect(md.body).toMatch(/\*\*high\*\* marketing-copy's cost per outcome rises with volume/);
    const bad = await t.app.inject({
      url: '/v1/use-cases/support-triage/report?format=pdf',
      headers: t.auth,
    });
    expect(bad.json().error.code).toBe('invalid_query');
  });
});
