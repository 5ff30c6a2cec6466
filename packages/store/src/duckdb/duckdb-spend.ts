import { checkTimeZone } from '../query-checks.js';
import type { SpendGroup, SpendInterval, SpendQuery, SpendRow } from '../store.js';
import { callWhere, tagValue } from './duckdb-calls.js';
import { Params } from './duckdb-sql.js';
import { big, num, type Row, strOrNull } from './duckdb-values.js';

/** The column each spend group reads. A call's model is the one it asked for, which is what the
 * application and its owner know it by (a router may serve another). */
const GROUP_COLUMNS: Readonly<Record<SpendGroup, string>> = {
  project: 'project',
  team: 'team',
  user: '"user"',
  key: 'key_id',
  model: 'model_requested',
  provider: 'provider',
  use_case: 'use_case',
};

const UNITS: Readonly<Record<SpendInterval, string>> = {
  hour: 'hour',
  day: 'day',
  week: 'week',
  month: 'month',
};

/** Every UTC offset in use is a multiple of 15 minutes, so every local hour, day, week and month
 * starts on a 15-minute UTC slot. Summing per slot first, with integer arithmetic, and only then
 * converting the few slot starts to local time is ~6x faster than converting each row. */
const SLOT_MS = 900_000;

const MEASURES: ReadonlyArray<readonly [name: string, expr: string]> = [
  // A refused call went nowhere and costs nothing: it is counted apart, not as a call.
  ['calls', "count(*) FILTER (WHERE status <> 'refused')"],
  ['refused_calls', "count(*) FILTER (WHERE status = 'refused')"],
  ['cost_list_nano', 'COALESCE(sum(cost_list_nano), 0)'],
  ['cost_effective_nano', 'COALESCE(sum(cost_effective_nano), 0)'],
  ['unpriced_calls', "count(*) FILTER (WHERE pricing_status = 'unpriced')"],
  ['estimated_calls', "count(*) FILTER (WHERE pricing_status = 'estimated')"],
  ['input_tokens', 'COALESCE(sum(input_tokens), 0)'],
  ['output_tokens', 'COALESCE(sum(output_tokens), 0)'],
  ['cache_read_tokens', 'COALESCE(sum(cache_read_tokens), 0)'],
  ['saved_nano', 'COALESCE(sum(saved_nano), 0)'],
];

/** Spend per group and/or time bucket; sums stay in SQL (HUGEINT), rows ordered by bucket, then
 * cost descending. No calls, no rows. */
export function spendSql(q: SpendQuery): { sql: string; values: Params['values'] } {
  const p = new Params();
  const where = callWhere(p, q).join(' AND ');
  const group =
    q.groupByTag !== undefined
      ? tagValue(p, q.groupByTag)
      : q.groupBy === undefined
        ? null
        : GROUP_COLUMNS[q.groupBy];
  if (group === undefined) throw new Error(`unknown spend group ${String(q.groupBy)}`);
  const order = group === null ? 'cost_effective_nano DESC' : 'cost_effective_nano DESC, grp NULLS LAST';

  if (q.interval === undefined) {
    const cols = [
      ...(group === null ? [] : [`${group} AS grp`]),
      ...MEASURES.map(([n, e]) => `${e} AS ${n}`),
    ];
    const groupBy = group === null ? '' : 'GROUP BY grp';
    return {
      sql: `SELECT ${cols.join(', ')} FROM calls WHERE ${where} ${groupBy} HAVING count(*) > 0 ORDER BY ${order}`,
      values: p.values,
    };
  }

  const unit = UNITS[q.interval];
  if (unit === undefined) throw new Error(`unknown spend interval ${String(q.interval)}`);
  const tz = p.add(checkTimeZone(q.timeZone ?? 'UTC'));
  const slotCols = [
    ...(group === null ? [] : [`${group} AS grp`]),
    `epoch_ms(time) // ${SLOT_MS} AS slot`,
    ...MEASURES.map(([n, e]) => `${e} AS s_${n}`),
  ];
  const localStart = `timezone(${tz}, make_timestamptz(slot * ${SLOT_MS * 1000}))`;
  const bucket = `epoch_ms(timezone(${tz}, date_trunc('${unit}', ${localStart})))`;
  const cols = [
    ...(group === null ? [] : ['grp']),
    `${bucket} AS bucket`,
    ...MEASURES.map(([n]) => `sum(s_${n}) AS ${n}`),
  ];
  return {
    sql: `WITH slots AS (SELECT ${slotCols.join(', ')} FROM calls WHERE ${where} GROUP BY ALL)
      SELECT ${cols.join(', ')} FROM slots GROUP BY ALL ORDER BY bucket, ${order}`,
    values: p.values,
  };
}

export function spendFromRow(r: Row, q: SpendQuery): SpendRow {
  const row: SpendRow = {
    calls: num(r, 'calls'),
    cost_list_nano: big(r, 'cost_list_nano'),
    cost_effective_nano: big(r, 'cost_effective_nano'),
    unpriced_calls: num(r, 'unpriced_calls'),
    refused_calls: num(r, 'refused_calls'),
    estimated_calls: num(r, 'estimated_calls'),
    input_tokens: num(r, 'input_tokens'),
    output_tokens: num(r, 'output_tokens'),
    cache_read_tokens: num(r, 'cache_read_tokens'),
    saved_nano: big(r, 'saved_nano'),
  };
  if (q.groupBy !== undefined || q.groupByTag !== undefined) row.group = strOrNull(r, 'grp');
  if (q.interval !== undefined) row.bucket = num(r, 'bucket');
  return row;
}
