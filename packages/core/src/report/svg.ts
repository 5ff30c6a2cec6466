/** Small inline SVG charts for the HTML report: no script, no external file, printable. */

const W = 460;
const H = 200;
const PAD = { left: 48, right: 12, top: 28, bottom: 28 };
const esc = (t: string) =>
  t.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

function nice(max: number): number {
  if (!(max > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

const fmt = (v: number) =>
  Math.abs(v) >= 1000 ? `${(v / 1000).toFixed(1)}k` : Math.abs(v) >= 10 ? v.toFixed(0) : v.toFixed(2);

export function barChart(title: string, bars: { label: string; value: number }[]): string {
  const top = nice(Math.max(0, ...bars.map((b) => b.value)));
  const iw = W - PAD.left - PAD.right;
  const ih = H - PAD.top - PAD.bottom;
  const bw = bars.length > 0 ? iw / bars.length : iw;
  const y = (v: number) => PAD.top + ih - (v / top) * ih;
  const rects = bars
    .map((b, i) => {
      const x = PAD.left + i * bw + bw * 0.15;
      return (
        `<rect x="${x.toFixed(1)}" y="${y(b.value).toFixed(1)}" width="${(bw * 0.7).toFixed(1)}" height="${(PAD.top + ih - y(b.value)).toFixed(1)}" fill="#4f7cac"><title>${esc(b.label)}: ${fmt(b.value)}</title></rect>` +
        `<text x="${(x + bw * 0.35).toFixed(1)}" y="${H - 10}" font-size="10" text-anchor="middle" fill="#5b6475">${esc(b.label)}</text>`
      );
    })
    .join('');
  const grid = [0, 0.5, 1]
    .map(
      (f) =>
        `<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y(top * f)}" y2="${y(top * f)}" stroke="#e3e6eb"/><text x="${PAD.left - 6}" y="${y(top * f) + 3}" font-size="10" text-anchor="end" fill="#5b6475">${fmt(top * f)}</text>`,
    )
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}"><text x="${PAD.left}" y="16" font-size="12" font-weight="600" fill="#1d2330">${esc(title)}</text>${grid}${rects}</svg>`;
}

/** Point estimates with their intervals on one axis around 0 (a forest plot). */
export function intervalChart(
  title: string,
  rows: { label: string; estimate: number; ci: [number, number]; relative: boolean }[],
): string {
  const lo = Math.min(0, ...rows.map((r) => r.ci[0]));
  const hi = Math.max(0, ...rows.map((r) => r.ci[1]));
  const span = hi - lo || 1;
  const left = 150;
  const iw = W - left - PAD.right;
  const x = (v: number) => left + ((v - lo) / span) * iw;
  const rowH = 30;
  const h = PAD.top + rows.length * rowH + 24;
  const label = (v: number, rel: boolean) => (rel ? `${(v * 100).toFixed(1)}%` : v.toFixed(3));
  const items = rows
    .map((r, i) => {
      const cy = PAD.top + i * rowH + rowH / 2;
      const colour = r.ci[0] > 0 || r.ci[1] < 0 ? '#136c3a' : '#7a5a00';
      return (
        `<text x="8" y="${cy + 4}" font-size="11" fill="#1d2330">${esc(r.label.slice(0, 24))}</text>` +
        `<line x1="${x(r.ci[0]).toFixed(1)}" x2="${x(r.ci[1]).toFixed(1)}" y1="${cy}" y2="${cy}" stroke="${colour}" stroke-width="3"/>` +
        `<circle cx="${x(r.estimate).toFixed(1)}" cy="${cy}" r="5" fill="${colour}"><title>${label(r.estimate, r.relative)} (${label(r.ci[0], r.relative)} to ${label(r.ci[1], r.relative)})</title></circle>` +
        `<text x="${x(r.estimate).toFixed(1)}" y="${cy - 9}" font-size="10" text-anchor="middle" fill="#5b6475">${label(r.estimate, r.relative)}</text>`
      );
    })
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${h}" role="img" aria-label="${esc(title)}"><text x="8" y="16" font-size="12" font-weight="600" fill="#1d2330">${esc(title)}</text><line x1="${x(0)}" x2="${x(0)}" y1="${PAD.top - 4}" y2="${h - 20}" stroke="#9aa3b2" stroke-dasharray="3 3"/><text x="${x(0)}" y="${h - 6}" font-size="10" text-anchor="middle" fill="#5b6475">0</text>${items}</svg>`;
}
