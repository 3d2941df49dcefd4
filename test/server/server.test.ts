import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LABEL_MANAGED, LABEL_OWNER } from '../../src/sandbox';
import { sandbox } from '../sandbox/helpers';
import { endWorld, deliver, examplePayload, setDiagnostics, makeWorld, post, sign, startServer, until, workflowJobPayload, sleep, type ServerProcess, type World } from './helpers';

const WORKFLOW = `name: CI
on: push
jobs:
  build:
    runs-on: [self-hosted, stockade]
    steps:
      - uses: actions/checkout@v4
      - name: Greet
        run: |
          echo "hello from $GITHUB_REPOSITORY"
          cat README.md
          echo "token=[\${{ secrets.DEPLOY_TOKEN }}]"
          echo "::error file=app.js,line=3,col=2::something is off"
          echo "### built" >> "$GITHUB_STEP_SUMMARY"
  test:
    runs-on: [self-hosted, stockade]
    strategy:
      matrix:
        node: [18, 20]
    steps:
      - run: echo "node \${{ matrix.node }}" && test "\${{ matrix.node }}" = 18
  slow:
    runs-on: [self-hosted, stockade]
    steps:
      - run: echo started && sleep 120
`;

const APP_WORKFLOW = `name: App
on:
  push:
    branches: [main]
  pull_request:
jobs:
  lint:
    runs-on: stockade
    steps:
      - run: echo "lint on \${{ github.event_name }} secret=[\${{ secrets.DEPLOY_TOKEN }}]"
  test:
    needs: lint
    runs-on: stockade
    steps:
      - run: echo "test after lint"
`;

let w: World;
let state: string;
let server: ServerProcess;
const serverArgs = () => ['--reconcile-seconds', '1', '--concurrency', '2', '--secrets-file', join(w.dir, 'secrets.json')];

before(async () => {
  w = await makeWorld({ '.github/workflows/ci.yml': WORKFLOW, '.stockade/workflows/app.yml': APP_WORKFLOW, 'README.md': 'the repository readme\n' });
  state = mkdtempSync(join(tmpdir(), 'stockade-state-'));
  writeFileSync(join(w.dir, 'secrets.json'), JSON.stringify({ 'octo-org/hello': { DEPLOY_TOKEN: 'tok-secret-4711' } }));
  server = await startServer(w, state, serverArgs());
  setDiagnostics(diag);
});

after(() => endWorld(w, server, state));

const diag = () => `\nviolations: ${JSON.stringify(w.fake.violations)}\nrequests: ${w.fake.requests.map((r) => `${r.operationId} ${r.path}`).join('\n')}\nserver: ${server.stderr().slice(-4000)}`;
const completed = (key: string) => () => [...w.fake.checkRuns.values()].find((c) => c.fields.external_id === key && c.fields.status === 'completed');
const runsFor = (key: string) => [...w.fake.checkRuns.values()].filter((c) => c.fields.external_id === key);

test('a queued workflow_job for our labels ends in one check run: queued, in_progress, completed with summary, log and annotations', async () => {
  const r = await deliver(w, server.url, 'workflow_job', workflowJobPayload({ jobId: 1, name: 'build', labels: ['self-hosted', 'Stockade'] }));
  assert.equal(r.status, 202);
  const key = 'octo-org/hello/workflow_job/1/1';
  const run = await until('check run completed', completed(key), 90_000);
  assert.equal(run.fields.conclusion, 'success', JSON.stringify(run.fields.output));
  assert.deepEqual(run.history.map((h) => h.status).filter(Boolean), ['queued', 'in_progress', 'completed']);
  const output = run.fields.output as { summary: string; text: string; annotations: Array<Record<string, unknown>> };
  assert.match(output.summary, /\| step \| conclusion \| duration \| peak memory \| exit \|/);
  assert.match(output.summary, /\| Greet \| success \|/);
  assert.match(output.summary, /### built/);
  assert.match(output.text, /hello from octo-org\/hello/);
  assert.match(output.text, /the repository readme/);
  assert.match(output.text, /token=\[\*\*\*\]/, 'the secret from the store reached the job, masked');
  assert.doesNotMatch(JSON.stringify(run.history), /tok-secret-4711/);
  assert.deepEqual(output.annotations[0], { path: 'app.js', start_line: 3, end_line: 3, annotation_level: 'failure', message: 'something is off', start_column: 2, end_column: 2 });
  assert.equal(run.fields.external_id, key);
  const details = String(run.fields.details_url);
  const page = await fetch(details.replace(/^http:\/\/127\.0\.0\.1:\d+/, server.url));
  assert.equal(page.status, 200);
  assert.match(await page.text(), /hello from octo-org\/hello/);
  const forged = await fetch(details.replace(/^http:\/\/127\.0\.0\.1:\d+/, server.url).replace(/sig=[0-9a-f]{4}/, 'sig=0000'));
  assert.equal(forged.status, 404, 'a link with another signature reads nothing');
  const other = await fetch(`${server.url}/logs/${encodeURIComponent('octo-org/other/workflow_job/1/1')}?${new URL(details).searchParams}`);
  assert.equal(other.status, 404, 'a signature is for one job only');
});

test('a job of a matrix is found by the name GitHub gives it; a failing one reports failure', async () => {
  await deliver(w, server.url, 'workflow_job', workflowJobPayload({ jobId: 2, name: 'test (18)', labels: ['self-hosted', 'linux'] }));
  await deliver(w, server.url, 'workflow_job', workflowJobPayload({ jobId: 3, name: 'test (20)', labels: ['self-hosted', 'linux'] }));
  assert.equal((await until('test (18)', completed('octo-org/hello/workflow_job/2/1'), 90_000)).fields.conclusion, 'success');
  assert.equal((await until('test (20)', completed('octo-org/hello/workflow_job/3/1'), 90_000)).fields.conclusion, 'failure');
});

test('labels not all ours: nothing is created', async () => {
  const r = await deliver(w, server.url, 'workflow_job', workflowJobPayload({ jobId: 4, name: 'build', labels: ['ubuntu-latest'] }));
  assert.equal(r.status, 202);
  await sleep(2500);
  assert.equal(runsFor('octo-org/hello/workflow_job/4/1').length, 0);
});

test('forged signature: 401 and nothing stored; unknown events 202 and ignored', async () => {
  const guid = randomUUID();
  const payload = workflowJobPayload({ jobId: 5, name: 'build', labels: ['stockade'] });
  const forged = await deliver(w, server.url, 'workflow_job', payload, guid, 'not-the-secret');
  assert.equal(forged.status, 401);
  const unsigned = await post(`${server.url}/webhook`, { 'x-github-event': 'workflow_job', 'x-github-delivery': randomUUID() }, JSON.stringify(payload));
  assert.equal(unsigned.status, 401);
  await sleep(1500);
  assert.equal(runsFor('octo-org/hello/workflow_job/5/1').length, 0);
  // The forged GUID was not stored: the genuine delivery under it is accepted as new.
  const genuine = await deliver(w, server.url, 'workflow_job', workflowJobPayload({ jobId: 5, name: 'build', labels: ['nope'] }), guid);
  assert.equal(genuine.text.trim(), 'accepted');
  assert.equal((await deliver(w, server.url, 'star', { action: 'created' })).status, 202);
});

test('a replayed delivery runs once; the same job from a second delivery runs once', async () => {
  const guid = randomUUID();
  const payload = workflowJobPayload({ jobId: 6, name: 'build', labels: ['self-hosted'] });
  assert.equal((await deliver(w, server.url, 'workflow_job', payload, guid)).text.trim(), 'accepted');
  assert.equal((await deliver(w, server.url, 'workflow_job', payload, guid)).text.trim(), 'already received');
  assert.equal((await deliver(w, server.url, 'workflow_job', payload)).text.trim(), 'accepted');
  await until('job 6 completed', completed('octo-org/hello/workflow_job/6/1'), 90_000);
  await sleep(1500);
  assert.equal(runsFor('octo-org/hello/workflow_job/6/1').length, 1);
});

test('a 30 MB body gets 413', async () => {
  const big = Buffer.alloc(30 * 1024 * 1024, 0x20);
  const r = await post(`${server.url}/webhook`, { 'x-github-event': 'workflow_job', 'x-github-delivery': randomUUID(), 'x-hub-signature-256': sign(w.secret, 'x') }, big);
  assert.equal(r.status, 413);
});

test('a delivery made while the server was down is found by reconciliation and run', async () => {
  w.fake.deliveries.unshift({ id: 9001, guid: randomUUID(), event: 'workflow_job', action: 'queued', payload: workflowJobPayload({ jobId: 7, name: 'build', labels: ['stockade'] }) });
  const run = await until('reconciled job completed', completed('octo-org/hello/workflow_job/7/1'), 90_000);
  assert.equal(run.fields.conclusion, 'success');
});

test('secrets from the store reach jobs masked, and never jobs from forks', async () => {
  await deliver(w, server.url, 'workflow_job', workflowJobPayload({ jobId: 8, name: 'build', labels: ['stockade'], runId: 556 }));
  const run = await until('fork job', completed('octo-org/hello/workflow_job/8/1'), 90_000);
  assert.match((run.fields.output as { text: string }).text, /token=\[\]/);
});

test('SIGKILL of the server mid-job: after restart the check run is completed and no container is left', async () => {
  const key = 'octo-org/hello/workflow_job/9/1';
  await deliver(w, server.url, 'workflow_job', workflowJobPayload({ jobId: 9, name: 'slow', labels: ['stockade'] }));
  await until('slow job in progress', () => runsFor(key).find((c) => c.fields.status === 'in_progress'), 60_000);
  const sb = await sandbox();
  const oldPid = server.child.pid!;
  await sleep(3000);
  const before = (await sb.deps.engine.listContainers(`${LABEL_MANAGED}=true`)).filter((c) => c.labels[LABEL_OWNER]?.startsWith(`${oldPid}.`));
  assert.ok(before.length > 0, 'the slow step runs in a container owned by the server');
  server.child.kill('SIGKILL');
  await sleep(500);
  server = await startServer(w, state, serverArgs());
  const run = await until('check run completed after restart', completed(key), 60_000);
  assert.equal(run.fields.conclusion, 'failure');
  assert.match((run.fields.output as { summary: string }).summary, /runner restarted/);
  const left = (await sb.deps.engine.listContainers(`${LABEL_MANAGED}=true`)).filter((c) => c.labels[LABEL_OWNER]?.startsWith(`${oldPid}.`));
  assert.equal(left.length, 0, 'the reaper removed the killed server\'s containers');
  const volumes = (await sb.deps.engine.listVolumes(`${LABEL_MANAGED}=true`)).filter((c) => c.labels[LABEL_OWNER]?.startsWith(`${oldPid}.`));
  assert.equal(volumes.length, 0);
});

const SHA = 'a'.repeat(40);

test('app mode: a push runs .stockade/workflows filtered by on:, one check run for the suite; a redelivery runs once', async () => {
  const push = examplePayload('push', undefined, (p) => Object.assign(p, { ref: 'refs/heads/main', after: SHA, deleted: false }));
  await deliver(w, server.url, 'push', push);
  await deliver(w, server.url, 'push', push);
  const key = `octo-org/hello/app/push/refs/heads/main/${SHA}`;
  const run = await until('app push completed', completed(key), 90_000);
  assert.equal(run.fields.conclusion, 'success', JSON.stringify(run.fields.output));
  assert.equal(run.fields.name, 'stockade: push');
  const out = run.fields.output as { summary: string; text: string };
  assert.match(out.summary, /lint \/ Run echo/);
  assert.match(out.summary, /test \/ Run echo "test after lint"/);
  assert.match(out.text, /lint on push secret=\[\*\*\*\]/);
  await sleep(1500);
  assert.equal(runsFor(key).length, 1);
  const other = examplePayload('push', undefined, (p) => Object.assign(p, { ref: 'refs/heads/dev', after: 'b'.repeat(40), deleted: false }));
  await deliver(w, server.url, 'push', other);
  const skipped = await until('push to dev reported', completed(`octo-org/hello/app/push/refs/heads/dev/${'b'.repeat(40)}`), 60_000);
  assert.equal(skipped.fields.conclusion, 'skipped', 'no workflow listens to pushes on dev');
});

test('app mode: a pull request from a fork runs without secrets; check_run rerequested runs the job again', async () => {
  const pr = examplePayload('pull_request', 'opened', (p) => {
    p.number = 12;
    p.pull_request.number = 12;
    p.pull_request.head.sha = SHA;
    p.pull_request.head.repo = { ...p.pull_request.head.repo, full_name: 'mallory/hello' };
    p.pull_request.base.ref = 'main';
  });
  await deliver(w, server.url, 'pull_request', pr);
  const key = `octo-org/hello/app/pull_request/12/${SHA}/opened`;
  const run = await until('fork PR completed', completed(key), 90_000);
  assert.match((run.fields.output as { text: string }).text, /lint on pull_request secret=\[\]/);
  const rerequest = examplePayload('check_run', 'rerequested', (p) => {
    p.check_run.external_id = key;
  });
  await deliver(w, server.url, 'check_run', rerequest);
  await until('re-run completed', () => [...w.fake.checkRuns.values()].find((c) => String(c.fields.external_id).startsWith(`${key}#rerun/`) && c.fields.status === 'completed'), 90_000);
});

test('GitHub cancelling the run (workflow_job completed, cancelled) cancels the running job; its check run ends cancelled', async () => {
  const key = 'octo-org/hello/workflow_job/10/1';
  await deliver(w, server.url, 'workflow_job', workflowJobPayload({ jobId: 10, name: 'slow', labels: ['stockade'] }));
  await until('slow job in progress', () => runsFor(key).find((c) => c.fields.status === 'in_progress'), 60_000);
  await sleep(2000);
  const done = workflowJobPayload({ jobId: 10, name: 'slow', labels: ['stockade'] });
  done.action = 'completed';
  Object.assign(done.workflow_job as Record<string, unknown>, { status: 'completed', conclusion: 'cancelled' });
  assert.equal((await deliver(w, server.url, 'workflow_job', done)).status, 202);
  const run = await until('cancelled check run', completed(key), 60_000);
  assert.equal(run.fields.conclusion, 'cancelled');
});
