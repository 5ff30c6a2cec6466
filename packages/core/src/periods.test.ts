import { describe, expect, it } from 'vitest';
import { periodWindow } from './periods.js';

const iso = (t: number) => new Date(t).toISOString();

describe('periodWindow', () => {
  it('months, days and ISO weeks in UTC', () => {
    const now = Date.parse('2026-11-24T17:00:00Z');
    const m = periodWindow('month', 'UTC', now);
    expect([m.label, iso(m.start), iso(m.end)]).toEqual([
      '2026-11',
      '2026-11-01T00:00:00.000Z',
      '2026-12-01T00:00:00.000Z',
    ]);
    const d = periodWindow('day', 'UTC', now);
    expect([d.label, iso(d.start), iso(d.end)]).toEqual([
      '2026-11-24',
      '2026-11-24T00:00:00.000Z',
      '2026-11-25T00:00:00.000Z',
    ]);
    const w = periodWindow('week', 'UTC', now);
    expect([w.label, iso(w.start), iso(w.end)]).toEqual([
      'week-2026-11-23',
      '2026-11-23T00:00:00.000Z',
      '2026-11-30T00:00:00.000Z',
    ]);
    const dec = periodWindow('month', 'UTC', Date.parse('2026-12-31T23:59:59Z'));
    expect(iso(dec.end)).toBe('2027-01-01T00:00:00.000Z');
  });

  it('works out UTC without ICU exactly as ICU does', () => {
    // 'Etc/GMT+0' is UTC too, but not one of the names the fast path knows: ICU answers for it.
    let seed = 7;
    const next = () => {
      seed = (seed * 48271) % 2147483647;
      return seed / 2147483647;
    };
    const times = [
      Date.UTC(2024, 1, 29, 23, 59, 59, 999),
      Date.UTC(2026, 11, 31, 23, 59, 59),
      Date.UTC(2027, 0, 1),
    ];
    for (let i = 0; i < 500; i++)
      times.push(Math.floor(Date.UTC(1995, 0, 1) + next() * 60 * 365 * 86_400_000));
    for (const t of times) {
      for (const period of ['day', 'week', 'month'] as const) {
        const icu = periodWindow(period, 'Etc/GMT+0', t);
        for (const zone of ['UTC', 'Etc/UTC', 'GMT']) expect(periodWindow(period, zone, t)).toEqual(icu);
      }
    }
  });

  it('holds now, and starts at the first instant of its day, every two hours of a year in zones whose clocks skip or repeat midnight', () => {
    const date = (t: number, zone: string) =>
      new Intl.DateTimeFormat('en-CA', {
        timeZone: zone,
        year: 'numeric',
        month: '2-digit',
        day: '2-digit',
      }).format(t);
    const zones = ['America/Santiago', 'America/Havana', 'Atlantic/Azores', 'Europe/London'];
    const wrong: string[] = [];
    for (const zone of zones) {
      for (let t = Date.UTC(2026, 0, 1); t < Date.UTC(2027, 0, 1); t += 2 * 3_600_000) {
        const w = periodWindow('day', zone, t);
        if (
          !(w.start <= t && t < w.end) ||
          date(w.start, zone) !== w.label ||
          date(w.start - 1, zone) >= w.label
        )
          wrong.push(`${zone} ${new Date(t).toISOString()} ${w.label} ${new Date(w.start).toISOString()}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('follows the time zone, across a DST change', () => {
    // 03:00 UTC on 1 Nov is still 31 Oct in New York.
    const ny = periodWindow('month', 'America/New_York', Date.parse('2026-11-01T03:00:00Z'));
    expect(ny.label).toBe('2026-10');
    expect(iso(ny.start)).toBe('2026-10-01T04:00:00.000Z');
    // November starts at EDT (UTC-4) and ends at EST (UTC-5).
    const nov = periodWindow('month', 'America/New_York', Date.parse('2026-11-15T12:00:00Z'));
    expect([iso(nov.start), iso(nov.end)]).toEqual(['2026-11-01T04:00:00.000Z', '2026-12-01T05:00:00.000Z']);
    const kolkata = periodWindow('day', 'Asia/Kolkata', Date.parse('2026-11-24T20:00:00Z'));
    expect([kolkata.label, iso(kolkata.start)]).toEqual(['2026-11-25', '2026-11-24T18:30:00.000Z']);
  });
});
