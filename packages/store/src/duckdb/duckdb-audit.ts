import type { DuckDBConnection } from '@duckdb/node-api';
import type { AuditSums } from '@tally/core';
import { queryRows } from './duckdb-sql.js';
import { ts } from './duckdb-values.js';

/** The queries behind the audit's evidence, as they run ($1 tenant, $2 from, $3 to). They are
 * returned with the findings, so a reader can run them again. Calls the gateway refused went
 * nowhere, and would read as calls answered in no tokens: they are left out. A failed call has no
 * output either: only answered calls count as short answers. */
export const AUDIT_SQL = {
  calls_by_use_case: `SELECT use_case, count(*) AS calls,
  coalesce(sum(cost_effective_nano::HUGEINT), 0)::VARCHAR AS spend_nano,
  count(*) FILTER (WHERE status = 'ok' AND output_tokens <= 3) AS tiny_outputs,
  count(DISTINCT input_tokens) AS distinct_input_sizes,
  coalesce(sum(input_tokens), 0) AS input_tokens, coalesce(sum(output_tokens), 0) AS output_tokens
FROM calls WHERE tenant = $1 AND time >= $2 AND time < $3 AND use_case IS NOT NULL AND status <> 'refused'
GROUP BY use_case ORDER BY use_case`,
  outcomes_by_use_case: `SELECT use_case,
  count(*) FILTER (WHERE type = 'task.completed') AS completed,
  count(*) FILTER (WHERE type = 'task.quality' AND time >= $3 - INTERVAL 28 DAY) AS recent_quality
FROM task_events WHERE tenant = $1 AND time >= $2 AND time < $3
GROUP BY use_case ORDER BY use_case`,
  shared_tasks: `SELECT list_sort(list(DISTINCT use_case)) AS use_cases, count(*) AS tasks,
  coalesce(sum(value_nano::HUGEINT), 0)::VARCHAR AS value_nano
FROM (
  SELECT task_id, use_case, max(value_nano) FILTER (WHERE type = 'task.completed') AS value_nano
  FROM task_events WHERE tenant = $1 AND time >= $2 AND time < $3
  GROUP BY task_id, use_case
) WHERE task_id IN (
  SELECT task_id FROM task_events WHERE tenant = $1 AND time >= $2 AND time < $3
  GROUP BY task_id HAVING count(DISTINCT use_case) > 1
)
GROUP BY task_id`,
  spend_by_project: `SELECT project, count(*) AS calls, coalesce(sum(cost_effective_nano::HUGEINT), 0)::VARCHAR AS spend_nano
FROM calls WHERE tenant = $1 AND time >= $2 AND time < $3 AND project IS NOT NULL AND status <> 'refused'
GROUP BY project ORDER BY project`,
} as const;

export async function auditSums(
  conn: DuckDBConnection,
  tenant: string,
  from: number,
  to: number,
): Promise<AuditSums> {
  const v = [tenant, ts(from), ts(to)];
  const calls = await queryRows(conn, AUDIT_SQL.calls_by_use_case, v);
  const outcomes = await queryRows(conn, AUDIT_SQL.outcomes_by_use_case, v);
  // Shared tasks are grouped again here by the set of use cases that claim them.
  const shared = await queryRows(conn, AUDIT_SQL.shared_tasks, v);
  const projects = await queryRows(conn, AUDIT_SQL.spend_by_project, v);
  const claims = new Map<string, { useCases: string[]; tasks: number; valueNano: bigint }>();
  for (const r of shared) {
    const ucs = r['use_cases'] as { items?: unknown[] } | unknown[] as unknown;
    const list = (Array.isArray(ucs) ? ucs : ((ucs as { items: unknown[] }).items ?? [])).map(String);
    const k = list.join('|');
    const c = claims.get(k) ?? { useCases: list, tasks: 0, valueNano: 0n };
    c.tasks += Number(r['tasks'] ?? 0) > 0 ? 1 : 0;
    c.valueNano += BigInt(String(r['value_nano']));
    claims.set(k, c);
  }
  return {
    from,
    to,
    calls: calls.map((r) => ({
      useCase: String(r['use_case']),
      calls: Number(r['calls']),
      spendNano: BigInt(String(r['spend_nano'])),
      tinyOutputs: Number(r['tiny_outputs']),
      distinctInputSizes: Number(r['distinct_input_sizes']),
      inputTokens: Number(r['input_tokens']),
      outputTokens: Number(r['output_tokens']),
    })),
    outcomes: outcomes.map((r) => ({
      useCase: String(r['use_case']),
      completed: Number(r['completed']),
      recentQuality: Number(r['recent_quality']),
    })),
    sharedTasks: [...claims.values()],
    projects: projects.map((r) => ({
      project: String(r['project']),
      calls: Number(r['calls']),
      spendNano: BigInt(String(r['spend_nano'])),
    })),
    queries: { ...AUDIT_SQL },
  };
}
