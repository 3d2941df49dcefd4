// Fleet mode (issue 16): four server processes on one machine share one real PostgreSQL and the fake
// GitHub. 200 jobs across 10 repositories, organisation orga limited to 2 at once, 20 % of the
// deliveries replayed; during the run one host is SIGKILLed, another SIGSTOPped past its lease and
// continued, and PostgreSQL is restarted once.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { JobStore } from '../../src/store';
import { LABEL_MANAGED, LABEL_OWNER } from '../../src/sandbox';
import { sandbox } from '../sandbox/helpers';
import { startPostgres, type Postgres } from '../store/postgres';
import { endWorld, setDiagnostics, sleep, until, type World } from './helpers';
import { deliverToFleet, FLEET_REPOS, fleetJob, fleetKey, fleetWorld, startFleet, type FleetHost } from './fleet-harness';

const LEASE_S = 4;
let pg: Postgres;
let w: World;
let hosts: FleetHost[] = [];
let watch: JobStore;

before(async () => {
  pg = await startPostgres();
  const world = await fleetWorld(['sleep 1']);
  w = world.w;
  config = world.config;
  hosts = await startFleet(w, config, pg.url, 4, ['--concurrency', '2', '--lease-seconds', String(LEASE_S), '--drain-seconds', '5']);
  watch = await JobStore.open(pg.url);
  setDiagnostics(() => `\nviolations: ${JSON.stringify(w.fake.violations.slice(0, 5))}\n${hosts.map((h) => `${h.name}: ${h.proc.stderr().slice(-1500)}`).join('\n')}`);
});
let config = '';
/** The sampler of orga's running jobs runs while this is true; after() ends it whatever happened. */
let sampling = false;

after(async () => {
  sampling = false;
  await sleep(100);
  await watch?.close();
  for (const h of hosts.slice(1)) {
    if (h.proc.child.exitCode === null) h.proc.child.kill('SIGCONT');
    h.proc.child.kill('SIGTERM');
    rmSync(h.state, { recursive: true, force: true });
  }
  await endWorld(w, hosts[0]?.proc, hosts[0]?.state ?? '/nonexistent');
  pg?.destroy();
}, { timeout: 120_000 });

/** Running jobs held by a host (its lease owner starts with its name). */
async function runningOn(host: string): Promise<Array<{ key: string; attempt: number }>> {
  return watch.db.all(`SELECT key, attempt FROM jobs WHERE state = 'running' AND lease_owner LIKE ?`, [`${host}/%`]);
}

test('200 jobs, 4 hosts, one killed, one paused past its lease, PostgreSQL restarted: every job ends once with one check run; orga never above 2', { timeout: 900_000 }, async () => {
  const jobs = Array.from({ length: 200 }, (_, i) => ({ id: 70_000 + i, repo: FLEET_REPOS[i % FLEET_REPOS.length]! }));
  // Sample orga's running jobs across the fleet the whole time (the database is the fleet's truth).
  let maxOrgA = 0;
  let samples = 0;
  sampling = true;
  const sampler = (async () => {
    while (sampling) {
      try {
        const r = await watch.db.get<{ n: number }>(`SELECT COUNT(*) AS n FROM jobs WHERE state = 'running' AND repository LIKE 'orga/%'`);
        maxOrgA = Math.max(maxOrgA, r!.n);
        samples++;
      } catch {
        // PostgreSQL restarting.
      }
      await sleep(25);
    }
  })();
  const t0 = Date.now();
  let killed: { name: string; pid: number; jobs: string[] } | undefined;
  let paused: { name: string; jobs: string[]; rows: Map<string, string> } | undefined;
  let replays = 0;
  for (let i = 0; i < jobs.length; i++) {
    const j = jobs[i]!;
    const guid = randomUUID();
    await deliverToFleet(w, hosts, i, fleetJob(j.id, j.repo), guid);
    // 20 %: the same delivery again (a GitHub redelivery), to another host.
    if (i % 5 === 0) {
      await deliverToFleet(w, hosts, i + 1, fleetJob(j.id, j.repo), guid);
      replays++;
    }
    if (i === 40) {
      const h = hosts[1]!;
      const held = await until(`${h.name} runs a job`, async () => { const r = await runningOn(h.name); return r.length ? r : undefined; }, 120_000);
      killed = { name: h.name, pid: h.proc.child.pid!, jobs: held.map((r) => r.key) };
      h.down = true;
      h.proc.child.kill('SIGKILL');
    }
    if (i === 80) {
      const h = hosts[2]!;
      const held = await until(`${h.name} runs a job`, async () => { const r = await runningOn(h.name); return r.length ? r : undefined; }, 120_000);
      h.down = true;
      h.proc.child.kill('SIGSTOP');
      // Past its lease: another host takes its jobs over (reported failed), then it wakes up.
      await until('the paused host\'s jobs taken over', async () => {
        const rows = await Promise.all(held.map((r) => watch.get(r.key)));
        return rows.every((r) => r && r.state !== 'running') ? rows : undefined;
      }, 60_000);
      const rows = new Map<string, string>();
      for (const r of held) {
        const row = (await watch.get(r.key))!;
        rows.set(r.key, JSON.stringify([row.state, row.result, row.log, row.attempt]));
      }
      paused = { name: h.name, jobs: held.map((r) => r.key), rows };
      h.proc.child.kill('SIGCONT');
      h.down = false;
    }
    if (i === 120) pg.restart();
  }
  const delivered = Date.now() - t0;
  const keys = jobs.map((j) => fleetKey(j.id, j.repo));
  const runsOf = (key: string) => [...w.fake.checkRuns.values()].filter((c) => c.fields.external_id === key);
  await until('every job has a completed check run', () => keys.every((k) => runsOf(k).some((c) => c.fields.status === 'completed')), 600_000);
  const elapsed = Date.now() - t0;
  // Reports settle: nothing left to send, nothing running.
  await until('the queue is quiet', async () => { const c = await watch.counts(); return c.accepted + c.queued + c.running === 0 && !(await watch.unreported()).length; }, 120_000);
  await sleep(3 * LEASE_S * 1000);
  sampling = false;
  await sampler;

  // Every job in exactly one terminal state, with exactly one check run, completed.
  const rows = await Promise.all(keys.map((k) => watch.get(k)));
  const states = new Map<string, number>();
  for (const r of rows) states.set(r?.state ?? 'missing', (states.get(r?.state ?? 'missing') ?? 0) + 1);
  assert.equal(rows.filter((r) => r && ['completed', 'failed', 'cancelled'].includes(r.state)).length, 200, JSON.stringify(Object.fromEntries(states)));
  const counts = keys.map((k) => runsOf(k).length);
  assert.deepEqual(counts.filter((n) => n !== 1), [], 'exactly one check run per job');
  assert.equal(keys.filter((k) => runsOf(k)[0]!.fields.status !== 'completed').length, 0);
  assert.equal((await watch.db.get<{ n: number }>('SELECT COUNT(*) AS n FROM jobs'))!.n, 200, 'replays added no job');

  // The killed host's jobs: reported failed, "the runner host stopped"; its containers reaped.
  assert.ok(killed && killed.jobs.length > 0);
  for (const k of killed.jobs) {
    const r = (await watch.get(k))!;
    assert.equal(r.state, 'failed', k);
    assert.match((r.result as { error: string }).error, /the runner host stopped \(host1\//);
    assert.equal(runsOf(k)[0]!.fields.conclusion, 'failure');
  }
  const sb = await sandbox();
  const left = (await sb.deps.engine.listContainers(`${LABEL_MANAGED}=true`)).filter((c) => c.labels[LABEL_OWNER]?.startsWith(`${killed.pid}.`));
  assert.equal(left.length, 0, "the killed host's containers were reaped by the host that took its jobs over");

  // The paused host's late writes changed nothing: the rows are as the take-over left them.
  assert.ok(paused && paused.jobs.length > 0);
  for (const k of paused.jobs) {
    const r = (await watch.get(k))!;
    assert.equal(JSON.stringify([r.state, r.result, r.log, r.attempt]), paused.rows.get(k), `${k} unchanged after the paused host woke`);
    assert.match((r.result as { error: string }).error, /the runner host stopped \(host2\//);
  }
  const pausedLog = hosts[2]!.proc.stderr();
  assert.match(pausedLog, /lease lost: another host took the job over/, 'the paused host learned it lost its jobs');
  assert.match(pausedLog, /result is discarded|fenced write refused/, 'and stored no result for them');

  // orga never above 2 at once across the fleet; the running counters are back at 0.
  assert.ok(samples > 100, `${samples} samples`);
  assert.ok(maxOrgA <= 2, `orga had ${maxOrgA} running at once`);
  assert.ok(maxOrgA >= 1);
  const runningCounts = await watch.leases.runningCounts();
  assert.deepEqual([...runningCounts].filter(([, n]) => n !== 0), [], 'every running counter is back at 0');
  // Every other job succeeded: the only failures are jobs of the killed and the paused host (a host
  // may have claimed one more between the look at its jobs and the signal).
  const failures = rows.filter((r) => r!.state !== 'completed').map((r) => `${r!.key}: ${(r!.result as { error?: string } | null)?.error ?? r!.state}`);
  assert.deepEqual(failures.filter((f) => !/the runner host stopped \(host[12]\//.test(f)), [], 'no job failed for another reason');
  assert.ok(rows.filter((r) => r!.state === 'completed').every((r) => (r!.result as { conclusion: string }).conclusion === 'success'), 'every completed job succeeded');
  const hostsSeen = new Set(rows.map((r) => r!.leaseOwner).filter(Boolean));
  process.stdout.write(`# fleet: 200 jobs (${replays} replayed deliveries) on 4 hosts in ${(elapsed / 1000).toFixed(1)} s (deliveries took ${(delivered / 1000).toFixed(1)} s); states ${JSON.stringify(Object.fromEntries(states))} (failed: ${failures.map((f) => f.replace(/:.*\(/, ' (').slice(0, 60)).join('; ')}); killed ${killed.name} held ${killed.jobs.length}, paused ${paused.name} held ${paused.jobs.length}; orga max ${maxOrgA} over ${samples} samples; ${hostsSeen.size} lease owners left\n`);
});
