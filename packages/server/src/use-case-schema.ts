import { randomBytes } from 'node:crypto';
import { LEDGER_CATEGORIES, TallyError, type UseCaseSpec } from '@tally/core';
import type { UseCaseRecord } from '@tally/store';
import { z } from 'zod';

const usd = z.string().regex(/^\d{1,12}(\.\d{1,9})?$/, 'a USD amount as a decimal string, such as "12.50"');
const text = z.string().trim().min(1).max(2000);
const person = z.object({ name: text, email: z.email().optional() }).strict();

/** The register's fields as the API takes them (snake_case); every field is optional on update. */
export const useCaseFields = z
  .object({
    name: z.string().trim().min(1).max(200),
    department: z.string().trim().min(1).max(200).nullable(),
    owners: z
      .object({ product: person.nullable(), finance: person.nullable(), data: person.nullable() })
      .partial()
      .strict(),
    smart: z
      .object({
        task: text.nullable(),
        metric: text.nullable(),
        baseline: text.nullable(),
        target: text.nullable(),
        time_box: text.nullable(),
      })
      .partial()
      .strict(),
    baseline: z
      .object({
        monthly_volume: z.number().int().min(0).nullable(),
        cost_per_task_usd: usd.nullable(),
        handling_seconds: z.number().min(0).nullable(),
        error_rate: z.number().min(0).max(1).nullable(),
        measured_at: z.iso.date().nullable(),
      })
      .partial()
      .strict()
      .nullable(),
    data_readiness: z.array(z.object({ item: text, done: z.boolean() }).strict()).max(100),
    success_criteria: z
      .object({
        idea: z.array(text),
        readiness: z.array(text),
        pilot: z.array(text),
        production: z.array(text),
        scale: z.array(text),
      })
      .partial()
      .strict(),
    holdout_share: z.number().min(0).max(0.5),
    unit_value_usd: usd.nullable(),
    reviewer_hourly_usd: usd.nullable(),
    ai_estimate: z
      .object({ cost_per_task_usd: usd, fixed_monthly_usd: usd.nullable().default(null) })
      .strict()
      .nullable(),
  })
  .partial()
  .strict();

export const createSchema = useCaseFields.extend({
  id: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'lowercase letters, digits, - and _, at most 64')
    .optional(),
  name: z.string().trim().min(1).max(200),
});

export type UseCaseFields = z.infer<typeof useCaseFields>;

export function parseBody<T>(schema: z.ZodType<T>, body: unknown, what: string): T {
  const r = schema.safeParse(body ?? {});
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ');
    throw new TallyError('invalid_request', `The ${what} is not valid: ${issues}`);
  }
  return r.data;
}

export function emptySpec(): UseCaseSpec {
  return {
    owners: { product: null, finance: null, data: null },
    smart: { task: null, metric: null, baseline: null, target: null, time_box: null },
    baseline: null,
    data_readiness: [],
    success_criteria: {},
    // A fresh random salt: units are assigned independently of every other use case's holdout.
    holdout: { share: 0.1, salt: randomBytes(12).toString('base64url') },
    unit_value_usd: null,
    reviewer_hourly_usd: null,
    history: [],
  };
}

/** Applies the given fields to a stored spec: nested objects merge, lists replace. */
export function applyFields(spec: UseCaseSpec, f: UseCaseFields): UseCaseSpec {
  const out: UseCaseSpec = structuredClone(spec);
  if (f.owners) out.owners = { ...out.owners, ...stripUndefined(f.owners) };
  if (f.smart) out.smart = { ...out.smart, ...stripUndefined(f.smart) };
  if (f.baseline !== undefined) {
    out.baseline =
      f.baseline === null
        ? null
        : {
            monthly_volume: null,
            cost_per_task_usd: null,
            handling_seconds: null,
            error_rate: null,
            measured_at: null,
            ...(out.baseline ?? {}),
            ...stripUndefined(f.baseline),
          };
  }
  if (f.data_readiness) out.data_readiness = f.data_readiness;
  if (f.success_criteria)
    out.success_criteria = { ...out.success_criteria, ...stripUndefined(f.success_criteria) };
  if (f.holdout_share !== undefined) out.holdout = { ...out.holdout, share: f.holdout_share };
  if (f.unit_value_usd !== undefined) out.unit_value_usd = f.unit_value_usd;
  if (f.reviewer_hourly_usd !== undefined) out.reviewer_hourly_usd = f.reviewer_hourly_usd;
  if (f.ai_estimate !== undefined) out.ai_estimate = f.ai_estimate;
  return out;
}

function stripUndefined<T extends object>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as never;
}

/** A stored spec, read defensively: fields added later get their defaults. */
export function specOf(rec: UseCaseRecord): UseCaseSpec {
  return { ...emptySpec(), ...(rec.spec as Partial<UseCaseSpec>) } as UseCaseSpec;
}

export function useCaseJson(rec: UseCaseRecord): Record<string, unknown> {
  const spec = specOf(rec);
  return {
    id: rec.id,
    name: rec.name,
    department: rec.department,
    stage: rec.stage,
    ...spec,
    created_at: new Date(rec.created_at).toISOString(),
    updated_at: new Date(rec.updated_at).toISOString(),
  };
}

export const ledgerSchema = z
  .object({
    id: z.string().min(1).max(128).optional(),
    use_case: z.string().min(1).max(128),
    month: z.string().regex(/^\d{4}-(0[1-9]|1[0-2])$/, 'a month as YYYY-MM'),
    category: z.enum(LEDGER_CATEGORIES),
    amount_usd: usd,
    note: z.string().max(2000).optional(),
  })
  .strict();
