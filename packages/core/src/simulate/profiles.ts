import type { SimTruth } from './company.js';

/** The simulated company's use cases: volumes, effects, costs and register entries, each with
 * the truth the analytics must recover. */
export interface Profile {
  id: string;
  name: string;
  department: string;
  weekly: number;
  /** Weekly volume growth factor. */
  growth: number;
  holdout: number;
  adoption: number;
  baseHandling: number;
  /** Effect on a task that used AI, relative. */
  perUseEffect: number;
  success: [ai: number, holdout: number];
  model: string;
  inputTokens: (week: number) => number;
  outputTokens: number;
  callsPerTask: number;
  valueUsd: string | null;
  covariate: boolean;
  qaRate: number;
  register: Record<string, unknown>;
  ledger: (month: string) => { category: string; amount_usd: string }[];
  truth: SimTruth;
  sharesTasksWith?: string;
}

const person = (name: string) => ({ name, email: `${name.toLowerCase()}@example.com` });
const ready = [
  { item: 'historical tasks exported', done: true },
  { item: 'PII handling reviewed', done: true },
  { item: 'outcome events instrumented', done: true },
];

export function profiles(): Profile[] {
  return [
    {
      id: 'support-triage',
      name: 'Support ticket triage',
      department: 'Customer support',
      weekly: 1500,
      growth: 1,
      holdout: 0.2,
      adoption: 0.92,
      baseHandling: 480,
      // 0.92 × −25 % = −23 % for the AI arm as a whole.
      perUseEffect: -0.25,
      success: [0.91, 0.9],
      model: 'gpt-4o-mini',
      inputTokens: () => 1800,
      outputTokens: 220,
      callsPerTask: 1.2,
      valueUsd: '4.20',
      covariate: true,
      qaRate: 0.05,
      register: {
        owners: { product: person('Ana'), finance: person('Bo'), data: person('Cy') },
        smart: {
          task: 'Route and draft replies for inbound support tickets',
          metric: 'handling time per ticket',
          baseline: '8 minutes',
          target: '6 minutes',
          time_box: 'one quarter',
        },
        baseline: {
          monthly_volume: 6500,
          cost_per_task_usd: '3.10',
          handling_seconds: 480,
          error_rate: 0.1,
          measured_at: '2026-08-01',
        },
        data_readiness: ready,
        reviewer_hourly_usd: '45',
      },
      ledger: () => [
        { category: 'infrastructure', amount_usd: '400' },
        { category: 'monitoring_retraining', amount_usd: '150' },
        { category: 'change_management_training', amount_usd: '300' },
      ],
      truth: { handlingLift: -0.23, costRisesWithVolume: false, claimsTasksOf: null },
    },
    {
      id: 'code-review',
      name: 'Code review assistant',
      department: 'Engineering',
      weekly: 300,
      growth: 1,
      holdout: 0.5,
      adoption: 0.85,
      baseHandling: 1500,
      perUseEffect: 0,
      success: [0.95, 0.95],
      model: 'gpt-4o',
      inputTokens: () => 6000,
      outputTokens: 400,
      callsPerTask: 2,
      valueUsd: '25',
      covariate: false,
      qaRate: 0.1,
      register: {
        owners: { product: person('Dee'), finance: person('Bo'), data: person('Eli') },
        smart: {
          task: 'Review pull requests before a human reviewer',
          metric: 'review time',
          baseline: '25 minutes',
          target: '15 minutes',
          time_box: 'one quarter',
        },
        baseline: {
          monthly_volume: 1300,
          cost_per_task_usd: '20.80',
          handling_seconds: 1500,
          error_rate: 0.05,
          measured_at: '2026-08-15',
        },
        data_readiness: ready,
        reviewer_hourly_usd: '90',
      },
      ledger: () => [{ category: 'licences', amount_usd: '600' }],
      truth: { handlingLift: 0, costRisesWithVolume: false, claimsTasksOf: null },
    },
    {
      id: 'marketing-copy',
      name: 'Marketing copy generation',
      department: 'Marketing',
      weekly: 200,
      growth: 1.25,
      holdout: 0,
      adoption: 1,
      baseHandling: 900,
      perUseEffect: -0.3,
      success: [0.8, 0.8],
      model: 'gpt-4o',
      // Context keeps growing with volume (more brand docs pasted in): cost per outcome rises.
      inputTokens: (w) => Math.round(4000 * 1.45 ** w),
      outputTokens: 60,
      callsPerTask: 1.5,
      valueUsd: '12',
      covariate: false,
      qaRate: 0,
      register: {
        owners: { product: person('Fay'), finance: null, data: null },
        smart: {
          task: 'Draft campaign copy',
          metric: 'drafts per week',
          baseline: null,
          target: null,
          time_box: null,
        },
        baseline: {
          monthly_volume: 800,
          cost_per_task_usd: '15',
          handling_seconds: 900,
          error_rate: null,
          measured_at: '2026-07-01',
        },
        data_readiness: [{ item: 'brand guide indexed', done: false }],
      },
      ledger: () => [],
      truth: { handlingLift: null, costRisesWithVolume: true, claimsTasksOf: null },
    },
    {
      id: 'sales-email',
      name: 'Sales follow-up emails',
      department: 'Sales',
      weekly: 150,
      growth: 1.25,
      holdout: 0,
      adoption: 1,
      baseHandling: 600,
      perUseEffect: -0.2,
      success: [0.85, 0.85],
      model: 'gpt-4o-mini',
      inputTokens: () => 1200,
      outputTokens: 300,
      callsPerTask: 1,
      valueUsd: '12',
      covariate: false,
      qaRate: 0,
      register: { owners: { product: null, finance: null, data: null }, baseline: null },
      ledger: () => [],
      truth: { handlingLift: null, costRisesWithVolume: false, claimsTasksOf: 'marketing-copy' },
      sharesTasksWith: 'marketing-copy',
    },
  ];
}
