import { randomUUID } from 'node:crypto';
import { checkGate, nanoToUsd, STAGES, type Stage, TallyError, usdToNano } from '@tally/core';
import { assignArm, unitBucket } from '@tally/sdk';
import type { UseCaseRecord } from '@tally/store';
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { AppContext } from '../context.js';
import {
  applyFields,
  createSchema,
  emptySpec,
  ledgerSchema,
  parseBody,
  specOf,
  useCaseFields,
  useCaseJson,
} from '../use-case-schema.js';

const stageSchema = z
  .object({
    to: z.enum(STAGES as [Stage, ...Stage[]]),
    reason: z.string().trim().min(1).max(2000).optional(),
    force: z.boolean().optional(),
  })
  .strict();

const assignSchema = z
  .object({
    use_case: z.string().min(1).max(128),
    unit_id: z.string().min(1).max(256).optional(),
    unit_ids: z.array(z.string().min(1).max(256)).min(1).max(10_000).optional(),
  })
  .strict()
  .refine((b) => (b.unit_id === undefined) !== (b.unit_ids === undefined), 'pass unit_id or unit_ids');

const READ = ['admin', 'finance', 'member'] as const;

/** The use-case register, its stage gates, holdout assignment and the hidden-cost ledger. */
export const useCaseRoutes: FastifyPluginAsync<AppContext> = async (app, ctx) => {
  async function load(tenant: string, id: string): Promise<UseCaseRecord> {
    const rec = await ctx.store.getUseCase(tenant, id);
    if (!rec) throw new TallyError('not_found', `No use case ${id}.`);
    return rec;
  }

  app.post('/v1/use-cases', async (request, reply) => {
    const principal = await ctx.auth.authenticate(request, ['admin']);
    const body = parseBody(createSchema, request.body, 'use case');
    const id = body.id ?? `uc_${randomUUID().slice(0, 8)}`;
    if (await ctx.store.getUseCase(principal.tenant, id)) {
      throw new TallyError('already_exists', `A use case ${id} already exists.`);
    }
    const now = ctx.clock.now();
    const rec: UseCaseRecord = {
      tenant: principal.tenant,
      id,
      name: body.name,
      department: body.department ?? null,
      stage: 'idea',
      spec: applyFields(emptySpec(), body) as unknown as Record<string, unknown>,
      created_at: now,
      updated_at: now,
    };
    await ctx.store.putUseCase(rec);
    return reply.status(201).send(useCaseJson(rec));
  });

  app.get('/v1/use-cases', async (request) => {
    const principal = await ctx.auth.authenticate(request, READ);
    return { data: (await ctx.store.listUseCases(principal.tenant)).map(useCaseJson) };
  });

  app.get('/v1/use-cases/:id', async (request) => {
    const principal = await ctx.auth.authenticate(request, READ);
    return useCaseJson(await load(principal.tenant, (request.params as { id: string }).id));
  });

  app.patch('/v1/use-cases/:id', async (request) => {
    const principal = await ctx.auth.authenticate(request, ['admin']);
    const rec = await load(principal.tenant, (request.params as { id: string }).id);
    const f = parseBody(useCaseFields, request.body, 'update');
    const next: UseCaseRecord = {
      ...rec,
      name: f.name ?? rec.name,
      department: f.department === undefined ? rec.department : f.department,
      spec: applyFields(specOf(rec), f) as unknown as Record<string, unknown>,
      updated_at: ctx.clock.now(),
    };
    await ctx.store.putUseCase(next);
    return useCaseJson(next);
  });

  /** The gate to the next stage as it stands, without moving. */
  app.get('/v1/use-cases/:id/gate', async (request) => {
    const principal = await ctx.auth.authenticate(request, READ);
    const rec = await load(principal.tenant, (request.params as { id: string }).id);
    const to = (request.query as { to?: string }).to;
    const i = STAGES.indexOf(rec.stage);
    const target = (to ?? STAGES[i + 1] ?? rec.stage) as Stage;
    if (!STAGES.includes(target))
      throw new TallyError('invalid_query', `to must be one of ${STAGES.join(', ')}.`);
    return checkGate(specOf(rec), rec.stage, target, await ctx.gateEvidence(rec));
  });

  app.post('/v1/use-cases/:id/stage', async (request, reply) => {
    const principal = await ctx.auth.authenticate(request, ['admin']);
    const rec = await load(principal.tenant, (request.params as { id: string }).id);
    const body = parseBody(stageSchema, request.body, 'stage change');
    if (body.to === rec.stage)
      throw new TallyError('invalid_request', `The use case is already at ${rec.stage}.`);
    const spec = specOf(rec);
    const gate = checkGate(spec, rec.stage, body.to, await ctx.gateEvidence(rec));
    const skipping = gate.checks.some((c) => c.check === 'one_stage_at_a_time');
    if (!gate.passed && (!body.force || skipping)) {
      throw new TallyError(
        'gate_failed',
        `${rec.stage} → ${body.to}: ${gate.checks
          .filter((c) => !c.passed)
          .map((c) => `${c.check} (${c.detail})`)
          .join('; ')}.`,
        { checks: gate.checks },
      );
    }
    if (!gate.passed && !body.reason) {
      throw new TallyError('invalid_request', 'A forced stage change needs a reason.');
    }
    const now = ctx.clock.now();
    spec.history.push({
      from: rec.stage,
      to: body.to,
      at: new Date(now).toISOString(),
      by: principal.keyId,
      reason: body.reason ?? null,
      checks: gate.checks,
      forced: !gate.passed,
    });
    const next: UseCaseRecord = {
      ...rec,
      stage: body.to,
      spec: spec as unknown as Record<string, unknown>,
      updated_at: now,
    };
    await ctx.store.putUseCase(next);
    return reply.send({ ...useCaseJson(next), gate });
  });

  app.post('/v1/assign', async (request) => {
    const principal = await ctx.auth.authenticate(request, READ);
    const body = parseBody(assignSchema, request.body, 'assignment');
    const spec = specOf(await load(principal.tenant, body.use_case));
    const one = (unit: string) => ({
      unit_id: unit,
      arm: assignArm({ salt: spec.holdout.salt, holdout_share: spec.holdout.share }, unit),
      bucket: unitBucket(spec.holdout.salt, unit),
    });
    const base = { use_case: body.use_case, holdout_share: spec.holdout.share };
    return body.unit_id !== undefined
      ? { ...base, ...one(body.unit_id) }
      : { ...base, assignments: body.unit_ids!.map(one) };
  });

  app.post('/v1/ledger', async (request, reply) => {
    const principal = await ctx.auth.authenticate(request, ['admin', 'finance']);
    const body = parseBody(ledgerSchema, request.body, 'ledger entry');
    await load(principal.tenant, body.use_case);
    const entry = {
      tenant: principal.tenant,
      id: body.id ?? `led_${randomUUID().slice(0, 8)}`,
      use_case: body.use_case,
      month: body.month,
      category: body.category,
      amount_nano: usdToNano(body.amount_usd),
      note: body.note ?? null,
      created_at: ctx.clock.now(),
    };
    const written = await ctx.store.addLedgerEntry(entry);
    return reply
      .status(written.inserted === 1 ? 201 : 200)
      .send({ ...ledgerJson(entry), duplicate: written.duplicates === 1 });
  });

  /** Entries, and per month the totals by category with human review priced from task.human
   * seconds × the use case's reviewer hourly cost. */
  app.get('/v1/ledger', async (request) => {
    const principal = await ctx.auth.authenticate(request, ['admin', 'finance']);
    const useCase = (request.query as { use_case?: string }).use_case;
    const entries = await ctx.store.listLedger(principal.tenant, useCase);
    const months = new Map<string, Map<string, bigint>>();
    const add = (key: string, category: string, nano: bigint) => {
      const m = months.get(key) ?? new Map<string, bigint>();
      m.set(category, (m.get(category) ?? 0n) + nano);
      months.set(key, m);
    };
    for (const e of entries) add(`${e.use_case}|${e.month}`, e.category, e.amount_nano);
    const cases = useCase
      ? [await load(principal.tenant, useCase)]
      : await ctx.store.listUseCases(principal.tenant);
    for (const uc of cases) {
      const hourly = specOf(uc).reviewer_hourly_usd;
      if (!hourly) continue;
      const perHour = usdToNano(hourly);
      for (const { month, seconds } of await ctx.store.humanSecondsByMonth(principal.tenant, uc.id)) {
        // Milliseconds keep fractional seconds exact enough; the product is rounded to a nano-dollar.
        const nano = (perHour * BigInt(Math.round(seconds * 1000))) / 3_600_000n;
        add(`${uc.id}|${month}`, 'human_review_time', nano);
      }
    }
    const totals = [...months]
      .map(([key, cats]) => {
        const [uc, month] = key.split('|') as [string, string];
        let total = 0n;
        const by: Record<string, string> = {};
        for (const [c, n] of cats) {
          by[c] = nanoToUsd(n);
          total += n;
        }
        return { use_case: uc, month, by_category: by, total_usd: nanoToUsd(total) };
      })
      .sort((a, b) => a.use_case.localeCompare(b.use_case) || a.month.localeCompare(b.month));
    return { data: entries.map(ledgerJson), months: totals };
  });
};

function ledgerJson(e: {
  id: string;
  use_case: string;
  month: string;
  category: string;
  amount_nano: bigint;
  note: string | null;
  created_at: number;
}) {
  return {
    id: e.id,
    use_case: e.use_case,
    month: e.month,
    category: e.category,
    amount_usd: nanoToUsd(e.amount_nano),
    note: e.note,
    created_at: new Date(e.created_at).toISOString(),
  };
}
