// Retention: a server that runs for a year does not fill its disk, and nothing unfinished or unreported is lost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JobStore, MIN_JOB_RETENTION_MS } from '../../src/store';
import { retentionFrom } from '../../src/cli/prune-command';

const DAY = 86_400_000;

async function fill(store: JobStore, n: number, prefix: string, state: 'completed' | 'running' | 'unreported', logBytes = 100): Promise<void> {
  for (let i = 0; i < n; i++) {
    const key = `${prefix}-${i}`;
    await store.addDelivery(`g-${key}`, 'workflow_job', '{}');
    await store.processDelivery(`g-${key}`, [{ key, deliveryGuid: `g-${key}`, repository: 'o/r', installationId: 1, headSha: 'a'.repeat(40), spec: '{}' }]);
    await store.transition(key, 'queued');
    await store.transition(key, 'running');
    if (state === 'running') continue;
    await store.transition(key, 'completed', { result: '{"conclusion":"success"}', log: 'x'.repeat(logBytes) });
    if (state === 'completed') await store.markReported(key);
  }
}

test('logs go after log retention, finished jobs and their deliveries after job retention; running and unreported jobs stay', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'stockade-retention-'));
  let now = Date.UTC(2026, 0, 1);
  const store = await JobStore.open(join(dir, 'db'), { now: () => now });
  try {
    await fill(store, 5, 'old', 'completed');
    await fill(store, 2, 'stuck', 'running');
    await fill(store, 2, 'unreported', 'unreported');
    now += 40 * DAY;
    await fill(store, 3, 'recent', 'completed');
    now += 1 * DAY;
    let c = await store.prune({ jobsMs: 90 * DAY, logsMs: 30 * DAY });
    assert.equal(c.logs, 5, 'the 41-day-old logs go');
    assert.equal(c.jobs, 0);
    assert.equal((await store.get('old-0'))!.log, null);
    assert.equal((await store.get('old-0'))!.result, '{"conclusion":"success"}', 'the result stays');
    assert.ok((await store.get('recent-0'))!.log);
    now += 60 * DAY;
    c = await store.prune({ jobsMs: 90 * DAY, logsMs: 30 * DAY });
    assert.equal(c.jobs, 5);
    assert.equal(c.deliveries, 5, 'their deliveries go with them');
    assert.equal((await store.get('old-0')), undefined);
    assert.ok(!(await store.hasDelivery('g-old-0')));
    assert.ok((await store.get('stuck-0')) && (await store.get('unreported-0'))!.log, 'a running job and an unreported one are never pruned');
    assert.ok(await store.hasDelivery('g-stuck-0'));
    assert.ok((await store.get('recent-0')), 'younger than the job retention');
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('past the size limit the oldest logs go first, then jobs older than the replay window, never younger ones', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'stockade-retention-'));
  let now = Date.UTC(2026, 0, 1);
  const store = await JobStore.open(join(dir, 'db'), { now: () => now });
  try {
    await fill(store, 300, 'a', 'completed', 20_000);
    now += 20 * DAY;
    await fill(store, 300, 'b', 'completed', 20_000);
    const before = await store.bytes();
    assert.ok(before > 10 * 1024 ** 2, `${before}`);
    const c = await store.prune({ jobsMs: 365 * DAY, logsMs: 365 * DAY, maxBytes: 2 * 1024 ** 2 });
    assert.ok(c.bytesAfter <= 2 * 1024 ** 2, JSON.stringify(c));
    assert.ok(c.logs >= 500, JSON.stringify(c));
    assert.equal((await store.get('b-299'))!.result, '{"conclusion":"success"}', 'a job inside the replay window stays, its log may go');
    assert.ok(await store.hasDelivery('g-b-0'), 'a delivery younger than 14 days stays: it recognises a redelivery');
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('retention settings: shorter than the replay window is refused; stockade prune runs on a database and says what it removed', async () => {
  assert.throws(() => retentionFrom({ 'job-retention': '3d' }), /at least 14 days/);
  assert.equal(retentionFrom({}).jobsMs, 90 * DAY);
  assert.equal(retentionFrom({ 'max-database-size': 'off' }).maxBytes, undefined);
  assert.ok(MIN_JOB_RETENTION_MS >= 14 * DAY);
  const dir = mkdtempSync(join(tmpdir(), 'stockade-prune-cli-'));
  try {
    const store = await JobStore.open(join(dir, 'stockade.db'), { now: () => Date.now() - 100 * DAY });
    await fill(store, 4, 'x', 'completed');
    await store.close();
    const r = spawnSync('node', [join(process.cwd(), 'dist/cli.js'), 'prune', '--state-dir', dir, '--json'], { encoding: 'utf8', env: { ...process.env, STOCKADE_STATE_DIR: join(dir, 'host') } });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { database: { jobs: number; deliveries: number } };
    assert.equal(out.database.jobs, 4);
    assert.equal(out.database.deliveries, 4);
    const bad = spawnSync('node', [join(process.cwd(), 'dist/cli.js'), 'prune', '--job-retention', '1d', '--state-dir', dir], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
