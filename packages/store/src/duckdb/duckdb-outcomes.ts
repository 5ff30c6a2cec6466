import type { DuckDBConnection } from '@duckdb/node-api';
import { type ArmOutcomes, emptyArm, type OutcomeSums, type WeekRow } from '@tally/core';
import { inTransaction, queryRows } from './duckdb-sql.js';
import { type Row, ts } from './duckdb-values.js';

/** Recomputes the rollup rows of the tasks marked dirty, from all their events and calls, then
 * clears the marks: one transaction on the writer, so no ingest runs in between. */
const DIRTY = 'SELECT DISTINCT tenant, use_case, task_id FROM task_rollup_dirty';
const REFRESH = [
  `DELETE FROM task_rollup USING (${DIRTY}) d
   WHERE task_rollup.tenant = d.tenant AND task_rollup.use_case = d.use_case AND task_rollup.task_id = d.task_id`,
  `INSERT INTO task_rollup
   WITH d AS (${DIRTY}),
   called AS (
     SELECT DISTINCT c.tenant, c.use_case, c.task_id FROM calls c
     JOIN d ON c.tenant = d.tenant AND c.use_case = d.use_case AND c.task_id = d.task_id
     WHERE c.status <> 'refused'
   ),
   agg AS (
   SELECT e.tenant, e.use_case, e.task_id,
     coalesce(min(e.time) FILTER (WHERE e.type = 'task.eligible'), min(e.time)) AS t_at,
     arg_min(e.arm, e.time) FILTER (WHERE e.type = 'task.eligible') AS arm,
     arg_min(e.covariate, e.time) FILTER (WHERE e.type = 'task.eligible') AS covariate,
     bool_or(e.type = 'task.ai_used') OR bool_or(k.task_id IS NOT NULL) AS ai_used,
     arg_max(e.outcome, e.time) FILTER (WHERE e.type = 'task.completed') AS outcome,
     arg_max(e.handling_seconds, e.time) FILTER (WHERE e.type = 'task.completed') AS handling,
     arg_max(e.value_nano, e.time) FILTER (WHERE e.type = 'task.completed') AS value_nano,
     coalesce(sum(e.seconds) FILTER (WHERE e.type = 'task.human' AND e.kind = 'review'), 0) AS h_review,
     coalesce(sum(e.seconds) FILTER (WHERE e.type = 'task.human' AND e.kind = 'edit'), 0) AS h_edit,
     coalesce(sum(e.seconds) FILTER (WHERE e.type = 'task.human' AND e.kind = 'override'), 0) AS h_override,
     coalesce(sum(e.seconds) FILTER (WHERE e.type = 'task.human' AND e.kind = 'escalation'), 0) AS h_escalation,
     count(*) FILTER (WHERE e.type = 'task.human') AS human_events,
     count(*) FILTER (WHERE e.type = 'task.human' AND e.kind IN ('edit', 'override', 'escalation')) AS interventions,
     count(*) FILTER (WHERE e.type = 'task.quality' AND e.pass IS NOT NULL) AS qa_n,
     count(*) FILTER (WHERE e.type = 'task.quality' AND e.pass) AS qa_pass,
     bool_or(e.type = 'task.opt_out') AS opted_out,
     arg_max(e.reason, e.time) FILTER (WHERE e.type = 'task.opt_out') AS opt_reason,
     max(e."user") AS "user"
   FROM task_events e
   JOIN d ON e.tenant = d.tenant AND e.use_case = d.use_case AND e.task_id = d.task_id
   LEFT JOIN called k ON k.tenant = e.tenant AND k.use_case = e.use_case AND k.task_id = e.task_id
   GROUP BY e.tenant, e.use_case, e.task_id
   )
   SELECT *,
     (outcome IS NOT NULL)::SMALLINT AS done,
     coalesce(outcome = 'success', false)::SMALLINT AS success,
     coalesce(outcome = 'failure', false)::SMALLINT AS failure,
     coalesce(outcome = 'abandoned', false)::SMALLINT AS abandoned,
     coalesce(outcome = 'success' AND interventions = 0, false)::SMALLINT AS stable,
     (outcome IS NOT NULL AND interventions = 0)::SMALLINT AS done_no_intervention,
     (outcome IS NOT NULL AND human_events = 0)::SMALLINT AS done_no_human,
     CASE WHEN outcome IS NOT NULL THEN value_nano / 1e9 END AS value_usd
   FROM agg`,
  'DELETE FROM task_rollup_dirty',
];

export async function refreshTaskRollup(conn: DuckDBConnection): Promise<number> {
  const [row] = await queryRows(conn, 'SELECT count(*) AS n FROM task_rollup_dirty');
  const n = Number(row?.['n'] ?? 0);
  if (n === 0) return 0;
  await inTransaction(conn, async () => {
    for (const sql of REFRESH) await conn.run(sql);
  });
  return n;
}

/** The use case's tasks of the period, from the rollup, with the flags every sum needs. */
/** Monday 00:00 UTC of the week holding a timestamp, in epoch ms, by integer arithmetic (time-zone
 * conversion per row costs more than the rest of the query). 1970-01-05 was a Monday. */
const week = (col: string) => `((epoch_ms(${col}) - 345600000) // 604800000) * 604800000 + 345600000`;

const TASKS = `
WITH tt AS (
  SELECT *, coalesce(arm, 'none') AS armk
  FROM task_rollup WHERE tenant = $1 AND use_case = $2 AND t_at >= $3 AND t_at < $4
)`;

const ARM_SQL = `${TASKS}
SELECT armk,
  count(*) AS eligible,
  sum(ai_used::INT) AS ai_used,
  sum(done) AS completed,
  sum(success) AS successes,
  sum(failure) AS failures,
  sum(abandoned) AS abandoned,
  sum(done_no_intervention) AS completed_wo_int,
  sum(stable) AS stable,
  sum(done_no_human) AS completed_wo_human,
  count(handling) AS h_n, coalesce(sum(handling), 0) AS h_sum, coalesce(sum(handling * handling), 0) AS h_ss,
  count(handling * covariate) AS c_n,
  coalesce(sum(CASE WHEN covariate IS NOT NULL THEN handling END), 0) AS c_y,
  coalesce(sum(CASE WHEN covariate IS NOT NULL THEN handling * handling END), 0) AS c_yy,
  coalesce(sum(CASE WHEN handling IS NOT NULL THEN covariate END), 0) AS c_x,
  coalesce(sum(CASE WHEN handling IS NOT NULL THEN covariate * covariate END), 0) AS c_xx,
  coalesce(sum(handling * covariate), 0) AS c_xy,
  count(value_usd) AS v_n,
  coalesce(sum(value_usd), 0) AS v_sum,
  coalesce(sum(value_usd * value_usd), 0) AS v_ss,
  coalesce(sum(CASE WHEN done = 1 THEN value_nano END), 0)::VARCHAR AS v_exact,
  coalesce(sum(qa_n), 0) AS qa_n, coalesce(sum(qa_pass), 0) AS qa_pass,
  sum(h_review) AS h_review, sum(h_edit) AS h_edit, sum(h_override) AS h_override, sum(h_escalation) AS h_escalation,
  sum(opted_out::INT) AS opt_outs
FROM tt GROUP BY armk`;

const WEEK_SQL = `${TASKS}
SELECT ${week('t_at')} AS week,
  sum(done) AS completed,
  sum(success) AS successes,
  sum(stable) AS stable,
  sum(h_review + h_edit + h_override + h_escalation) AS human_seconds,
  coalesce(sum(qa_n), 0) AS qa_n, coalesce(sum(qa_pass), 0) AS qa_pass
FROM tt WHERE armk IN ('ai', 'none') GROUP BY 1 ORDER BY 1`;

const USERS_SQL = `${TASKS}
SELECT count(*) AS active, count(*) FILTER (WHERE weeks >= 2) AS repeat FROM (
  SELECT "user", count(DISTINCT ${week('t_at')}) AS weeks
  FROM tt WHERE armk <> 'holdout' AND ai_used AND "user" IS NOT NULL AND t_at >= $5
  GROUP BY 1
)`;

const REASONS_SQL = `${TASKS}
SELECT coalesce(opt_reason, '(none given)') AS reason, count(*) AS n
FROM tt WHERE opted_out GROUP BY 1 ORDER BY n DESC, reason`;

/** The use case's calls in one scan: by week, in total (both sets null), and by latency bucket
 * (1 % wide on a log scale), from which the percentiles are read to within half a percent. Calls
 * the gateway refused went nowhere: they are left out, as they would count as calls made. */
const latencyBucket = 'round(ln(greatest(latency_ms, 0.01)) * 100)::INTEGER';
const CALLS_SQL = `
SELECT ${week('time')} AS week, ${latencyBucket} AS bucket,
  count(*) AS calls,
  count(*) FILTER (WHERE status = 'error') AS errors,
  coalesce(sum(cost_effective_nano), 0)::VARCHAR AS spend,
  count(*) FILTER (WHERE pricing_status = 'unpriced') AS unpriced,
  coalesce(sum(input_tokens), 0) AS input_tokens, coalesce(sum(output_tokens), 0) AS output_tokens,
  coalesce(sum(cache_read_tokens), 0) AS cache_read_tokens,
  count(task_id) AS with_task,
  count(*) FILTER (WHERE cache <> 'miss') AS cache_hits,
  coalesce(sum(saved_nano), 0)::VARCHAR AS saved,
  avg(latency_ms) AS latency,
  GROUPING(${week('time')}) AS g_week, GROUPING(${latencyBucket}) AS g_bucket
FROM calls WHERE tenant = $1 AND use_case = $2 AND time >= $3 AND time < $4 AND status <> 'refused'
GROUP BY GROUPING SETS ((${week('time')}), (${latencyBucket}), ())`;

/** The q-quantile of a bucketed distribution (bucket b holds values near e^(b/100)). */
function bucketQuantile(buckets: { b: number; n: number }[], q: number): number | null {
  const total = buckets.reduce((a, x) => a + x.n, 0);
  if (total === 0) return null;
  const rank = q * (total - 1);
  let seen = 0;
  for (const { b, n } of buckets) {
    seen += n;
    if (seen > rank) return Math.exp(b / 100);
  }
  return Math.exp(buckets[buckets.length - 1]!.b / 100);
}

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
type Read = <T>(task: (conn: DuckDBConnection) => Promise<T>) => Promise<T>;

/** The task side and the call side run on two reader connections at once: each query alone
 * leaves DuckDB's threads partly idle. */
export async function outcomeSums(
  read: Read,
  tenant: string,
  useCase: string,
  from: number,
  to: number,
): Promise<OutcomeSums> {
  const base = [tenant, useCase, ts(from), ts(to)];
  const taskSide = read(async (conn) => [
    await queryRows(conn, ARM_SQL, base),
    await queryRows(conn, WEEK_SQL, base),
    await queryRows(conn, USERS_SQL, [...base, ts(Math.max(from, to - 28 * DAY))]),
    await queryRows(conn, REASONS_SQL, base),
  ]);
  const callSide = read((conn) => queryRows(conn, CALLS_SQL, base));
  const [[arms, weeks, users, reasons], callRows] = (await Promise.all([taskSide, callSide])) as [
    [Row[], Row[], Row[], Row[]],
    Row[],
  ];
  const callWeeks = callRows.filter((r) => n(r, 'g_week') === 0);
  const totals = callRows.find((r) => n(r, 'g_week') === 1 && n(r, 'g_bucket') === 1);
  const buckets = callRows
    .filter((r) => n(r, 'g_bucket') === 0 && r['bucket'] !== null)
    .map((r) => ({ b: n(r, 'bucket'), n: n(r, 'calls') }))
    .sort((a, b) => a.b - b.b);
  const byArm = new Map(arms.map((r) => [String(r['armk']), armFrom(r)]));
  const spend = new Map(
    callWeeks.map((r) => [
      n(r, 'week'),
      { spend: BigInt(String(r['spend'])), latency: orNull(r, 'latency') },
    ]),
  );
  // Every week with tasks or calls: the tasks' sums, with the calls' spend and latency beside them.
  const byWeek = new Map(weeks.map((r) => [n(r, 'week'), r]));
  const allWeeks = [...new Set([...byWeek.keys(), ...spend.keys()])].sort((x, y) => x - y);
  const weekRows: WeekRow[] = allWeeks.map((w) => {
    const r = byWeek.get(w);
    return {
      week: w,
      aiCompleted: r ? n(r, 'completed') : 0,
      aiSuccesses: r ? n(r, 'successes') : 0,
      stableSuccesses: r ? n(r, 'stable') : 0,
      humanSeconds: r ? n(r, 'human_seconds') : 0,
      spendNano: spend.get(w)?.spend ?? 0n,
      qaSamples: r ? n(r, 'qa_n') : 0,
      qaPasses: r ? n(r, 'qa_pass') : 0,
      latencyMs: spend.get(w)?.latency ?? null,
    };
  });
  const sum = (k: string) => (totals ? n(totals, k) : 0);
  const sumBig = (k: string) => (totals ? BigInt(String(totals[k])) : 0n);
  const u = users[0]!;
  return {
    from,
    to,
    arms: { ai: byArm.get('ai') ?? emptyArm(), holdout: byArm.get('holdout') ?? emptyArm() },
    unassigned: byArm.get('none') ?? emptyArm(),
    calls: {
      calls: sum('calls'),
      errors: sum('errors'),
      spendNano: sumBig('spend'),
      unpriced: sum('unpriced'),
      inputTokens: sum('input_tokens'),
      outputTokens: sum('output_tokens'),
      cacheReadTokens: sum('cache_read_tokens'),
      withTask: sum('with_task'),
      latency: {
        p50: bucketQuantile(buckets, 0.5),
        p95: bucketQuantile(buckets, 0.95),
        p99: bucketQuantile(buckets, 0.99),
      },
      cacheHits: sum('cache_hits'),
      savedNano: sumBig('saved'),
    },
    weeks: weekRows,
    optOutReasons: reasons.map((r) => ({ reason: String(r['reason']), count: n(r, 'n') })),
    users: { active: n(u, 'active'), repeat: n(u, 'repeat') },
  };
}
