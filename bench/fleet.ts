/**
 * Fleet mode (issue 16): jobs per minute with 1, 2 and 4 `stockade serve` hosts on one real
 * PostgreSQL (the test's own cluster), each host at concurrency 2, with one-step jobs that sleep
 * SLEEP seconds (so the sandbox is not the bottleneck); then the claim transaction's latency
 * (p50/p99) with 1 and 4 claimers at once on a queue of 2,000 jobs. Prints figures and ratios;
 * nothing fails on time.
 *
 *   npm run build && npx tsx bench/fleet.ts [JOBS_PER_HOST=12] [SLEEP=4]   (as root, after `stockade setup`)
 */
import { rmSync } from 'node:fs';
import { pickNext } from '../src/queue';
import { JobStore } from '../src/store';
import { startPostgres } from '../test/store/postgres';
import { endWorld, until } from '../test/server/helpers';
import { deliverToFleet, FLEET_REPOS, fleetJob, fleetKey, fleetWorld, startFleet } from '../test/server/fleet-harness';

const PER_HOST = Number(process.argv[2] ?? 12);
const SLEEP = Number(process.argv[3] ?? 4);
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
};

async function throughput(n: number): Promise<{ jobs: number; seconds: number; perMinute: number; ideal: number }> {
  const pg = await startPostgres();
  const { w, config } = await fleetWorld([`sleep ${SLEEP}`], 256);
  const hosts = await startFleet(w, config, pg.url, n, ['--concurrency', '2']);
  const jobs = Array.from({ length: PER_HOST * n }, (_, i) => ({ id: 90_000 + i, repo: FLEET_REPOS[i % FLEET_REPOS.length]! }));
  try {
    const t0 = Date.now();
    await Promise.all(jobs.map((j, i) => deliverToFleet(w, hosts, i, fleetJob(j.id, j.repo))));
    const keys = jobs.map((j) => fleetKey(j.id, j.repo));
    await until('all completed', () => keys.every((k) => [...w.fake.checkRuns.values()].some((c) => c.fields.external_id === k && c.fields.status === 'completed')), 1_800_000);
    const seconds = (Date.now() - t0) / 1000;
    // What the slots alone allow: every slot busy sleeping all the time.
    const ideal = (2 * n * 60) / SLEEP;
    return { jobs: jobs.length, seconds, perMinute: (jobs.length / seconds) * 60, ideal };
  } finally {
    for (const h of hosts.slice(1)) {
      h.proc.child.kill('SIGTERM');
      rmSync(h.state, { recursive: true, force: true });
    }
    await endWorld(w, hosts[0]!.proc, hosts[0]!.state).catch(() => undefined);
    pg.destroy();
  }
}

async function claimLatency(claimers: number): Promise<{ p50: number; p99: number; claims: number }> {
  const pg = await startPostgres();
  try {
    const seed = await JobStore.open(pg.url);
    for (let i = 0; i < 2000; i++) {
      const key = `bench/r${i % 10}/job/${i}`;
      await seed.addDelivery(`g${i}`, 'workflow_job', '{}');
      await seed.processDelivery(`g${i}`, [{ key, deliveryGuid: `g${i}`, repository: `org${i % 2}/r${i % 10}`, installationId: 1, headSha: 'a'.repeat(40), spec: {} }]);
      await seed.transition(key, 'queued');
    }
    await seed.close();
    const stores = await Promise.all(Array.from({ length: claimers }, () => JobStore.open(pg.url)));
    const times: number[] = [];
    const limits = { repository: () => undefined, org: (o: string) => (o === 'org0' ? 100_000 : undefined) };
    await Promise.all(stores.map(async (s, i) => {
      for (let k = 0; k < 2000 / claimers; k++) {
        const t = process.hrtime.bigint();
        const row = await s.leases.claim(`h${i}`, 30_000, limits, pickNext);
        times.push(Number(process.hrtime.bigint() - t) / 1e6);
        if (!row) break;
      }
    }));
    for (const s of stores) await s.close();
    return { p50: pct(times, 0.5), p99: pct(times, 0.99), claims: times.length };
  } finally {
    pg.destroy();
  }
}

void (async () => {
  const rows: string[] = [];
  let one = 0;
  for (const n of [1, 2, 4]) {
    const r = await throughput(n);
    if (n === 1) one = r.perMinute;
    rows.push(`${n} host${n > 1 ? 's' : ' '} | ${r.jobs} jobs in ${r.seconds.toFixed(1)} s | ${r.perMinute.toFixed(1)} jobs/min | ${(r.perMinute / one).toFixed(2)} × 1 host | ${((r.perMinute / r.ideal) * 100).toFixed(0)} % of the slots' ideal (${r.ideal.toFixed(0)}/min)`);
    process.stdout.write(`${rows[rows.length - 1]}\n`);
  }
  for (const c of [1, 4]) {
    const r = await claimLatency(c);
    rows.push(`claim, ${c} claimer${c > 1 ? 's' : ' '} at once, 2,000 queued: p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms over ${r.claims} claims`);
    process.stdout.write(`${rows[rows.length - 1]}\n`);
  }
  process.stdout.write(`\nfleet (sleep ${SLEEP} s per job, concurrency 2 per host, one PostgreSQL 15 on loopback):\n${rows.join('\n')}\n`);
  process.exit(0);
})();
