import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JobStore } from '../../src/store';
import { endWorld, deliver, makeWorld, root, setDiagnostics, sleep, startServer, until, workflowJobPayload, type ServerProcess, type World } from './helpers';

const WORKFLOW = `on: push
jobs:
  one:
    runs-on: [self-hosted, stockade]
    steps:
      - run: sleep 1
  hold:
    runs-on: [self-hosted, stockade]
    steps:
      - run: sleep 60
`;

let w: World;
let state: string;
let server: ServerProcess;
let opToken: string;
let orgToken: string;
let otherToken: string;
const args = () => ['--reconcile-seconds', '0', '--concurrency', '1', '--admin-port', '0', '--no-request-pacing'];

function token(org: string): string {
  const r = spawnSync('node', [join(root, 'dist/cli.js'), 'admin-token', 'create', '--org', org, '--state-dir', state], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

const api = async (method: string, path: string, tok: string, body?: unknown) => {
  const r = await fetch(`${server.adminUrl}${path}`, { method, headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
};

const job = (id: number, repository: string) => {
  const p = workflowJobPayload({ jobId: id, name: 'one', labels: ['stockade'] });
  (p.repository as Record<string, unknown>).full_name = repository;
  return p;
};
const runOf = (key: string) => [...w.fake.checkRuns.values()].find((c) => c.fields.external_id === key);
const at = (key: string, status: string) => {
  const c = runOf(key);
  const i = c?.history.findIndex((h) => h.status === status) ?? -1;
  return c && i >= 0 ? c.times[i] : undefined;
};

before(async () => {
  w = await makeWorld({ '.github/workflows/ci.yml': WORKFLOW });
  const repo = w.fake.repos.get('octo-org/hello')!;
  for (const r of ['octo-org/busy', 'octo-org/quiet', 'octo-org/capped', 'octo-org/spent', 'other-org/app', 'octo-org/first', 'octo-org/second', 'third-org/third']) w.fake.repos.set(r, repo);
  state = mkdtempSync(join(tmpdir(), 'stockade-admin-'));
  server = await startServer(w, state, args());
  setDiagnostics(() => `\nviolations: ${JSON.stringify(w.fake.violations)}\nserver: ${server.stderr().slice(-3000)}`);
  opToken = token('*');
  orgToken = token('octo-org');
  otherToken = token('other-org');
});

after(() => endWorld(w, server, state));

test('admin tokens are scoped: org B cannot read or change org A; bad values get 400 and change nothing', async () => {
  assert.equal((await api('GET', '/v1/quotas/octo-org/hello', 'stk_not-a-real-token-at-all')).status, 401);
  assert.equal((await api('PUT', '/v1/quotas/octo-org/hello', otherToken, { concurrency: 1 })).status, 403);
  assert.equal((await api('GET', '/v1/quotas/octo-org/hello', otherToken)).status, 403);
  assert.equal((await api('GET', '/v1/quotas?org=octo-org', otherToken)).status, 403);
  const set = await api('PUT', '/v1/quotas/octo-org/hello', orgToken, { concurrency: 3, minutesPerDay: 100 });
  assert.equal(set.status, 200);
  assert.deepEqual(set.body.quota, { concurrency: 3, minutesPerDay: 100 });
  const bad = await api('PUT', '/v1/quotas/octo-org/hello', orgToken, { concurrency: 2, minutesPerDay: -5 });
  assert.equal(bad.status, 400);
  assert.match(String(bad.body.error), /minutesPerDay must be a whole number from 1 to 1440000/);
  assert.deepEqual((await api('GET', '/v1/quotas/octo-org/hello', orgToken)).body.quota, { concurrency: 3, minutesPerDay: 100 }, 'nothing half-applied');
  assert.equal((await api('PUT', '/v1/quotas/other-org', opToken, { concurrency: 4 })).status, 200, 'the operator token reaches every org');
  const cli = spawnSync('node', [join(root, 'dist/cli.js'), 'quota', 'set', 'octo-org/hello', '--concurrency', '2', '--url', server.adminUrl!, '--token', orgToken], { encoding: 'utf8' });
  assert.equal(cli.status, 0, cli.stderr);
  assert.equal((JSON.parse(cli.stdout) as { quota: { concurrency: number } }).quota.concurrency, 2);
  const cliBad = spawnSync('node', [join(root, 'dist/cli.js'), 'quota', 'set', 'octo-org/hello', '--concurrency', '0', '--url', server.adminUrl!, '--token', orgToken], { encoding: 'utf8' });
  assert.equal(cliBad.status, 2);
  assert.match(cliBad.stderr, /concurrency must be a whole number from 1 to 256/);
});

test('fair order: 50 jobs of one repository, then 1 of another: the second repository\'s job starts within one slot; the rest are cancelled through the admin API', async () => {
  for (let i = 0; i < 50; i++) await deliver(w, server.url, 'workflow_job', job(1000 + i, 'octo-org/busy'));
  await deliver(w, server.url, 'workflow_job', job(2000, 'octo-org/quiet'));
  const quiet = 'octo-org/quiet/workflow_job/2000/1';
  await until('quiet job started', () => at(quiet, 'in_progress'), 120_000);
  const quietStart = at(quiet, 'in_progress')!;
  const busyKeys = Array.from({ length: 50 }, (_, i) => `octo-org/busy/workflow_job/${1000 + i}/1`);
  const busyStartedBefore = busyKeys.map((k) => at(k, 'in_progress')).filter((t) => t !== undefined && t < quietStart);
  assert.ok(busyStartedBefore.length <= 2, `${busyStartedBefore.length} jobs of the busy repository started before the quiet one`);
  // The queue-depth gauge counts them per repository and state (one grouped query per scrape).
  const depth = await (await fetch(`${server.adminUrl}/metrics`)).text();
  const inQueue = [...depth.matchAll(/^stockade_queue_depth\{repository="octo-org\/busy",state="(accepted|queued|running)"\} (\d+)$/gm)].reduce((a, m) => a + Number(m[2]), 0);
  assert.ok(inQueue >= 44 && inQueue <= 50, `queue depth of octo-org/busy: ${inQueue}\n${depth.split('\n').filter((l) => l.startsWith('stockade_queue_depth')).join('\n')}`);
  const cli = spawnSync('node', [join(root, 'dist/cli.js'), 'jobs', 'cancel', busyKeys[49]!, '--url', server.adminUrl!, '--token', orgToken], { encoding: 'utf8' });
  assert.equal(cli.status, 0, cli.stderr);
  assert.equal((await api('POST', `/v1/jobs/${encodeURIComponent(busyKeys[48]!)}/cancel`, otherToken)).status, 404, 'another org cannot cancel it');
  for (const k of busyKeys.slice(0, 49)) await api('POST', `/v1/jobs/${encodeURIComponent(k)}/cancel`, orgToken);
  await until('every busy job ended with a completed check run', () => busyKeys.every((k) => at(k, 'completed')), 120_000);
  const conclusions = busyKeys.map((k) => runOf(k)!.fields.conclusion);
  assert.ok(conclusions.filter((c) => c === 'cancelled').length >= 40, JSON.stringify(conclusions));
  await until('quiet job completed', () => at(quiet, 'completed'), 60_000);
  await until('nothing left queued or running', async () => ((await api('GET', '/v1/queue', orgToken)).body as unknown as unknown[]).length === 0, 30_000);
});

test('a repository over its minutes quota gets a completed check run saying which quota and when it resets; usage is counted', async () => {
  assert.equal((await api('PUT', '/v1/quotas/octo-org/spent', orgToken, { minutesPerDay: 1 })).status, 200);
  const store = await JobStore.open(join(state, 'stockade.db'));
  await store.quotas.addUsage(['repo:octo-org/spent'], 61_000);
  await store.close();
  await deliver(w, server.url, 'workflow_job', job(3000, 'octo-org/spent'));
  const run = await until('quota report', () => { const c = runOf('octo-org/spent/workflow_job/3000/1'); return c?.fields.status === 'completed' && c; }, 60_000);
  assert.equal(run.fields.conclusion, 'neutral');
  assert.match((run.fields.output as { summary: string }).summary, /quota exhausted: repo:octo-org\/spent used 1\.0 of 1 job-minutes per day; it resets at \d{4}-\d\d-\d\dT00:00:00\.000Z/);
  const usage = (await api('GET', '/v1/quotas/octo-org/quiet', orgToken)).body.usage as { dayMs: number };
  assert.ok(usage.dayMs >= 1000, `quiet used ${usage.dayMs} ms for one job that sleeps 1 s`);
});

test('metrics, readiness, the queue view, and a restart keeps quotas and counters', async () => {
  const metrics = await (await fetch(`${server.adminUrl}/metrics`)).text();
  assert.match(metrics, /stockade_webhook_deliveries_total\{result="accepted"\} \d+/);
  assert.match(metrics, /stockade_jobs_total\{conclusion="success"\} \d+/);
  assert.match(metrics, /stockade_quota_refusals_total\{scope="repo:octo-org\/spent"\} 1/);
  assert.match(metrics, /stockade_quota_saturation\{scope="repo:octo-org\/spent",period="day"\} 1\.0/);
  assert.match(metrics, /stockade_queue_wait_seconds_count \d+/);
  const ready = await fetch(`${server.adminUrl}/readyz`);
  assert.equal(ready.status, 200, await ready.text());
  const queue = await api('GET', '/v1/queue', otherToken);
  assert.equal(queue.status, 200);
  const before = (await api('GET', '/v1/quotas/octo-org/busy', orgToken)).body;
  server.child.kill('SIGTERM');
  await sleep(1500);
  server = await startServer(w, state, args());
  const afterRestart = (await api('GET', '/v1/quotas/octo-org/busy', orgToken)).body;
  assert.deepEqual(afterRestart.usage, before.usage);
  assert.deepEqual((await api('GET', '/v1/quotas/octo-org/hello', orgToken)).body.quota, { concurrency: 2, minutesPerDay: 100 });
});

test('a crash in the middle of a queue keeps its order: after the restart jobs start as they would have', async () => {
  const named = (id: number, repository: string, name: string) => {
    const p = workflowJobPayload({ jobId: id, name, labels: ['stockade'] });
    (p.repository as Record<string, unknown>).full_name = repository;
    return p;
  };
  const key = (repository: string, id: number) => `${repository}/workflow_job/${id}/1`;
  // One job holds the only slot; five wait behind it.
  await deliver(w, server.url, 'workflow_job', named(900, 'octo-org/second', 'hold'));
  await until('the holding job runs', () => at(key('octo-org/second', 900), 'in_progress'), 60_000);
  const waiting: Array<[number, string]> = [[901, 'octo-org/first'], [902, 'octo-org/first'], [903, 'octo-org/first'], [904, 'octo-org/second'], [905, 'third-org/third']];
  for (const [id, repo] of waiting) {
    await deliver(w, server.url, 'workflow_job', named(id, repo, 'one'));
    await sleep(20);
  }
  await until('all five queued', () => waiting.every(([id, repo]) => at(key(repo, id), 'queued')), 30_000);
  server.child.kill('SIGKILL');
  await sleep(500);
  server = await startServer(w, state, args());
  for (const [id, repo] of waiting) await until(`job ${id} completed`, () => at(key(repo, id), 'completed'), 120_000);
  const order = waiting.map(([id, repo]) => ({ id, t: at(key(repo, id), 'in_progress')! })).sort((a, b) => a.t - b.t).map((x) => x.id);
  // Fair order from the stored queue: first (never served, earliest), third (never served),
  // second (served by 900 before the crash, remembered), then first's remaining two in arrival order.
  assert.deepEqual(order, [901, 905, 904, 902, 903]);
  // One check run per job, even for one whose check run was being created at the crash.
  for (const [id, repo] of waiting) assert.equal([...w.fake.checkRuns.values()].filter((c) => c.fields.external_id === key(repo, id)).length, 1, `check runs of ${id}`);
  assert.equal(runOf(key('octo-org/second', 900))?.fields.conclusion, 'failure');
});
