import type { Finding } from '../metrics/audit.js';
import type { MetricValue, Scorecard } from '../metrics/scorecard.js';
import { barChart, intervalChart } from './svg.js';

export interface ReportInput {
  name: string;
  scorecard: Scorecard;
  findings: Finding[];
}

const pct = (v: number | null | undefined, digits = 1) => (v == null ? '–' : `${(v * 100).toFixed(digits)}%`);
const money = (v: number | string | null | undefined) =>
  v == null
    ? '–'
    : `$${Number(v).toLocaleString('en-US', { maximumFractionDigits: 2, minimumFractionDigits: 2 })}`;

function show(m: MetricValue): string {
  if (m.value === null) return '–';
  switch (m.unit) {
    case 'ratio':
      return m.key === 'unit_economics' ? Number(m.value).toFixed(2) : pct(Number(m.value));
    case 'usd':
      return money(m.value);
    case 'seconds':
      return `${Number(m.value).toFixed(0)} s`;
    case 'ms':
      return `${Number(m.value).toFixed(0)} ms`;
    default:
      return String(m.value);
  }
}

function liftText(m: MetricValue): string {
  const l = m.comparison?.lift;
  if (!l) return m.comparison?.note ?? '';
  const f = (x: number) =>
    l.difference === 'relative' ? pct(x) : m.unit === 'ratio' ? `${(x * 100).toFixed(1)} pts` : x.toFixed(2);
  return `${f(l.estimate)} (95% CI ${f(l.ci[0])} to ${f(l.ci[1])}; p = ${l.pValue < 0.001 ? '< 0.001' : l.pValue.toFixed(3)})`;
}

/** What to do next: the gate's failing checks, the flags' fixes, the review that is due. */
export function nextSteps(s: Scorecard, findings: Finding[]): string[] {
  const steps: string[] = [];
  if (s.gate && !s.gate.passed) {
    for (const c of s.gate.checks.filter((c) => !c.passed))
      steps.push(`To reach ${s.gate.to}: ${c.check.replaceAll('_', ' ')} — ${c.detail}.`);
  } else if (s.gate) steps.push(`The gate to ${s.gate.to} is passed: the move can be made.`);
  for (const f of findings.filter((f) => f.severity === 'high')) steps.push(f.fix);
  if (s.review.due) steps.push(`A ${s.review.cadence} review is due.`);
  else if (s.review.cadence !== 'none')
    steps.push(`Next ${s.review.cadence} review by ${s.review.next.slice(0, 10)}.`);
  return steps;
}

function headline(s: Scorecard): string {
  const r = s.roi;
  if (r.status !== 'ok') return `ROI cannot be stated yet: ${r.reason}.`;
  return `ROI ${pct(r.roi, 0)} a month (95% CI ${pct(r.ci![0], 0)} to ${pct(r.ci![1], 0)}), evidence grade ${s.evidence.grade}: ${money(r.monthlyBenefitUsd)} of benefit against ${money(r.monthlyCostUsd)} of all-in cost.`;
}

const BUCKETS: [keyof Scorecard['buckets'], string][] = [
  ['outcomes', 'Outcomes'],
  ['adoption', 'Adoption'],
  ['quality', 'Quality'],
  ['speed', 'Speed'],
  ['cost', 'Cost'],
];

export function renderMarkdown({ name, scorecard: s, findings }: ReportInput): string {
  const lines: string[] = [];
  lines.push(`# ${name}`, '');
  lines.push(
    `${s.period.from.slice(0, 10)} to ${s.period.to.slice(0, 10)} · stage **${s.stage}** · evidence grade **${s.evidence.grade}**`,
    '',
  );
  lines.push(`**${headline(s)}**`, '');
  lines.push(...s.evidence.reasons.map((r) => `- ${r}`), '');
  if (s.roi.status === 'ok') {
    lines.push(
      `Payback: ${s.roi.paybackMonths === null ? 'not reached at the current net benefit' : `${s.roi.paybackMonths.toFixed(1)} months`} · break-even volume: ${s.roi.breakEvenVolume === null ? '–' : `${Math.ceil(s.roi.breakEvenVolume)} tasks a month`} · cost per outcome at 10× volume: ${money(s.roi.costPerOutcomeAt10x)}`,
      '',
    );
  }
  lines.push(
    '## Scorecard',
    '',
    '| bucket | metric | value | baseline | AI vs holdout | status |',
    '|---|---|---|---|---|---|',
  );
  for (const [key, title] of BUCKETS) {
    for (const m of s.buckets[key]) {
      const base =
        m.baseline === null
          ? ''
          : m.unit === 'usd'
            ? money(m.baseline)
            : m.unit === 'ratio'
              ? pct(Number(m.baseline))
              : `${m.baseline}`;
      lines.push(`| ${title} | ${m.label} | ${show(m)} | ${base} | ${liftText(m)} | ${m.status} |`);
    }
  }
  lines.push(
    '',
    `All-in cost ${money(s.cost.all_in_usd)}: LLM ${money(s.cost.llm_usd)}, ledger ${money(s.cost.ledger_usd)}, human review ${money(s.cost.human_usd)}.`,
    '',
  );
  lines.push('## Red flags', '');
  if (findings.length === 0) lines.push('None.');
  for (const f of findings) lines.push(`- **${f.severity}** ${f.message} *Fix:* ${f.fix}`);
  lines.push('', '## Next steps', '', ...nextSteps(s, findings).map((x) => `1. ${x}`), '');
  return lines.join('\n');
}

const esc = (t: string) =>
  t.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

export function renderHtml({ name, scorecard: s, findings }: ReportInput): string {
  const rows = BUCKETS.flatMap(([key, title]) =>
    s.buckets[key].map(
      (m) =>
        `<tr><td>${title}</td><td>${esc(m.label)}</td><td class="n">${esc(show(m))}</td><td>${esc(liftText(m))}</td><td><span class="s ${m.status}">${m.status}</span></td></tr>`,
    ),
  );
  const lifts = (['handling_seconds', 'success_rate', 'qa_pass_rate'] as const)
    .map((k) =>
      Object.values(s.buckets)
        .flat()
        .find((m) => m.key === k),
    )
    .filter((m): m is MetricValue => Boolean(m?.comparison?.lift))
    .map((m) => ({
      label: m.label,
      estimate: m.comparison!.lift!.estimate,
      ci: m.comparison!.lift!.ci,
      relative: m.comparison!.lift!.difference === 'relative',
    }));
  const charts = [
    barChart(
      'Completed AI tasks a week',
      s.weeks.map((w) => ({ label: w.week.slice(5), value: w.completed })),
    ),
    barChart(
      'LLM cost per outcome a week (USD)',
      s.weeks.map((w) => ({
        label: w.week.slice(5),
        value: w.llm_cost_per_outcome_usd === null ? 0 : Number(w.llm_cost_per_outcome_usd),
      })),
    ),
    lifts.length > 0 ? intervalChart('Lift, AI arm against holdout (95% CI)', lifts) : '',
    s.roi.status === 'ok'
      ? intervalChart('ROI a month (95% CI)', [
          { label: 'ROI', estimate: s.roi.roi!, ci: s.roi.ci!, relative: true },
        ])
      : '',
  ].filter(Boolean);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(name)} — Tally report</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;max-width:980px;margin:24px auto;padding:0 16px;color:#1d2330}
h1{margin:0 0 4px}h2{margin:28px 0 8px;font-size:17px}.meta{color:#5b6475}
.headline{font-size:17px;font-weight:600;margin:14px 0}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #e3e6eb;padding:5px 8px;text-align:left;vertical-align:top}td.n{text-align:right;white-space:nowrap}
.s{padding:1px 7px;border-radius:9px;font-size:12px}.good{background:#d9f2e3;color:#136c3a}.warn{background:#fdf0cf;color:#7a5a00}
.bad{background:#fbdcdc;color:#9b1c1c}.unknown{background:#eceef2;color:#5b6475}.charts{display:grid;grid-template-columns:1fr 1fr;gap:16px}
.high{color:#9b1c1c;font-weight:600}.medium{color:#7a5a00;font-weight:600}.low{color:#5b6475}
</style></head><body>
<h1>${esc(name)}</h1>
<div class="meta">${s.period.from.slice(0, 10)} to ${s.period.to.slice(0, 10)} · stage ${s.stage} · evidence grade <b>${s.evidence.grade}</b></div>
<p class="headline">${esc(headline(s))}</p>
<ul>${s.evidence.reasons.map((r) => `<li>${esc(r)}</li>`).join('')}</ul>
${s.opportunity ? `<p>Opportunity: ${money(s.opportunity.monthly_usd)} a month (${money(s.opportunity.current_usd)} today less ${money(s.opportunity.projected_ai_usd)} to run the AI, ${s.opportunity.basis}).</p>` : ''}
<div class="charts">${charts.join('\n')}</div>
<h2>Scorecard</h2>
<table><tr><th>bucket</th><th>metric</th><th>value</th><th>AI vs holdout</th><th>status</th></tr>${rows.join('')}</table>
<p>All-in cost ${money(s.cost.all_in_usd)}: LLM ${money(s.cost.llm_usd)}, ledger ${money(s.cost.ledger_usd)}, human review ${money(s.cost.human_usd)}.</p>
<h2>Red flags</h2>
${findings.length === 0 ? '<p>None.</p>' : `<ul>${findings.map((f) => `<li><span class="${f.severity}">${f.severity}</span> ${esc(f.message)} <i>Fix:</i> ${esc(f.fix)}</li>`).join('')}</ul>`}
<h2>Next steps</h2>
<ol>${nextSteps(s, findings)
    .map((x) => `<li>${esc(x)}</li>`)
    .join('')}</ol>
</body></html>
`;
}
