import { profiles } from './profiles.js';
import { Rng } from './random.js';

/**
 * A simulated company whose truth is known: use cases with set effects, the task events and model
 * calls they would send, and their register entries. Tests use it to show that the analytics
 * recover the truth; the demo uses it so that every page has something true to show.
 */
export interface SimOptions {
  seed: number;
  /** The end of the simulated period, epoch ms. */
  end: number;
  weeks?: number;
  /** Multiplies every use case's weekly volume. */
  scale?: number;
  /** Only these use cases (by id). */
  only?: string[];
}

export interface SimTruth {
  /** The true relative change in handling time, AI arm against holdout (intent to treat). */
  handlingLift: number | null;
  /** True when cost per outcome rises with volume. */
  costRisesWithVolume: boolean;
  /** The use case whose tasks this one also claims. */
  claimsTasksOf: string | null;
}

export interface SimUseCase {
  register: Record<string, unknown> & { id: string; name: string; stage: string };
  truth: SimTruth;
  ledger: { month: string; category: string; amount_usd: string }[];
}

/** One task as simulated, for checks that need no store. */
export interface SimTask {
  useCase: string;
  taskId: string;
  arm: 'ai' | 'holdout' | null;
  aiUsed: boolean;
  handling: number;
  covariate: number | null;
  success: boolean;
  week: number;
}

export interface SimCompany {
  useCases: SimUseCase[];
  events: Record<string, unknown>[];
  tasks: SimTask[];
}

const WEEK = 7 * 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();

export function simulateCompany(opts: SimOptions): SimCompany {
  const rng = new Rng(opts.seed);
  const weeks = opts.weeks ?? 8;
  const scale = opts.scale ?? 1;
  const start = opts.end - weeks * WEEK;
  const events: Record<string, unknown>[] = [];
  const tasks: SimTask[] = [];
  const useCases: SimUseCase[] = [];
  const taskIds = new Map<string, { id: string; time: number; week: number }[]>();
  let seq = 0;
  const id = (p: string) => `${p}-${opts.seed}-${(seq++).toString(36)}`;
  const all = profiles().filter((p) => !opts.only || opts.only.includes(p.id));

  for (const p of all) {
    const months = new Set<string>();
    const mine: { id: string; time: number; week: number }[] = [];
    for (let w = 0; w < weeks; w++) {
      const volume = rng.poisson(p.weekly * scale * p.growth ** w);
      // A use case that claims another's tasks reports on those same task ids.
      const shared = p.sharesTasksWith
        ? (taskIds.get(p.sharesTasksWith) ?? []).filter((t) => t.week === w)
        : [];
      for (let i = 0; i < volume; i++) {
        const time = start + w * WEEK + Math.floor(rng.next() * WEEK);
        const s = shared[i];
        mine.push({ id: s?.id ?? id(p.id.slice(0, 3)), time: s?.time ?? time, week: w });
      }
      months.add(iso(start + w * WEEK).slice(0, 7));
    }
    taskIds.set(p.id, mine);

    for (const t of mine) {
      const user = `u-${p.id.slice(0, 3)}-${Math.floor(rng.next() * Math.max(5, p.weekly / 20))}`;
      const arm = p.holdout > 0 ? (rng.bernoulli(p.holdout) ? 'holdout' : 'ai') : null;
      const isAi = arm !== 'holdout';
      const used = isAi && rng.bernoulli(p.adoption);
      const difficulty = rng.lognormal(1, 0.45);
      const handling =
        Math.round(
          p.baseHandling * difficulty * rng.lognormal(1, 0.25) * (used ? 1 + p.perUseEffect : 1) * 10,
        ) / 10;
      const covariate = p.covariate
        ? Math.round(p.baseHandling * difficulty * rng.lognormal(1, 0.25) * 10) / 10
        : null;
      const success = rng.bernoulli(isAi ? p.success[0] : p.success[1]);
      const outcome = success ? 'success' : rng.bernoulli(0.7) ? 'failure' : 'abandoned';
      const common = { use_case: p.id, task_id: t.id, user, team: p.department };
      let at = t.time;
      const next = () => (at += 1000 + Math.floor(rng.next() * 60_000));
      if (arm)
        events.push({
          id: id('ev'),
          type: 'task.eligible',
          time: iso(at),
          ...common,
          arm,
          ...(covariate === null ? {} : { covariate }),
        });
      const callIds: string[] = [];
      if (used) {
        const n = Math.max(1, rng.poisson(p.callsPerTask));
        for (let c = 0; c < n; c++) {
          const cid = id('call');
          callIds.push(cid);
          const input = Math.round(p.inputTokens(t.week) * rng.lognormal(1, 0.2));
          events.push({
            id: cid,
            type: 'llm.call',
            time: iso(next()),
            project: p.id,
            team: p.department,
            user,
            use_case: p.id,
            task_id: t.id,
            provider: 'openai',
            api: 'openai-chat',
            model: p.model,
            usage: {
              prompt_tokens: input,
              completion_tokens: Math.round(p.outputTokens * rng.lognormal(1, 0.3)),
              prompt_tokens_details: { cached_tokens: rng.bernoulli(0.3) ? Math.floor(input / 2) : 0 },
            },
            latency_ms: Math.round(rng.lognormal(900, 0.4)),
            status: 'ok',
          });
        }
        events.push({ id: id('ev'), type: 'task.ai_used', time: iso(next()), ...common, call_ids: callIds });
      }
      if (used && rng.bernoulli(0.1))
        events.push({
          id: id('ev'),
          type: 'task.human',
          time: iso(next()),
          ...common,
          kind: 'review',
          seconds: 30,
        });
      if (used && rng.bernoulli(0.06))
        events.push({
          id: id('ev'),
          type: 'task.human',
          time: iso(next()),
          ...common,
          kind: 'edit',
          seconds: 45,
        });
      if (used && rng.bernoulli(0.02))
        events.push({
          id: id('ev'),
          type: 'task.human',
          time: iso(next()),
          ...common,
          kind: 'escalation',
          seconds: 300,
        });
      if (isAi && !used && rng.bernoulli(0.5)) {
        events.push({
          id: id('ev'),
          type: 'task.opt_out',
          time: iso(next()),
          ...common,
          reason: rng.pick(['not trusted', 'too slow', 'wrong tone']),
        });
      }
      events.push({
        id: id('ev'),
        type: 'task.completed',
        time: iso(next()),
        ...common,
        outcome,
        handling_seconds: handling,
        ...(p.valueUsd && success ? { value_usd: p.valueUsd } : {}),
      });
      if (p.qaRate > 0 && rng.bernoulli(p.qaRate)) {
        events.push({
          id: id('ev'),
          type: 'task.quality',
          time: iso(next()),
          ...common,
          pass: rng.bernoulli(0.95),
          reviewer: 'qa-1',
        });
      }
      tasks.push({
        useCase: p.id,
        taskId: t.id,
        arm,
        aiUsed: used,
        handling,
        covariate,
        success,
        week: t.week,
      });
    }
    const ledger = [...months].flatMap((month) => p.ledger(month).map((e) => ({ month, ...e })));
    useCases.push({
      register: {
        id: p.id,
        name: p.name,
        department: p.department,
        holdout_share: p.holdout,
        ...(p.valueUsd ? { unit_value_usd: p.valueUsd } : {}),
        ...p.register,
        stage: 'pilot',
      },
      truth: p.truth,
      ledger,
    });
  }
  return { useCases, events, tasks };
}
