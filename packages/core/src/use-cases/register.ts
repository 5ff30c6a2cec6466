import type { Stage } from '../model.js';

export const STAGES: readonly Stage[] = ['idea', 'readiness', 'pilot', 'production', 'scale'];

export interface Person {
  name: string;
  email?: string | undefined;
}

/** The register's card for one use case (everything but its id, name, department and stage). */
export interface UseCaseSpec {
  owners: { product: Person | null; finance: Person | null; data: Person | null };
  /** Specific, measurable, achievable against a baseline, with a target and a time box. */
  smart: {
    task: string | null;
    metric: string | null;
    baseline: string | null;
    target: string | null;
    time_box: string | null;
  };
  /** How the work is done today, measured before AI. */
  baseline: {
    monthly_volume: number | null;
    cost_per_task_usd: string | null;
    handling_seconds: number | null;
    error_rate: number | null;
    measured_at: string | null;
  } | null;
  data_readiness: { item: string; done: boolean }[];
  success_criteria: Partial<Record<Stage, string[]>>;
  holdout: { share: number; salt: string };
  /** What one successful outcome is worth. */
  unit_value_usd: string | null;
  /** A reviewer's cost an hour, which prices the human seconds spent on AI tasks. */
  reviewer_hourly_usd: string | null;
  /** Before building: what running the AI is expected to cost, for the opportunity model. */
  ai_estimate?: { cost_per_task_usd: string; fixed_monthly_usd: string | null } | null;
  history: StageChange[];
}

export interface StageChange {
  from: Stage;
  to: Stage;
  at: string;
  by: string;
  reason: string | null;
  /** The gate as it stood when the change was made. */
  checks: GateCheck[];
  /** True when a failed gate was overridden (forced) by an admin. */
  forced: boolean;
}

export interface GateCheck {
  check: string;
  passed: boolean;
  detail: string;
}

/** What the analytics say about a use case, for the gates that need evidence. Absent fields are
 * not known yet and fail their check. */
export interface GateEvidence {
  evidence_grade?: 'A' | 'B' | 'C' | 'D';
  stability_rate?: number | null;
  cost_per_outcome_usd?: string | null;
  /** The log-log slope of cost per outcome on weekly volume, with its interval. */
  unit_economics?: { slope: number; ci: [number, number] } | null;
}

export interface GateResult {
  from: Stage;
  to: Stage;
  /** Every check passed (or the move is backwards, which needs none). */
  passed: boolean;
  checks: GateCheck[];
}

const filled = (v: string | null | undefined) => typeof v === 'string' && v.trim() !== '';

function readiness(spec: UseCaseSpec): GateCheck[] {
  const b = spec.baseline;
  const missingOwners = (['product', 'finance', 'data'] as const).filter(
    (r) => !filled(spec.owners[r]?.name),
  );
  const open = spec.data_readiness.filter((i) => !i.done).map((i) => i.item);
  const baselineFields = b
    ? (['monthly_volume', 'cost_per_task_usd', 'handling_seconds', 'measured_at'] as const).filter(
        (f) => b[f] === null || b[f] === undefined,
      )
    : ['the whole baseline'];
  return [
    {
      check: 'baseline',
      passed: baselineFields.length === 0,
      detail:
        baselineFields.length === 0 ? `measured ${b!.measured_at}` : `missing: ${baselineFields.join(', ')}`,
    },
    {
      check: 'owners',
      passed: missingOwners.length === 0,
      detail:
        missingOwners.length === 0
          ? 'product, finance and data owners named'
          : `no ${missingOwners.join(', ')} owner`,
    },
    {
      check: 'data_readiness',
      passed: spec.data_readiness.length > 0 && open.length === 0,
      detail:
        spec.data_readiness.length === 0
          ? 'the data-readiness checklist is empty'
          : open.length === 0
            ? `all ${spec.data_readiness.length} items done`
            : `open: ${open.join(', ')}`,
    },
  ];
}

export function smart(spec: UseCaseSpec): GateCheck[] {
  const missing = (['task', 'metric', 'baseline', 'target', 'time_box'] as const).filter(
    (f) => !filled(spec.smart[f]),
  );
  return [
    {
      check: 'smart',
      passed: missing.length === 0,
      detail:
        missing.length === 0
          ? 'task, metric, baseline, target and time box set'
          : `missing: ${missing.join(', ')}`,
    },
  ];
}

function production(spec: UseCaseSpec, e: GateEvidence): GateCheck[] {
  const grade = e.evidence_grade;
  const stability = e.stability_rate;
  const cpo = e.cost_per_outcome_usd;
  const base = spec.baseline?.cost_per_task_usd ?? null;
  const cheaper = cpo != null && base !== null ? Number(cpo) < Number(base) : null;
  return [
    {
      check: 'evidence_grade',
      passed: grade === 'A' || grade === 'B',
      detail: grade ? `grade ${grade} (A or B needed)` : 'no evidence grade yet',
    },
    {
      check: 'stability',
      passed: stability != null && stability > 0.85,
      detail:
        stability == null
          ? 'no completed AI tasks yet'
          : `${(stability * 100).toFixed(1)}% (above 85% needed)`,
    },
    {
      check: 'cost_per_outcome',
      passed: cheaper === true,
      detail:
        cheaper === null
          ? cpo == null
            ? 'no successful outcomes yet'
            : 'no baseline cost per task'
          : `$${cpo} per outcome against a baseline of $${base} per task`,
    },
  ];
}

function scale(e: GateEvidence): GateCheck[] {
  const u = e.unit_economics;
  return [
    {
      check: 'unit_economics',
      passed: u != null && u.ci[1] <= 0,
      detail:
        u == null
          ? 'not enough weeks of volume to fit the slope'
          : `slope ${u.slope.toFixed(3)} (95% CI ${u.ci[0].toFixed(3)} to ${u.ci[1].toFixed(3)}); its upper bound must be ≤ 0`,
    },
  ];
}

/**
 * Whether a use case may move from one stage to the next, and why. Moves go one stage at a time;
 * going back is always allowed. Each forward gate:
 * - idea → readiness: the SMART card is complete;
 * - readiness → pilot: a baseline, the three owners and a done data-readiness checklist;
 * - pilot → production: evidence grade A or B, stability above 85 %, cost per outcome below the
 *   baseline cost per task;
 * - production → scale: cost per outcome does not rise with volume (slope ≤ 0 with confidence).
 */
export function checkGate(
  spec: UseCaseSpec,
  from: Stage,
  to: Stage,
  evidence: GateEvidence = {},
): GateResult {
  const i = STAGES.indexOf(from);
  const j = STAGES.indexOf(to);
  if (j <= i) return { from, to, passed: true, checks: [] };
  if (j > i + 1) {
    return {
      from,
      to,
      passed: false,
      checks: [
        { check: 'one_stage_at_a_time', passed: false, detail: `${from} must go to ${STAGES[i + 1]} first` },
      ],
    };
  }
  const checks =
    to === 'readiness'
      ? smart(spec)
      : to === 'pilot'
        ? readiness(spec)
        : to === 'production'
          ? production(spec, evidence)
          : scale(evidence);
  return { from, to, passed: checks.every((c) => c.passed), checks };
}

/** The next stage's gate: what the scorecard shows as the stage's gate status. */
export function nextGate(spec: UseCaseSpec, stage: Stage, evidence: GateEvidence = {}): GateResult | null {
  const next = STAGES[STAGES.indexOf(stage) + 1];
  return next ? checkGate(spec, stage, next, evidence) : null;
}

/** Which review is due: weekly in pilot, monthly in production, quarterly at scale (and a deep
 * review every quarter whatever the stage), counted from the last stage change. */
export function reviewDue(
  stage: Stage,
  lastChangeMs: number,
  nowMs: number,
): { cadence: string; due: boolean; next: string } {
  const day = 86_400_000;
  const cadence =
    stage === 'pilot'
      ? 'weekly'
      : stage === 'production'
        ? 'monthly'
        : stage === 'scale'
          ? 'quarterly'
          : 'none';
  const every = cadence === 'weekly' ? 7 : cadence === 'monthly' ? 30 : cadence === 'quarterly' ? 91 : 0;
  if (every === 0) return { cadence, due: false, next: 'after the stage moves to pilot' };
  const periods = Math.floor((nowMs - lastChangeMs) / (every * day));
  const next = lastChangeMs + (periods + 1) * every * day;
  return { cadence, due: periods >= 1, next: new Date(next).toISOString() };
}
