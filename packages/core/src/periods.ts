import type { BudgetPeriod } from './model.js';

export interface PeriodWindow {
  /** A label for the period, e.g. 2026-11, 2026-11-24, 2026-W48 (Monday's date for weeks). */
  label: string;
  /** Epoch ms of the period's start and end in the given time zone. */
  start: number;
  end: number;
}

interface Parts {
  y: number;
  m: number;
  d: number;
}

const fmtCache = new Map<string, Intl.DateTimeFormat>();

/** Zones that are UTC all year: worked out without ICU, whose time-zone data then stays out of
 * memory (5 MB of the node binary's pages, measured in `tally start` under load). */
const UTC_ZONES = new Set(['UTC', 'Etc/UTC', 'Etc/GMT', 'GMT', 'Etc/Universal', 'Etc/Zulu']);

function localParts(t: number, timeZone: string): Parts & { offsetMs: number } {
  if (UTC_ZONES.has(timeZone)) {
    const u = new Date(t);
    return { y: u.getUTCFullYear(), m: u.getUTCMonth() + 1, d: u.getUTCDate(), offsetMs: 0 };
  }
  let f = fmtCache.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    fmtCache.set(timeZone, f);
  }
  const p: Record<string, number> = {};
  for (const x of f.formatToParts(new Date(t))) if (x.type !== 'literal') p[x.type] = Number(x.value);
  const asUtc = Date.UTC(p['year']!, p['month']! - 1, p['day']!, p['hour']!, p['minute']!, p['second']!);
  return { y: p['year']!, m: p['month']!, d: p['day']!, offsetMs: asUtc - Math.floor(t / 1000) * 1000 };
}

/** Epoch ms of the first instant of a calendar date in a time zone: its local midnight, or, where
 * the clocks skip midnight (DST starting at 00:00, as in America/Santiago), the instant they jump
 * to. DST-safe to the hour. */
function localMidnight(y: number, m: number, d: number, timeZone: string): number {
  const guess = Date.UTC(y, m - 1, d);
  const off1 = localParts(guess, timeZone).offsetMs;
  const t = guess - off1;
  const off2 = localParts(t, timeZone).offsetMs;
  const at = guess - off2;
  if (off1 === off2) return at;
  // An offset changes near this midnight: of the two readings, the earlier one that falls on the
  // date itself.
  const onDate = (x: number) => {
    const p = localParts(x, timeZone);
    return p.y === y && p.m === m && p.d === d;
  };
  const [early, late] = at < t ? [at, t] : [t, at];
  return onDate(early) ? early : onDate(late) ? late : at;
}

const pad = (n: number) => String(n).padStart(2, '0');

/** The budget period holding `now`: a day, an ISO week (from Monday) or a month, in a time zone. */
export function periodWindow(period: BudgetPeriod, timeZone: string, now: number): PeriodWindow {
  const { y, m, d } = localParts(now, timeZone);
  if (period === 'month') {
    const ny = m === 12 ? y + 1 : y;
    const nm = m === 12 ? 1 : m + 1;
    return {
      label: `${y}-${pad(m)}`,
      start: localMidnight(y, m, 1, timeZone),
      end: localMidnight(ny, nm, 1, timeZone),
    };
  }
  const day = new Date(Date.UTC(y, m - 1, d));
  if (period === 'week') day.setUTCDate(day.getUTCDate() - ((day.getUTCDay() + 6) % 7));
  const next = new Date(day);
  next.setUTCDate(next.getUTCDate() + (period === 'week' ? 7 : 1));
  const label = `${day.getUTCFullYear()}-${pad(day.getUTCMonth() + 1)}-${pad(day.getUTCDate())}`;
  return {
    label: period === 'week' ? `week-${label}` : label,
    start: localMidnight(day.getUTCFullYear(), day.getUTCMonth() + 1, day.getUTCDate(), timeZone),
    end: localMidnight(next.getUTCFullYear(), next.getUTCMonth() + 1, next.getUTCDate(), timeZone),
  };
}
