import type { DuckDBConnection } from '@duckdb/node-api';
import { type ArmOutcomes, emptyArm, type OutcomeSums, type WeekRow } from '@tally/core';
import { queryRows } from './duckdb-sql.js';
import { type Row, ts } from './duckdb-values.js';

/** One row per task of the use case: its arm, outcome and the sums of its events. The latest
 * task.completed wins, so a corrected outcome replaces the first; late events join their task. */
const TASKS = `
WITH ev AS (
  SELECT * FROM task_events WHERE tenant = $1 AND use_case = $2
),
called AS (
  SELECT DISTINCT task_id FROM calls WHERE tenant = $1 AND use_case = $2 AND task_id IS NOT NULL
),
t AS (
  SELECT task_id,
    arg_min(arm, time) FILTER (WHERE type = 'task.eligible') AS arm,
    arg_min(covariate, time) FILTER (WHERE type = 'task.eligible') AS covariate,
    coalesce(min(time) FILTER (WHERE type = 'task.eligible'), min(time)) AS t_at,
    bool_or(type = 'task.ai_used') AS ai_event,
    arg_max(outcome, time) FILTER (WHERE type = 'task.completed') AS outcome,
    arg_max(handling_seconds, time) FILTER (WHERE type = 'task.completed') AS handling,
    arg_max(value_nano, time) FILTER (WHERE type = 'task.completed') AS value_nano,
    coalesce(sum(seconds) FILTER (WHERE type = 'task.human' AND kind = 'review'), 0) AS h_review,
    coalesce(sum(seconds) FILTER (WHERE type = 'task.human' AND kind = 'edit'), 0) AS h_edit,
    coalesce(sum(seconds) FILTER (WHERE type = 'task.human' AND kind = 'override'), 0) AS h_override,
    coalesce(sum(seconds) FILTER (WHERE type = 'task.human' AND kind = 'escalation'), 0) AS h_escalation,
    count(*) FILTER (WHERE type = 'task.human') AS human_events,
    count(*) FILTER (WHERE type = 'task.human' AND kind IN ('edit', 'override', 'escalation')) AS interventions,
    count(*) FILTER (WHERE type = 'task.quality' AND pass IS NOT NULL) AS qa_n,
    count(*) FILTER (WHERE type = 'task.quality' AND pass) AS qa_pass,
    bool_or(type = 'task.opt_out') AS opted_out,
    max("user") AS "user"
  FROM ev GROUP BY task_id
),
tt AS (
  SELECT t.*, (t.ai_event OR c.task_id IS NOT NULL) AS ai_used, coalesce(t.arm, 'none') AS armk
  FROM t LEFT JOIN called c ON c.task_id = t.task_id
  WHERE t.t_at >= $3 AND t.t_at < $4
)`;

const ARM_SQL = `${TASKS}
SELECT armk,
  count(*) AS eligible,
  count(*) FILTER (WHERE ai_used) AS ai_used,
  count(outcome) AS completed,
  count(*) FILTER (WHERE outcome = 'success') AS successes,
  count(*) FILTER (WHERE outcome = 'failure') AS failures,
  count(*) FILTER (WHERE outcome = 'abandoned') AS abandoned,
  count(*) FILTER (WHERE outcome IS NOT NULL AND interventions = 0) AS completed_wo_int,
  count(*) FILTER (WHERE outcome = 'success' AND interventions = 0) AS stable,
  count(*) FILTER (WHERE outcome IS NOT NULL AND human_events = 0) AS completed_wo_human,
  count(handling) AS h_n, coalesce(sum(handling), 0) AS h_sum, coalesce(sum(handling * handling), 0) AS h_ss,
  count(*) FILTER (WHERE handling IS NOT NULL AND covariate IS NOT NULL) AS c_n,
  coalesce(sum(handling) FILTER (WHERE covariate IS NOT NULL), 0) AS c_y,
  coalesce(sum(handling * handling) FILTER (WHERE covariate IS NOT NULL), 0) AS c_yy,
  coalesce(sum(covariate) FILTER (WHERE handling IS NOT NULL), 0) AS c_x,
  coalesce(sum(covariate * covariate) FILTER (WHERE handling IS NOT NULL), 0) AS c_xx,
  coalesce(sum(handling * covariate), 0) AS c_xy,
  count(value_nano) FILTER (WHERE outcome IS NOT NULL) AS v_n,
  coalesce(sum(value_nano / 1e9) FILTER (WHERE outcome IS NOT NULL), 0) AS v_sum,
  coalesce(sum((value_nano / 1e9) * (value_nano / 1e9)) FILTER (WHERE outcome IS NOT NULL), 0) AS v_ss,
  coalesce(sum(value_nano::HUGEINT) FILTER (WHERE outcome IS NOT NULL), 0)::VARCHAR AS v_exact,
  coalesce(sum(qa_n), 0) AS qa_n, coalesce(sum(qa_pass), 0) AS qa_pass,
  sum(h_review) AS h_review, sum(h_edit) AS h_edit, sum(h_override) AS h_override, sum(h_escalation) AS h_escalation,
  count(*) FILTER (WHERE opted_out) AS opt_outs
FROM tt GROUP BY armk`;

const WEEK_SQL = `${TASKS}
SELECT epoch_ms(date_trunc('week', timezone('UTC', t_at))) AS week,
  count(outcome) AS completed,
  count(*) FILTER (WHERE outcome = 'success') AS successes,
  count(*) FILTER (WHERE outcome = 'success' AND interventions = 0) AS stable,
  sum(h_review + h_edit + h_override + h_escalation) AS human_seconds,
  coalesce(sum(qa_n), 0) AS qa_n, coalesce(sum(qa_pass), 0) AS qa_pass
FROM tt WHERE armk IN ('ai', 'none') GROUP BY 1 ORDER BY 1`;

const USERS_SQL = `${TASKS}
SELECT count(*) AS active, count(*) FILTER (WHERE weeks >= 2) AS repeat FROM (
  SELECT "user", count(DISTINCT date_trunc('week', timezone('UTC', t_at))) AS weeks
  FROM tt WHERE armk <> 'holdout' AND ai_used AND "user" IS NOT NULL AND t_at >= $5
  GROUP BY 1
)`;

const REASONS_SQL = `${TASKS}
SELECT coalesce(e.reason, '(none given)') AS reason, count(DISTINCT e.task_id) AS n
FROM task_events e JOIN tt ON tt.task_id = e.task_id
WHERE e.tenant = $1 AND e.use_case = $2 AND e.type = 'task.opt_out'
GROUP BY 1 ORDER BY n DESC, reason`;

const CALLS_SQL = `
SELECT count(*) AS calls,
  count(*) FILTER (WHERE status = 'error') AS errors,
  coalesce(sum(cost_effective_nano::HUGEINT), 0)::VARCHAR AS spend,
  count(*) FILTER (WHERE pricing_status = 'unpriced') AS unpriced,
  coalesce(sum(input_tokens), 0) AS input_tokens, coalesce(sum(output_tokens), 0) AS output_tokens,
  coalesce(sum(cache_read_tokens), 0) AS cache_read_tokens,
  count(task_id) AS with_task,
  quantile_cont(latency_ms, 0.5) AS p50, quantile_cont(latency_ms, 0.95) AS p95, quantile_cont(latency_ms, 0.99) AS p99,
  count(*) FILTER (WHERE cache <> 'miss') AS cache_hits,
  coalesce(sum(saved_nano::HUGEINT), 0)::VARCHAR AS saved
FROM calls WHERE tenant = $1 AND use_case = $2 AND time >= $3 AND time < $4`;

const CALL_WEEKS_SQL = `
SELECT epoch_ms(date_trunc('week', timezone('UTC', time))) AS week,
  coalesce(sum(cost_effective_nano::HUGEINT), 0)::VARCHAR AS spend, avg(latency_ms) AS latency
FROM calls WHERE tenant = $1 AND use_case = $2 AND time >= $3 AND time < $4
GROUP BY 1 ORDER BY 1`;

const n = (r: Row, k: string): number => Number(r[k] ?? 0);
const orNull = (r: Row, k: string): number | null =>
  r[k] === null || r[k] === undefined ? null : Number(r[k]);

function armFrom(r: Row): ArmOutcomes {
  return {
    ...emptyArm(),
    eligible: n(r, 'eligible'),
    aiUsed: n(r, 'ai_used'),
    completed: n(r, 'completed'),
    successes: n(r, 'successes'),
    failures: n(r, 'failures'),
    abandoned: n(r, 'abandoned'),
    completedWithoutIntervention: n(r, 'completed_wo_int'),
    stableSuccesses: n(r, 'stable'),
    completedWithoutHuman: n(r, 'completed_wo_human'),
    handling: { n: n(r, 'h_n'), sum: n(r, 'h_sum'), sumSquares: n(r, 'h_ss') },
    handlingCuped: {
      n: n(r, 'c_n'),
      sum: n(r, 'c_y'),
      sumSquares: n(r, 'c_yy'),
      covariateSum: n(r, 'c_x'),
      covariateSumSquares: n(r, 'c_xx'),
      crossProductSum: n(r, 'c_xy'),
    },
    success: { n: n(r, 'completed'), sum: n(r, 'successes'), sumSquares: n(r, 'successes') },
    value: { n: n(r, 'v_n'), sum: n(r, 'v_sum'), sumSquares: n(r, 'v_ss') },
    valueNano: BigInt(String(r['v_exact'] ?? '0')),
    qaSamples: n(r, 'qa_n'),
    qaPasses: n(r, 'qa_pass'),
    humanSeconds: {
      review: n(r, 'h_review'),
      edit: n(r, 'h_edit'),
      override: n(r, 'h_override'),
      escalation: n(r, 'h_escalation'),
    },
    optOuts: n(r, 'opt_outs'),
  };
}

const DAY = 86_400_000;

/** The sufficient statistics of one use case over [from, to), in a handful of queries on one
 * connection (one snapshot). */
export async function outcomeSums(
  conn: DuckDBConnection,
  tenant: string,
  useCase: string,
  from: number,
  to: number,
): Promise<OutcomeSums> {
  const base = [tenant, useCase, ts(from), ts(to)];
  const [arms, weeks, users, reasons, calls, callWeeks] = [
    await queryRows(conn, ARM_SQL, base),
    await queryRows(conn, WEEK_SQL, base),
    await queryRows(conn, USERS_SQL, [...base, ts(Math.max(from, to - 28 * DAY))]),
    await queryRows(conn, REASONS_SQL, base),
    await queryRows(conn, CALLS_SQL, base),
    await queryRows(conn, CALL_WEEKS_SQL, base),
  ];
  const byArm = new Map(arms.map((r) => [String(r['armk']), armFrom(r)]));
  const spend = new Map(
    callWeeks.map((r) => [
      n(r, 'week'),
      { spend: BigInt(String(r['spend'])), latency: orNull(r, 'latency') },
    ]),
  );
  const weekRows = new Map<number, WeekRow>();
  for (const r of weeks) {
    const w = n(r, 'week');
    weekRows.set(w, {
      week: w,
      aiCompleted: n(r, 'completed'),
      aiSuccesses: n(r, 'successes'),
      stableSuccesses: n(r, 'stable'),
      humanSeconds: n(r, 'human_seconds'),
      spendNano: spend.get(w)?.spend ?? 0n,
      qaSamples: n(r, 'qa_n'),
      qaPasses: n(r, 'qa_pass'),
      latencyMs: spend.get(w)?.latency ?? null,
    });
  }
  for (const [w, s] of spend) {
    if (!weekRows.has(w)) {
      weekRows.set(w, {
        week: w,
        aiCompleted: 0,
        aiSuccesses: 0,
        stableSuccesses: 0,
        humanSeconds: 0,
        spendNano: s.spend,
        qaSamples: 0,
        qaPasses: 0,
        latencyMs: s.latency,
      });
    }
  }
  const c = calls[0]!;
  const u = users[0]!;
  return {
    from,
    to,
    arms: { ai: byArm.get('ai') ?? emptyArm(), holdout: byArm.get('holdout') ?? emptyArm() },
    unassigned: byArm.get('none') ?? emptyArm(),
    calls: {
      calls: n(c, 'calls'),
      errors: n(c, 'errors'),
      spendNano: BigInt(String(c['spend'])),
      unpriced: n(c, 'unpriced'),
      inputTokens: n(c, 'input_tokens'),
      outputTokens: n(c, 'output_tokens'),
      cacheReadTokens: n(c, 'cache_read_tokens'),
      withTask: n(c, 'with_task'),
      latency: { p50: orNull(c, 'p50'), p95: orNull(c, 'p95'), p99: orNull(c, 'p99') },
      cacheHits: n(c, 'cache_hits'),
      savedNano: BigInt(String(c['saved'])),
    },
    weeks: [...weekRows.values()].sort((a, b) => a.week - b.week),
    optOutReasons: reasons.map((r) => ({ reason: String(r['reason']), count: n(r, 'n') })),
    users: { active: n(u, 'active'), repeat: n(u, 'repeat') },
  };
}
