import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JobStore } from '../../src/store';
import { endWorld, deliver, makeWorld, setDiagnostics, sleep, startServer, until, workflowJobPayload, type ServerProcess, type World } from './helpers';

let w: World;
let state: string;
let server: ServerProcess;

before(async () => {
  w = await makeWorld({ '.github/workflows/ci.yml': 'on: push\njobs:\n  one:\n    runs-on: [self-hosted, stockade]\n    steps:\n      - run: "true"\n' });
  const repo = w.fake.repos.get('octo-org/hello')!;
  for (const r of ['octo-org/bursty', ...Array.from({ length: 10 }, (_, i) => `octo-org/r${i}`)]) w.fake.repos.set(r, repo);
  state = mkdtempSync(join(tmpdir(), 'stockade-limits-'));
  writeFileSync(join(w.dir, 'quotas.yml'), 'quotas:\n  default:\n    concurrency: 1\n    minutesPerDay: 600\n  repos:\n    octo-org/bursty:\n      concurrency: 2\n');
  server = await startServer(w, state, ['--reconcile-seconds', '0', '--concurrency', '4', '--no-request-pacing', '--config', join(w.dir, 'quotas.yml'), '--burst-per-minute', '4']);
  setDiagnostics(() => `\nviolations: ${JSON.stringify(w.fake.violations)}\nserver: ${server.stderr().slice(-3000)}`);
});

after(() => endWorld(w, server, state));

const job = (id: number, repository: string, installation: number) => {
  const p = workflowJobPayload({ jobId: id, name: 'one', labels: ['stockade'] });
  (p.repository as Record<string, unknown>).full_name = repository;
  p.installation = { id: installation, node_id: 'x' };
  return p;
};

test('200 short jobs across 10 repositories limited to 1 concurrent job each (YAML config): never 2 of one repository, the host runs 4', async () => {
  for (let i = 0; i < 200; i++) await deliver(w, server.url, 'workflow_job', job(1000 + i, `octo-org/r${i % 10}`, 1000 + i));
  // Sample the server's own job states (its database) throughout the run.
  const store = await JobStore.open(join(state, 'stockade.db'));
  let maxPerRepo = 0;
  let maxAll = 0;
  let samples = 0;
  const completed = () => [...w.fake.checkRuns.values()].filter((c) => /^octo-org\/r\d\//.test(String(c.fields.external_id)) && c.fields.status === 'completed').length;
  const deadline = Date.now() + 400_000;
  while (completed() < 200 && Date.now() < deadline) {
    const running = await store.inState('running');
    const per = new Map<string, number>();
    for (const r of running) per.set(r.repository, (per.get(r.repository) ?? 0) + 1);
    maxPerRepo = Math.max(maxPerRepo, ...per.values(), 0);
    maxAll = Math.max(maxAll, running.length);
    samples++;
    await sleep(50);
  }
  await store.close();
  assert.equal(completed(), 200, 'every job completed');
  assert.equal(maxPerRepo, 1, `never two jobs of one repository at once (${samples} samples)`);
  assert.equal(maxAll, 4, 'the host ran four at once');
});

test('over the burst limit, deliveries are stored and admitted later, not lost', async () => {
  for (let i = 0; i < 6; i++) assert.equal((await deliver(w, server.url, 'workflow_job', job(40 + i, 'octo-org/bursty', 77))).status, 202);
  await sleep(5000);
  const created = () => [...w.fake.checkRuns.values()].filter((c) => String(c.fields.external_id).startsWith('octo-org/bursty/')).length;
  assert.equal(created(), 4, 'four admitted in the first minute');
  await until('the other two admitted after the window', () => created() === 6, 90_000);
  await until('all six completed', () => [...w.fake.checkRuns.values()].filter((c) => String(c.fields.external_id).startsWith('octo-org/bursty/') && c.fields.status === 'completed').length === 6, 60_000);
});
