import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JobStore } from '../../src/store';
import { deliver, makeWorld, setDiagnostics, sleep, startServer, until, workflowJobPayload, type ServerProcess, type World } from './helpers';

let w: World;
let state: string;
let server: ServerProcess;

before(async () => {
  w = await makeWorld({ '.github/workflows/ci.yml': 'on: push\njobs:\n  one:\n    runs-on: [self-hosted, stockade]\n    steps:\n      - run: sleep 1\n' });
  const repo = w.fake.repos.get('octo-org/hello')!;
  for (const r of ['octo-org/capped', 'octo-org/free', 'octo-org/bursty']) w.fake.repos.set(r, repo);
  state = mkdtempSync(join(tmpdir(), 'stockade-limits-'));
  writeFileSync(join(w.dir, 'quotas.yml'), 'quotas:\n  default:\n    minutesPerDay: 600\n  repos:\n    octo-org/capped:\n      concurrency: 1\n');
  server = await startServer(w, state, ['--reconcile-seconds', '0', '--concurrency', '2', '--no-request-pacing', '--config', join(w.dir, 'quotas.yml'), '--burst-per-minute', '4']);
  setDiagnostics(() => `\nviolations: ${JSON.stringify(w.fake.violations)}\nserver: ${server.stderr().slice(-3000)}`);
});

after(async () => {
  server?.child.kill('SIGTERM');
  await sleep(500);
  await w?.fake.stop();
  rmSync(state, { recursive: true, force: true });
  rmSync(w.dir, { recursive: true, force: true });
  assert.deepEqual(w.fake.violations, []);
});

const job = (id: number, repository: string, installation: number) => {
  const p = workflowJobPayload({ jobId: id, name: 'one', labels: ['stockade'] });
  (p.repository as Record<string, unknown>).full_name = repository;
  p.installation = { id: installation, node_id: 'x' };
  return p;
};
const span = (repository: string) =>
  [...w.fake.checkRuns.values()]
    .filter((c) => String(c.fields.external_id).startsWith(`${repository}/`))
    .map((c) => [c.times[c.history.findIndex((h) => h.status === 'in_progress')]!, c.times[c.history.findIndex((h) => h.status === 'completed')]!] as const);

test('a repository limited to 1 concurrent job (from the YAML config) never runs 2, while the host runs 2', async () => {
  for (let i = 0; i < 4; i++) await deliver(w, server.url, 'workflow_job', job(10 + i, 'octo-org/capped', 100 + i));
  for (let i = 0; i < 2; i++) await deliver(w, server.url, 'workflow_job', job(20 + i, 'octo-org/free', 200 + i));
  // Sample the server's own job states (its database) throughout the run.
  const store = new JobStore(join(state, 'stockade.db'));
  let maxCapped = 0;
  let maxAll = 0;
  let mixed = false;
  const done = () => span('octo-org/capped').filter(([a, b]) => a && b).length === 4 && span('octo-org/free').filter(([a, b]) => a && b).length === 2;
  const deadline = Date.now() + 120_000;
  while (!done() && Date.now() < deadline) {
    const running = store.inState('running');
    const capped = running.filter((r) => r.repository === 'octo-org/capped').length;
    maxCapped = Math.max(maxCapped, capped);
    maxAll = Math.max(maxAll, running.length);
    if (capped && running.some((r) => r.repository === 'octo-org/free')) mixed = true;
    await sleep(50);
  }
  store.close();
  assert.ok(done(), 'all six jobs completed');
  assert.equal(maxCapped, 1, 'never two jobs of the capped repository at once');
  assert.equal(maxAll, 2, 'the host ran two at once');
  assert.ok(mixed, 'the second slot went to the other repository');
});

test('over the burst limit, deliveries are stored and admitted later, not lost', async () => {
  for (let i = 0; i < 6; i++) assert.equal((await deliver(w, server.url, 'workflow_job', job(40 + i, 'octo-org/bursty', 77))).status, 202);
  await sleep(5000);
  const created = () => [...w.fake.checkRuns.values()].filter((c) => String(c.fields.external_id).startsWith('octo-org/bursty/')).length;
  assert.equal(created(), 4, 'four admitted in the first minute');
  await until('the other two admitted after the window', () => created() === 6, 90_000);
  await until('all six completed', () => [...w.fake.checkRuns.values()].filter((c) => String(c.fields.external_id).startsWith('octo-org/bursty/') && c.fields.status === 'completed').length === 6, 60_000);
});
