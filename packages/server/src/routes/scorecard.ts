import { type Finding, renderHtml, renderMarkdown, TallyError } from '@tally/core';
import type { FastifyPluginAsync } from 'fastify';
import type { AppContext } from '../context.js';
import { auditTenant, periodParam, scorecardFor } from '../scorecards.js';
import { stringParam } from '../serialize.js';

/** A finding about the use case (a double claim names two). */
const concerns = (f: Finding, useCase: string) => f.subject.use_case?.split(', ').includes(useCase) ?? false;

/** GET /v1/use-cases/:id/scorecard?from=&to=&sequential=true&alpha=0.05 */
export const scorecardRoutes: FastifyPluginAsync<AppContext> = async (app, ctx) => {
  app.get('/v1/use-cases/:id/scorecard', async (request) => {
    const principal = await ctx.auth.authenticate(request, ['admin', 'finance', 'member']);
    const { id } = request.params as { id: string };
    const q = request.query as Record<string, unknown>;
    const rec = await ctx.store.getUseCase(principal.tenant, id);
    if (!rec) throw new TallyError('not_found', `No use case ${id}.`);
    const now = ctx.clock.now();
    const period = periodParam(q, now);
    const alphaRaw = stringParam('alpha', q['alpha']);
    const alpha = alphaRaw === undefined ? 0.05 : Number(alphaRaw);
    if (!(alpha > 0 && alpha < 0.5))
      throw new TallyError('invalid_query', 'alpha must be between 0 and 0.5.');
    const seq = stringParam('sequential', q['sequential']);
    if (seq !== undefined && seq !== 'true' && seq !== 'false') {
      throw new TallyError('invalid_query', 'sequential must be true or false.');
    }
    return scorecardFor(ctx.store, rec, period, now, { alpha, sequential: seq === 'true' });
  });

  /** GET /v1/audit?from=&to=&use_case=: every red flag, most severe first. */
  app.get('/v1/audit', async (request) => {
    const principal = await ctx.auth.authenticate(request, ['admin', 'finance']);
    const q = request.query as Record<string, unknown>;
    const period = periodParam(q, ctx.clock.now());
    const useCase = stringParam('use_case', q['use_case']);
    let { findings } = await auditTenant(ctx.store, principal.tenant, period, ctx.clock.now());
    if (useCase) findings = findings.filter((f) => concerns(f, useCase));
    return {
      period: { from: new Date(period.from).toISOString(), to: new Date(period.to).toISOString() },
      findings,
    };
  });

  /** GET /v1/use-cases/:id/report?format=md|html&from=&to=: the executive one-pager. */
  app.get('/v1/use-cases/:id/report', async (request, reply) => {
    const principal = await ctx.auth.authenticate(request, ['admin', 'finance', 'member']);
    const { id } = request.params as { id: string };
    const q = request.query as Record<string, unknown>;
    const format = stringParam('format', q['format']) ?? 'html';
    if (format !== 'md' && format !== 'html')
      throw new TallyError('invalid_query', 'format must be md or html.');
    const rec = await ctx.store.getUseCase(principal.tenant, id);
    if (!rec) throw new TallyError('not_found', `No use case ${id}.`);
    const audit = await auditTenant(
      ctx.store,
      principal.tenant,
      periodParam(q, ctx.clock.now()),
      ctx.clock.now(),
    );
    // The audit scored every use case already: the report reads this one's card from it.
    const input = {
      name: rec.name,
      scorecard: audit.cards.get(id)!,
      findings: audit.findings.filter((f) => concerns(f, id)),
    };
    return format === 'md'
      ? reply.type('text/markdown; charset=utf-8').send(renderMarkdown(input))
      : reply.type('text/html; charset=utf-8').send(renderHtml(input));
  });
};
