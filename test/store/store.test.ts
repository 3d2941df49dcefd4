// One store suite, run against both backends: SQLite (one host, the default) and a real PostgreSQL
// of the test's own (a fleet). Several store instances stand for several hosts: each has its own
// connection(s), as separate processes would.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pickNext } from '../../src/queue';
import { JobStore, type NewJob } from '../../src/store';
import { startPostgres, type Postgres } from './postgres';

type Spec = { n: number };
type Report = { conclusion: string };
type Store = JobStore<Spec, Report>;

const job = (key: string, repository = 'acme/web', priority = 0): NewJob<Spec> => ({ key, deliveryGuid: `g-${key}`, repository, installationId: 1, headSha: 'a'.repeat(40), spec: { n: 1 }, priority });
const noLimits = { repository: () => undefined, org: () => undefined };

async function seed(s: Store, jobs: NewJob<Spec>[], to: 'accepted' | 'queued' = 'queued'): Promise<void> {
  for (const j of jobs) {
    await s.addDelivery(j.deliveryGuid, 'workflow_job', '{}');
    await s.processDelivery(j.deliveryGuid, [j]);
    if (to === 'queued') assert.ok(await s.transition(j.key, 'queued'));
  }
}

let now = Date.now();
const clock = () => now;

function suite(name: string, open: () => Promise<{ host: () => Promise<Store>; reset: () => Promise<void>; cleanup?: () => void }>) {
  describe(name, () => {
    let make: () => Promise<Store>;
    let reset: () => Promise<void>;
    let cleanup: (() => void) | undefined;
    const opened: Store[] = [];
    const host = async () => {
      const s = await make();
      opened.push(s);
      return s;
    };
    before(async () => {
      const o = await open();
      make = o.host;
      reset = o.reset;
      cleanup = o.cleanup;
    });
    after(async () => {
      for (const s of opened) await s.close();
      cleanup?.();
    });

    test('a delivery is stored once; its jobs are inserted once however many hosts plan it', async () => {
      await reset();
      const [a, b] = [await host(), await host()];
      assert.equal(await a.addDelivery('d1', 'push', '{"x":1}'), true);
      assert.equal(await b.addDelivery('d1', 'push', '{"x":2}'), false, 'a replay of the GUID from another host');
      assert.equal((await b.getDelivery('d1'))?.payload, '{"x":1}');
      const planned = [job('k1'), job('k2')];
      const [ra, rb] = await Promise.all([a.processDelivery('d1', planned), b.processDelivery('d1', planned)]);
      assert.deepEqual([...ra, ...rb].sort(), ['k1', 'k2'], 'each key inserted by exactly one host');
      assert.equal((await a.unprocessedDeliveries()).length, 0);
      assert.equal((await b.counts()).accepted, 2);
    });

    test('transitions are checked: a finished job never moves again, and the spec and result come back as values', async () => {
      await reset();
      const s = await host();
      await seed(s, [job('t1')]);
      assert.equal(await s.transition('t1', 'completed'), false, 'queued → completed skips running');
      assert.ok(await s.transition('t1', 'running'));
      assert.ok(await s.transition('t1', 'completed', { result: { conclusion: 'success' }, log: 'ok' }));
      assert.equal(await s.transition('t1', 'failed'), false);
      const row = (await s.get('t1'))!;
      assert.deepEqual(row.spec, { n: 1 });
      assert.deepEqual(row.result, { conclusion: 'success' });
      assert.deepEqual(Object.fromEntries(await s.leases.runningCounts()), { 'org:acme': 0, 'repo:acme/web': 0 });
    });

    test('claims are fair across repositories, honour priorities, and keep the running counts', async () => {
      await reset();
      const s = await host();
      now += 1000;
      await seed(s, [job('a1', 'acme/a'), job('a2', 'acme/a'), job('a3', 'acme/a', 5), job('b1', 'acme/b')]);
      const order: string[] = [];
      for (let i = 0; i < 4; i++) order.push((await s.leases.claim('h1', 30_000, noLimits, pickNext))!.key);
      assert.equal(order[0], 'a3', 'the highest priority of the first repository');
      assert.equal(order[1], 'b1', 'then the other repository, before a second job of the first');
      assert.deepEqual(order.slice(2).sort(), ['a1', 'a2']);
      assert.equal(await s.leases.claim('h1', 30_000, noLimits, pickNext), undefined);
      const counts = await s.leases.runningCounts();
      assert.equal(counts.get('org:acme'), 4);
      assert.equal(counts.get('repo:acme/a'), 3);
      for (const k of order) {
        const r = (await s.get(k))!;
        assert.ok(await s.transition(k, 'completed', { result: { conclusion: 'success' } }, { owner: 'h1', attempt: r.attempt }));
      }
      assert.deepEqual([...(await s.leases.runningCounts()).values()], [0, 0, 0], 'back at 0');
    });

    test('counts by repository and state are one grouped query, as numbers (the queue-depth gauge)', async () => {
      await reset();
      const s = await host();
      await seed(s, [job('c1', 'acme/a'), job('c2', 'acme/a'), job('c3', 'acme/b')]);
      assert.ok(await s.transition('c1', 'running'));
      const counts = (await s.countsByRepository(['accepted', 'queued', 'running'])).sort((x, y) => `${x.repository}${x.state}`.localeCompare(`${y.repository}${y.state}`));
      assert.deepEqual(counts, [
        { repository: 'acme/a', state: 'queued', n: 1 },
        { repository: 'acme/a', state: 'running', n: 1 },
        { repository: 'acme/b', state: 'queued', n: 1 },
      ]);
      assert.deepEqual(await s.countsByRepository(['completed']), []);
    });

    test('an organisation limit holds across hosts claiming at the same moment', async () => {
      await reset();
      const hosts = await Promise.all([host(), host(), host(), host()]);
      await seed(hosts[0]!, Array.from({ length: 40 }, (_, i) => job(`o${i}`, `orga/r${i % 5}`)));
      const limits = { repository: () => undefined, org: (o: string) => (o === 'orga' ? 2 : undefined) };
      const claimed = (await Promise.all(hosts.flatMap((h, i) => [h.leases.claim(`h${i}`, 30_000, limits, pickNext), h.leases.claim(`h${i}`, 30_000, limits, pickNext)]))).filter(Boolean);
      assert.equal(claimed.length, 2, `8 claims at once, limit 2: ${claimed.map((c) => c!.key)}`);
      assert.equal((await hosts[0]!.counts()).running, 2);
      assert.equal((await hosts[1]!.leases.runningCounts()).get('org:orga'), 2);
    });

    test('fencing: a host whose lease expired and was taken over changes 0 rows; its late writes count no usage', async () => {
      await reset();
      const [a, b] = [await host(), await host()];
      await seed(a, [job('f1', 'fence/x')]);
      const claimed = (await a.leases.claim('host-a', 5_000, noLimits, pickNext))!;
      assert.equal(claimed.leaseOwner, 'host-a');
      assert.deepEqual(await a.leases.renew('host-a', 5_000, [{ key: 'f1', attempt: claimed.attempt }]), [], 'renewed while held');
      assert.deepEqual(await b.leases.takeOverExpired('fail', 2, () => ({ conclusion: 'failure' })), [], 'not expired yet: nothing taken');
      now += 6_000;
      const taken = await b.leases.takeOverExpired('fail', 2, (row) => ({ conclusion: `failure: ${row.leaseOwner} stopped` }));
      assert.deepEqual(taken, [{ key: 'f1', owner: 'host-a', to: 'failed' }]);
      assert.deepEqual(await b.leases.takeOverExpired('fail', 2, () => ({ conclusion: 'x' })), [], 'taken over once');
      // Host A wakes up.
      assert.deepEqual(await a.leases.renew('host-a', 5_000, [{ key: 'f1', attempt: claimed.attempt }]), ['f1'], 'its renewal reports the loss');
      assert.equal(await a.transition('f1', 'completed', { result: { conclusion: 'success' }, usage: { scopes: ['repo:fence/x'], ms: 60_000 } }, { owner: 'host-a', attempt: claimed.attempt }), false);
      const row = (await b.get('f1'))!;
      assert.equal(row.state, 'failed');
      assert.deepEqual(row.result, { conclusion: 'failure: host-a stopped' });
      assert.equal((await b.quotas.usage('repo:fence/x')).dayMs, 0, 'a refused write counts no minutes');
      assert.equal((await b.leases.runningCounts()).get('repo:fence/x'), 0);
    });

    test('host loss with requeue: the job runs again on another host at most twice; the old claim stays fenced out', async () => {
      await reset();
      const [a, b] = [await host(), await host()];
      await seed(a, [job('q1', 'requeue/x')]);
      const first = (await a.leases.claim('host-a', 1_000, noLimits, pickNext))!;
      now += 2_000;
      assert.deepEqual((await b.leases.takeOverExpired('requeue', 2, () => ({ conclusion: 'failure' }))).map((t) => t.to), ['queued']);
      const second = (await b.leases.claim('host-b', 1_000, noLimits, pickNext))!;
      assert.equal(second.key, 'q1');
      assert.equal(second.attempt, first.attempt + 1);
      assert.equal(await a.transition('q1', 'completed', {}, { owner: 'host-a', attempt: first.attempt }), false, 'the first claim is fenced out');
      now += 2_000;
      assert.deepEqual((await a.leases.takeOverExpired('requeue', 2, () => ({ conclusion: 'failure' }))).map((t) => t.to), ['failed'], 'out of attempts');
    });

    test('accepting and reporting are claimed: one host at a time, again after the claim lapses', async () => {
      await reset();
      const [a, b] = [await host(), await host()];
      await seed(a, [job('c1')], 'accepted');
      const [x, y] = await Promise.all([a.leases.claimAccept('c1', 'host-a', 10_000), b.leases.claimAccept('c1', 'host-b', 10_000)]);
      assert.equal([x, y].filter((v) => v !== undefined).length, 1, 'one host accepts');
      assert.equal((await b.dueAccepted()).length, 0, 'a held job is not due');
      now += 11_000;
      assert.equal(await b.leases.claimAccept('c1', 'host-b', 10_000), 2, 'after the lapse: attempt 2 (look for the check run first)');
      await b.githubFailed('c1', now);
      assert.equal((await a.dueAccepted()).length, 1, 'a failed GitHub write releases the accept claim: the retry waits only for its backoff');
      assert.equal(await a.leases.claimAccept('c1', 'host-a', 10_000), 3);
      assert.ok(await b.transition('c1', 'queued'));
      assert.ok(await b.transition('c1', 'running'));
      assert.ok(await b.transition('c1', 'completed', { result: { conclusion: 'success' } }));
      assert.equal((await a.unreported()).length, 1);
      const [r1, r2] = await Promise.all([a.leases.claimReport('c1', 'host-a', 60_000), b.leases.claimReport('c1', 'host-b', 60_000)]);
      assert.equal(Number(r1) + Number(r2), 1, 'one host sends the report');
      assert.equal((await a.unreported()).length, 0, 'a claimed report is not offered again');
      await b.leases.reportProgress('c1', 3);
      await b.githubFailed('c1', now + 1);
      now += 2;
      const again = await a.unreported();
      assert.equal(again[0]?.reportBatches, 3, 'a resumed report knows which batches GitHub took');
      await a.markReported('c1');
      assert.equal((await b.unreported()).length, 0);
    });

    test('hosts: heartbeats, the fleet view, stale hosts dropped', async () => {
      await reset();
      const s = await host();
      await s.leases.heartbeat({ id: 'h1', capacity: 2, running: 1, draining: false, startedAt: now });
      await s.leases.heartbeat({ id: 'h2', capacity: 4, running: 0, draining: true, startedAt: now });
      await s.leases.heartbeat({ id: 'h1', capacity: 2, running: 2, draining: false, startedAt: now });
      assert.deepEqual((await s.leases.hosts()).map((h) => [h.id, h.running, h.draining]), [['h1', 2, false], ['h2', 0, true]]);
      now += 10_000;
      await s.leases.heartbeat({ id: 'h1', capacity: 2, running: 2, draining: false, startedAt: now });
      assert.equal(await s.leases.dropStaleHosts(5_000), 1);
      await s.leases.removeHost('h1');
      assert.deepEqual(await s.leases.hosts(), []);
    });

    test('quotas, usage and tokens', async () => {
      await reset();
      const s = await host();
      await s.quotas.set('org:Acme', { concurrency: 2, minutesPerDay: 10 });
      await s.quotas.set('org:acme', { minutesPerDay: null });
      assert.deepEqual(await s.quotas.get('ORG:acme'), { concurrency: 2 });
      await s.quotas.set('repo:acme-rival/x', { concurrency: 1 });
      assert.deepEqual((await s.quotas.list('acme')).map((q) => q.scope), ['org:acme']);
      await Promise.all([s.quotas.addUsage(['org:acme'], 1500), s.quotas.addUsage(['org:acme'], 500)]);
      assert.equal((await s.quotas.usage('org:acme')).dayMs, 2000);
      await s.quotas.addToken('hash1', 'Acme');
      assert.equal(await s.quotas.tokenScope('hash1'), 'acme');
    });

    test('retention removes old finished jobs and their deliveries, never running or unreported ones', async () => {
      await reset();
      const s = await host();
      await seed(s, [job('old1'), job('run1')]);
      await s.transition('old1', 'running');
      await s.transition('old1', 'completed', { result: { conclusion: 'success' }, log: 'x'.repeat(1000) });
      await s.markReported('old1');
      await s.transition('run1', 'running');
      now += 100 * 86_400_000;
      const c = await s.prune({ jobsMs: 90 * 86_400_000, logsMs: 30 * 86_400_000 });
      assert.equal(c.jobs, 1);
      assert.equal(c.deliveries, 1);
      assert.ok(await s.get('run1'));
      assert.ok(c.bytesBefore > 0);
    });
  });
}

suite('SQLite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'stockade-store-'));
  let n = 0;
  let file = join(dir, 'db0');
  return {
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
    host: () => JobStore.open<Spec, Report>(file, { now: clock }),
    reset: async () => {
      file = join(dir, `db${++n}`);
    },
  };
});

let pg: Postgres | undefined;
suite('PostgreSQL', async () => {
  pg = await startPostgres();
  return {
    host: () => JobStore.open<Spec, Report>(pg!.url, { now: clock }),
    reset: async () => {
      const s = await JobStore.open(pg!.url);
      for (const t of ['deliveries', 'jobs', 'quotas', 'usage', 'admin_tokens', 'running_counts', 'hosts']) await s.db.run(`DELETE FROM ${t}`);
      await s.close();
    },
  };
});

describe('PostgreSQL only', () => {
  test('hosts starting together migrate once; a newer schema is refused; a wrong URL is a clear error', async () => {
    const fresh = await startPostgres();
    try {
      const stores = await Promise.all(Array.from({ length: 6 }, () => JobStore.open(fresh.url)));
      const versions = await stores[0]!.db.all<{ version: number }>('SELECT version FROM stockade_schema');
      assert.deepEqual(versions.map((v) => v.version), [6, 7], 'each migration once, however many hosts started');
      await stores[0]!.db.run('INSERT INTO stockade_schema (version, name, applied_at) VALUES (99, ?, 0)', ['from the future']);
      for (const s of stores) await s.close();
      await assert.rejects(() => JobStore.open(fresh.url), /schema version 99 is newer than this Stockade's \(7\)/);
      await assert.rejects(() => JobStore.open(`postgres://stockade:hunter2@127.0.0.1:${fresh.port + 1}/none`), (e: Error) => !/hunter2/.test(e.message));
    } finally {
      fresh.destroy();
    }
  });

  test('a PostgreSQL restart fails the statements and transactions in flight without taking the process down; then the same store works again', async () => {
    const s = await JobStore.open(pg!.url);
    try {
      await s.addDelivery('before-restart', 'push', '{}');
      // A transaction in flight when the server goes: it fails; the process (this one) stays up.
      const inFlight = s.db.tx(async (t) => t.run('SELECT pg_sleep(3)'));
      await new Promise((r) => setTimeout(r, 300));
      pg!.restart();
      await assert.rejects(inFlight, /terminating connection|Connection terminated|ECONNRESET/);
      let ok = false;
      for (let i = 0; i < 50 && !ok; i++) {
        try {
          ok = await s.hasDelivery('before-restart');
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      assert.ok(ok, 'the pool reconnected and the row is there');
    } finally {
      await s.close();
    }
  });
});

after(() => pg?.destroy());
