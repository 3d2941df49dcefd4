// PostgreSQL unreachable for 30 s under a running fleet (issue 16): jobs wait, nothing is lost, no
// check run is duplicated, and no host goes down.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { JobStore } from '../../src/store';
import { startPostgres, type Postgres } from '../store/postgres';
import { endWorld, setDiagnostics, sleep, until, type World } from './helpers';
import { addRepo, deliverToFleet, FLEET_REPOS, fleetJob, fleetKey, fleetWorld, startFleet, type FleetHost } from './fleet-harness';

let pg: Postgres;
let w: World;
let hosts: FleetHost[] = [];

before(async () => {
  pg = await startPostgres();
  const world = await fleetWorld(['sleep 3', 'echo done'], 100);
  w = world.w;
  // One repository whose job outlasts the drain.
  addRepo(w, 'orgb/slow', { '.github/workflows/ci.yml': 'on: push\njobs:\n  one:\n    runs-on: [self-hosted, stockade]\n    steps:\n      - run: sleep 15\n      - run: echo done\n' });
  hosts = await startFleet(w, world.config, pg.url, 2, ['--concurrency', '2', '--lease-seconds', '6', '--drain-seconds', '2']);
  setDiagnostics(() => hosts.map((h) => `\n${h.name}: ${h.proc.stderr().slice(-2000)}`).join(''));
});

after(async () => {
  hosts[1]?.proc.child.kill('SIGTERM');
  if (hosts[1]) rmSync(hosts[1].state, { recursive: true, force: true });
  await endWorld(w, hosts[0]?.proc, hosts[0]?.state ?? '/nonexistent');
  pg?.destroy();
}, { timeout: 120_000 });

test('PostgreSQL down for 30 s with jobs running and deliveries arriving: every job runs once and succeeds, one check run each', async () => {
  const jobs = Array.from({ length: 16 }, (_, i) => ({ id: 81_000 + i, repo: FLEET_REPOS[i % FLEET_REPOS.length]! }));
  for (const [i, j] of jobs.slice(0, 8).entries()) await deliverToFleet(w, hosts, i, fleetJob(j.id, j.repo));
  const watch = await JobStore.open(pg.url);
  await until('jobs running on both hosts', async () => (await watch.db.all<{ o: string }>(`SELECT DISTINCT substr(lease_owner, 1, 5) AS o FROM jobs WHERE state = 'running'`)).length === 2, 120_000);
  await watch.close();
  pg.stop();
  const downAt = Date.now();
  // Deliveries during the outage: the hosts answer 5xx, the load balancer (and GitHub) try again.
  const late = Promise.all(jobs.slice(8).map((j, i) => deliverToFleet(w, hosts, i, fleetJob(j.id, j.repo))));
  await sleep(30_000);
  assert.ok(hosts.every((h) => h.proc.child.exitCode === null), 'no host went down with the database');
  pg.start();
  const upAfter = Date.now() - downAt;
  await late;
  const keys = jobs.map((j) => fleetKey(j.id, j.repo));
  const runsOf = (key: string) => [...w.fake.checkRuns.values()].filter((c) => c.fields.external_id === key);
  await until('every job completed', () => keys.every((k) => runsOf(k).some((c) => c.fields.status === 'completed')), 300_000);
  await sleep(5000);
  assert.deepEqual(keys.map((k) => runsOf(k).length).filter((n) => n !== 1), [], 'exactly one check run per job');
  const conclusions = keys.map((k) => runsOf(k)[0]!.fields.conclusion);
  assert.deepEqual(conclusions.filter((c) => c !== 'success'), [], `every job succeeded: ${JSON.stringify(keys.map((k) => [k, runsOf(k)[0]!.fields.conclusion, (runsOf(k)[0]!.fields.output as { summary?: string } | undefined)?.summary?.slice(0, 200)]))}`);
  const s = await JobStore.open(pg.url);
  try {
    assert.deepEqual([...(await s.leases.runningCounts())].filter(([, n]) => n !== 0), []);
    assert.equal((await s.counts()).completed, 16);
  } finally {
    await s.close();
  }
  process.stdout.write(`# outage: PostgreSQL down ${(upAfter / 1000).toFixed(1)} s; 16 jobs, 16 check runs, all success\n`);
});

/** Delivers job `id` of orgb/slow (it sleeps 15 s) and waits until a host runs it: its key, a store to watch it with, and its lease owner. */
async function slowJobRunning(id: number): Promise<{ key: string; watch: JobStore; owner: string }> {
  const key = fleetKey(id, 'orgb/slow');
  await deliverToFleet(w, hosts, 0, fleetJob(id, 'orgb/slow'));
  const watch = await JobStore.open(pg.url);
  const owner = await until('the slow job runs', async () => { const r = await watch.get(key); return r?.state === 'running' && r.leaseOwner ? r.leaseOwner : undefined; }, 120_000);
  return { key, watch, owner };
}

test('GitHub cancels a run whose job runs on one host, the delivery lands on the other: the job is cancelled where it runs', async () => {
  const { key, watch, owner } = await slowJobRunning(83_000);
  try {
    const other = hosts.findIndex((x) => !owner.startsWith(`${x.name}/`));
    const cancelled = fleetJob(83_000, 'orgb/slow') as { action: string; workflow_job: Record<string, unknown> };
    cancelled.action = 'completed';
    Object.assign(cancelled.workflow_job, { status: 'completed', conclusion: 'cancelled' });
    const t0 = Date.now();
    await deliverToFleet(w, [hosts[other]!], 0, cancelled);
    const run = await until('the check run completed', () => [...w.fake.checkRuns.values()].find((c) => c.fields.external_id === key && c.fields.status === 'completed'), 60_000);
    assert.equal(run.fields.conclusion, 'cancelled');
    assert.ok(Date.now() - t0 < 12_000, `cancelled within ${Date.now() - t0} ms (the job sleeps 15 s)`);
    assert.equal((await watch.get(key))!.state, 'cancelled');
  } finally {
    await watch.close();
  }
});

test('SIGTERM drains: no more claims, the running job past the grace period is handed back and finished by the other host; the host exits 0 and leaves the fleet view', async () => {
  const { key, watch, owner } = await slowJobRunning(82_000);
  try {
    const first = (await watch.get(key))!.attempt;
    const h = hosts.find((x) => owner.startsWith(`${x.name}/`))!;
    const other = hosts.find((x) => x !== h)!;
    h.down = true;
    h.proc.child.kill('SIGTERM');
    const exit = await new Promise<number | null>((r) => (h.proc.child.exitCode !== null ? r(h.proc.child.exitCode) : h.proc.child.once('exit', (c) => r(c))));
    assert.equal(exit, 0, 'the drained host exits cleanly');
    assert.match(h.proc.stderr(), /drain: 2 s passed; the jobs still running are handed back/);
    const handedBackAt = Date.now();
    const runsOf = () => [...w.fake.checkRuns.values()].filter((c) => c.fields.external_id === key);
    const done = await until('the job completed on the other host', () => runsOf().find((c) => c.fields.status === 'completed'), 120_000);
    assert.equal(done.fields.conclusion, 'success');
    assert.ok(Date.now() - handedBackAt >= 14_000, 'the other host ran the whole job again (sleep 15)');
    assert.equal(runsOf().length, 1, 'one check run');
    const row = (await watch.get(key))!;
    assert.equal(row.attempt, first + 1, 'claimed once more, by the other host');
    assert.ok(!(await watch.leases.hosts()).some((x) => x.id.startsWith(`${h.name}/`)), 'the drained host left the fleet view');
    assert.ok((await watch.leases.hosts()).some((x) => x.id.startsWith(`${other.name}/`)));
  } finally {
    await watch.close();
  }
});
