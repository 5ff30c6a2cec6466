import { describe, expect, it } from 'vitest';
import type { UseCaseSpec } from '../use-cases/register.js';
import { type AuditSums, auditFindings } from './audit.js';
import { emptyArm, type UseCaseStats, type WeekRow } from './inputs.js';
import { buildScorecard } from './scorecard.js';

const WEEK = 7 * 86_400_000;
const FROM = Date.UTC(2026, 9, 5); // a Monday
const TO = FROM + 8 * WEEK;

function spec(): UseCaseSpec {
  return {
    owners: { product: { name: 'Ana' }, finance: { name: 'Bo' }, data: { name: 'Cy' } },
    smart: { task: 't', metric: 'm', baseline: 'b', target: 't', time_box: 'q' },
    baseline: {
      monthly_volume: 1000,
      cost_per_task_usd: '3',
      handling_seconds: 300,
      error_rate: 0.1,
      measured_at: '2026-09-01',
    },
    data_readiness: [{ item: 'x', done: true }],
    success_criteria: {},
    holdout: { share: 0, salt: 's' },
    unit_value_usd: null,
    reviewer_hourly_usd: '60',
    history: [],
  };
}

/** Eight weeks in which stability falls and human time rises, week after week. */
function decaying(): UseCaseStats {
  const weeks: WeekRow[] = Array.from({ length: 8 }, (_, i) => ({
    week: FROM + i * WEEK,
    aiCompleted: 100,
    aiSuccesses: 95,
    stableSuccesses: 90 - i * 5,
    humanSeconds: 600 + i * 300,
    spendNano: 1_000_000_000n,
    qaSamples: 0,
    qaPasses: 0,
    latencyMs: 800,
  }));
  const ai = emptyArm();
  ai.eligible = 800;
  ai.aiUsed = 800;
  ai.completed = 800;
  ai.successes = 760;
  ai.stableSuccesses = weeks.reduce((a, w) => a + w.stableSuccesses, 0);
  ai.humanSeconds.edit = weeks.reduce((a, w) => a + w.humanSeconds, 0);
  return {
    from: FROM,
    to: TO,
    arms: { ai: emptyArm(), holdout: emptyArm() },
    unassigned: ai,
    calls: {
      calls: 900,
      errors: 0,
      spendNano: 8_000_000_000n,
      unpriced: 0,
      inputTokens: 900_000,
      outputTokens: 90_000,
      cacheReadTokens: 0,
      withTask: 900,
      latency: { p50: 800, p95: 1500, p99: 2000 },
      cacheHits: 0,
      savedNano: 0n,
    },
    weeks,
    optOutReasons: [],
    users: { active: 10, repeat: 8 },
    ledgerNano: 0n,
    ledgerByCategory: {},
    days: 56,
  };
}

const sums = (useCase: string): AuditSums => ({
  from: FROM,
  to: TO,
  calls: [
    {
      useCase,
      calls: 900,
      spendNano: 8_000_000_000n,
      tinyOutputs: 0,
      distinctInputSizes: 700,
      inputTokens: 900_000,
      outputTokens: 90_000,
    },
  ],
  outcomes: [{ useCase, completed: 800, recentQuality: 20 }],
  sharedTasks: [],
  projects: [],
  queries: {
    calls_by_use_case: 'SELECT …',
    outcomes_by_use_case: 'SELECT …',
    shared_tasks: 'SELECT …',
    spend_by_project: 'SELECT …',
  },
});

describe('the scorecard and the audit on hand-built sums', () => {
  it('a stability falling week after week is a bad trend and a red flag', () => {
    const card = buildScorecard({ useCase: 'uc', stage: 'pilot', spec: spec(), stats: decaying(), now: TO });
    const stability = card.buckets.outcomes.find((m) => m.key === 'stability_rate')!;
    expect(stability.trend?.direction).toBe('down');
    expect(stability.trend?.slope).toBeCloseTo(-0.05, 10);
    const oversight = card.buckets.quality.find((m) => m.key === 'oversight_ratio')!;
    expect(oversight.trend?.direction).toBe('up');
    expect(oversight.status).toBe('bad');
    const findings = auditFindings({
      sums: sums('uc'),
      useCases: [{ id: 'uc', stage: 'pilot', spec: spec(), scorecard: card, ledgerEntries: 3 }],
      budgets: [{ scope: 'tenant', subject: 'default' }],
    });
    expect(findings.map((f) => f.flag)).toEqual(['wrong_direction']);
    expect(findings[0]!.evidence.numbers['slope_per_week']).toBeCloseTo(-0.05, 10);
  });

  it('no holdout and a baseline: grade C, judged before/after', () => {
    const card = buildScorecard({ useCase: 'uc', stage: 'pilot', spec: spec(), stats: decaying(), now: TO });
    expect(card.evidence.grade).toBe('C');
    expect(card.roi.status).toBe('insufficient_data');
  });
});

describe('evidence on a small pilot', () => {
  it('is underpowered, grade B, and says how many more tasks would settle it', async () => {
    const { gradeEvidence } = await import('./evidence.js');
    const arm = (n: number, mean: number, sd: number) => {
      const a = emptyArm();
      a.eligible = n;
      a.completed = n;
      a.successes = Math.round(n * 0.9);
      a.success = { n, sum: a.successes, sumSquares: a.successes };
      a.handling = { n, sum: n * mean, sumSquares: (n - 1) * sd * sd + n * mean * mean };
      return a;
    };
    const stats = {
      ...decaying(),
      arms: { ai: arm(40, 280, 150), holdout: arm(40, 300, 150) },
      unassigned: emptyArm(),
    };
    const e = gradeEvidence(stats, { ...spec(), holdout: { share: 0.5, salt: 's' } });
    expect(e.grade).toBe('B');
    expect(e.reasons.join(' ')).toMatch(/underpowered/);
    const more = e.reasons.find((r) => r.startsWith('about '));
    expect(more).toMatch(/^about [\d,]+ more completed tasks would detect a 10% change with 80% power$/);
  });
});
