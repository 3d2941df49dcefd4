// The minutes quotas and the burst rule, table-tested (queue/minutes-quota.ts), each with the invariant it keeps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { burstAllows, exhaustedMinutes, type MinutesLimit, type MinutesUsed } from '../../src/queue';

const used = (dayMin: number, monthMin: number): MinutesUsed => ({ dayMs: dayMin * 60_000, monthMs: monthMin * 60_000, dayResets: '2026-12-02T00:00:00.000Z', monthResets: '2027-01-01T00:00:00.000Z' });

test('minutes quotas: repository before organisation, day before month, refused from the moment usage reaches the limit', () => {
  const cases: Array<{ about: string; limits: Record<string, MinutesLimit>; usage: Record<string, MinutesUsed>; refused?: string; message?: RegExp }> = [
    { about: 'no limit anywhere: never refused, however much is used', limits: {}, usage: { 'repo:o/r': used(1e6, 1e7), 'org:o': used(1e6, 1e7) } },
    { about: 'below the repository\'s daily limit', limits: { 'repo:o/r': { minutesPerDay: 60 } }, usage: { 'repo:o/r': used(59.9, 59.9) } },
    { about: 'exactly at the daily limit: refused', limits: { 'repo:o/r': { minutesPerDay: 60 } }, usage: { 'repo:o/r': used(60, 60) }, refused: 'repo:o/r', message: /used 60\.0 of 60 job-minutes per day; it resets at 2026-12-02T00:00:00\.000Z/ },
    { about: 'the month counts when the day does not', limits: { 'repo:o/r': { minutesPerDay: 600, minutesPerMonth: 100 } }, usage: { 'repo:o/r': used(10, 100) }, refused: 'repo:o/r', message: /per month; it resets at 2027-01-01/ },
    { about: 'the organisation\'s quota holds for a repository without one', limits: { 'org:o': { minutesPerDay: 30 } }, usage: { 'org:o': used(31, 31) }, refused: 'org:o' },
    { about: 'both used up: the repository is named first', limits: { 'repo:o/r': { minutesPerDay: 1 }, 'org:o': { minutesPerDay: 1 } }, usage: { 'repo:o/r': used(2, 2), 'org:o': used(5, 5) }, refused: 'repo:o/r' },
    { about: 'another organisation\'s usage never counts', limits: { 'org:o': { minutesPerDay: 10 } }, usage: { 'org:other': used(99, 99) } },
  ];
  for (const c of cases) {
    const r = exhaustedMinutes('o/r', { limit: (s) => c.limits[s] ?? {}, used: (s) => c.usage[s] ?? used(0, 0) });
    assert.equal(r?.scope, c.refused, c.about);
    if (c.message) assert.match(r!.message, c.message, c.about);
  }
});

test('burst: the N-th job of a minute is admitted, the N+1-th waits', () => {
  for (const [admitted, per, ok] of [[0, 1, true], [0, 120, true], [119, 120, true], [120, 120, false], [500, 120, false]] as const) {
    assert.equal(burstAllows(admitted, per), ok, `${admitted} admitted, ${per} per minute`);
  }
});
