// Server runner mode: `stockade serve --mode runner` mints a repository-scoped just-in-time runner
// per admitted workflow_job (generate-jitconfig, checked against GitHub's OpenAPI description by the
// fake) and runs it with Stockade as its container hook. The official runner cannot be downloaded
// here: fake-runner.mjs plays it (its session with GitHub through the fake's /_fake/ protocol, its
// container-hook calls as actions/runner makes them). Everything of Stockade's is real: the server,
// the broker, rootless Podman.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { deliver, endWorld, makeWorld, root, startServer, until, workflowJobPayload, type ServerProcess, type World } from './helpers';
import { resolveHostConfig } from '../../src/host';

const host = resolveHostConfig(process.env);
const RUNNER_UID = 100000;
const install = `/home/github-runner/fake-actions-runner-${process.pid}`;
const runnersDir = join(host.stateDir, 'runners');
let w: World;
let server: ServerProcess | undefined;
let state: string;
const LABELS = ['self-hosted', 'linux', 'x64', 'stockade'];

function podmanContainers(label: string): string[] {
  const r = spawnSync('runuser', ['-u', host.runnerUser, '--', 'env', `XDG_RUNTIME_DIR=${host.runtimeDir}`, `HOME=${host.runnerHome}`, 'podman', 'ps', '-a', '--filter', `label=${label}`, '--format', '{{.Names}}'], { encoding: 'utf8', cwd: '/' });
  return r.stdout.split('\n').filter(Boolean);
}

const hookContainers = () => podmanContainers('io.stockade.managed=true').filter((n) => n.startsWith('stockade-hook-'));
const alive = (pid: number | undefined) => !!pid && existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(spawnSync('cat', [`/proc/${pid}/status`], { encoding: 'utf8' }).stdout);
const ourRunnerDirs = () => (existsSync(runnersDir) ? readdirSync(runnersDir).filter((f) => f.startsWith('stockade-')) : []);

before(async () => {
  const s = spawnSync('node', [join(root, 'dist/cli.js'), 'setup', '--no-images', '--runner'], { encoding: 'utf8' });
  assert.equal(s.status, 0, s.stderr);
  // An "installed official runner": run.sh, bin/, externals/node20 (the runner's own Node), owned by its user.
  for (const d of [install, join(install, 'bin'), join(install, 'externals'), join(install, 'externals/node20'), join(install, 'externals/node20/bin')]) mkdirSync(d, { recursive: true });
  copyFileSync(join(root, 'test/server/fake-runner.mjs'), join(install, 'bin/fake-runner.mjs'));
  copyFileSync(process.execPath, join(install, 'externals/node20/bin/node'));
  writeFileSync(join(install, 'bin/Runner.Listener'), '');
  writeFileSync(join(install, 'run.sh'), `#!/bin/sh\nexec "$(dirname "$0")/externals/node20/bin/node" "$(dirname "$0")/bin/fake-runner.mjs" "$@"\n`, { mode: 0o755 });
  spawnSync('chown', ['-R', `${RUNNER_UID}:${RUNNER_UID}`, install]);
  w = await makeWorld({ '.github/workflows/ci.yml': 'on: push\njobs:\n  build:\n    runs-on: [self-hosted, stockade]\n    container: stockade/base\n    steps:\n      - run: echo hi\n' });
  state = mkdtempSync(join(tmpdir(), 'stockade-jit-'));
  writeFileSync(join(w.dir, 'quotas.yml'), 'quotas:\n  default:\n    concurrency: 1\n');
  server = await startServer(w, state, ['--mode', 'runner', '--runner-install', install, '--runner-idle-timeout', '4s', '--runner-poll', '300ms', '--no-github-egress', '--config', join(w.dir, 'quotas.yml'), '--concurrency', '4', '--modes', 'workflow_job', '--disk', '96m', '--inodes', '20000']);
});

after(async () => {
  await endWorld(w, server, state);
  rmSync(install, { recursive: true, force: true });
});

const jitCalls = () => w.fake.requests.filter((r) => r.operationId === 'actions/generate-runner-jitconfig-for-repo');

test('one just-in-time runner per admitted job; repository concurrency 1 holds across three queued jobs; every runner is removed', { timeout: 180_000 }, async () => {
  const before = jitCalls().length;
  w.fake.queuedJobs.set('octo-org/hello', [1, 2, 3].map((i) => ({ id: 9100 + i, steps: [`echo job-${i} step-1; sleep 1`, `echo "n=${i}" >> "$GITHUB_OUTPUT"`] })));
  for (const i of [1, 2, 3]) assert.equal((await deliver(w, server!.url, 'workflow_job', workflowJobPayload({ jobId: 9100 + i, name: 'build', labels: LABELS }))).status, 202);
  await until('three jobs done', () => w.fake.finishedJobs.filter((j) => j.id > 9100 && j.id < 9104).length === 3 && [...w.fake.checkRuns.values()].filter((c) => c.fields.status === 'completed').length >= 3, 150_000);
  assert.equal(jitCalls().length - before, 3, 'one runner per admitted job');
  assert.equal(w.fake.maxBusy.get('octo-org/hello'), 1, 'never two runners of one repository at once');
  for (const j of w.fake.finishedJobs) assert.equal(j.conclusion, 'success');
  const minted = jitCalls().slice(before).map((r) => (r.body as { name: string; labels: string[]; runner_group_id: number }));
  for (const b of minted) {
    assert.match(b.name, /^stockade-[0-9a-f]{12}$/);
    assert.deepEqual(b.labels, LABELS);
  }
  await until('runners cleaned up', () => ourRunnerDirs().length === 0 && hookContainers().length === 0, 20_000);
  for (const r of w.fake.runners.values()) assert.ok(r.deleted, `runner ${r.name} is gone`);
  const done = [...w.fake.checkRuns.values()].filter((c) => c.fields.status === 'completed');
  assert.ok(done.every((c) => c.fields.conclusion === 'success'), JSON.stringify(done.map((c) => c.fields.conclusion)));
  // Stockade's own check run says what GitHub cannot show: the limits in force and what the steps used.
  assert.match(JSON.stringify(done[0]!.fields.output), /limits in force for every step container: memory \d+ MiB, \d+ processes/);
  assert.match(JSON.stringify(done[0]!.fields.output), /2 step container\(s\), 0 failed, 0 stopped by a limit, peak memory/);
});

test('a JIT runner\'s _work is a filesystem of its own: a step that writes past the disk limit fails with ENOSPC, the check run says what was used', { timeout: 120_000 }, async () => {
  w.fake.queuedJobs.set('octo-org/hello', [{ id: 9500, steps: ['df -k /__w | tail -1; head -c 200m /dev/zero > /__w/hello/hello/big'] }]);
  assert.equal((await deliver(w, server!.url, 'workflow_job', workflowJobPayload({ jobId: 9500, name: 'build', labels: LABELS }))).status, 202);
  const check = await until('the check run completes', () => [...w.fake.checkRuns.values()].find((c) => c.fields.external_id === 'octo-org/hello/workflow_job/9500/1' && c.fields.status === 'completed'), 60_000);
  const out = JSON.stringify(check.fields.output);
  assert.equal(check.fields.conclusion, 'failure');
  assert.match(out, /_work is a filesystem of its own: 100663296 bytes/);
  assert.match(out, /No space left on device/);
  assert.match(out, /_work used \d+ of \d+ bytes/);
  await until('nothing left', () => hookContainers().length === 0 && ourRunnerDirs().length === 0, 20_000);
  assert.doesNotMatch(spawnSync('losetup', ['-a'], { encoding: 'utf8' }).stdout, /runners|stockade-[0-9a-f]{12}\.img/);
});

test('a JIT runner GitHub gives no job is stopped and deleted after the idle timeout; the check run says so', { timeout: 120_000 }, async () => {
  w.fake.queuedJobs.set('octo-org/hello', []);
  const before = jitCalls().length;
  const deletesBefore = w.fake.requests.filter((r) => r.operationId === 'actions/delete-self-hosted-runner-from-repo').length;
  assert.equal((await deliver(w, server!.url, 'workflow_job', workflowJobPayload({ jobId: 9200, name: 'build', labels: LABELS }))).status, 202);
  const check = await until('the check run completes', () => [...w.fake.checkRuns.values()].find((c) => c.fields.external_id === 'octo-org/hello/workflow_job/9200/1' && c.fields.status === 'completed'), 60_000);
  assert.equal(jitCalls().length - before, 1);
  assert.equal(check.fields.conclusion, 'neutral');
  assert.match(JSON.stringify(check.fields.output), /GitHub gave the runner no job within 4 s/);
  assert.equal(w.fake.requests.filter((r) => r.operationId === 'actions/delete-self-hosted-runner-from-repo').length - deletesBefore, 1, 'the registration is deleted through the API');
  await until('no runner directory', () => ourRunnerDirs().length === 0, 10_000);
});

test('a runner process killed mid-job leaves nothing behind: its step container, directory and registration are removed; the job fails', { timeout: 120_000 }, async () => {
  w.fake.queuedJobs.set('octo-org/hello', [{ id: 9300, steps: ['echo started; sleep 120'] }]);
  assert.equal((await deliver(w, server!.url, 'workflow_job', workflowJobPayload({ jobId: 9300, name: 'build', labels: LABELS }))).status, 202);
  const runner = await until('the runner runs the job', () => [...w.fake.runners.values()].find((r) => r.jobs.includes(9300) && r.busy), 60_000);
  await until('its step container runs', () => hookContainers().length > 0, 30_000);
  assert.ok(alive(runner.pid));
  process.kill(runner.pid!, 'SIGKILL');
  const check = await until('the check run completes', () => [...w.fake.checkRuns.values()].find((c) => c.fields.external_id === 'octo-org/hello/workflow_job/9300/1' && c.fields.status === 'completed'), 60_000);
  assert.equal(check.fields.conclusion, 'failure');
  assert.match(JSON.stringify(check.fields.output), /the runner exited with/);
  await until('nothing left', () => hookContainers().length === 0 && ourRunnerDirs().length === 0, 20_000);
  assert.ok(w.fake.requests.some((r) => r.operationId === 'actions/delete-self-hosted-runner-from-repo' && Number(r.params.runner_id) === runner.id));
});

test('kill -9 of the server mid-job: at the next start its runner is ended, deleted and removed, and its containers reaped', { timeout: 180_000 }, async () => {
  w.fake.queuedJobs.set('octo-org/hello', [{ id: 9400, steps: ['echo started; sleep 120'] }]);
  assert.equal((await deliver(w, server!.url, 'workflow_job', workflowJobPayload({ jobId: 9400, name: 'build', labels: LABELS }))).status, 202);
  const runner = await until('the runner runs the job', () => [...w.fake.runners.values()].find((r) => r.jobs.includes(9400) && r.busy), 60_000);
  await until('its step container runs', () => hookContainers().length > 0, 30_000);
  server!.child.kill('SIGKILL');
  await until('the server is gone', () => server!.child.exitCode !== null || server!.child.signalCode !== null, 10_000);
  server = await startServer(w, state, ['--mode', 'runner', '--runner-install', install, '--runner-idle-timeout', '4s', '--runner-poll', '300ms', '--no-github-egress', '--config', join(w.dir, 'quotas.yml'), '--concurrency', '4', '--modes', 'workflow_job', '--disk', '96m', '--inodes', '20000']);
  await until('the leftover runner is ended', () => !alive(runner.pid), 30_000);
  await until('its containers and directory are gone', () => hookContainers().length === 0 && ourRunnerDirs().length === 0, 30_000);
  assert.match(server.stderr(), /a runner of a server that stopped was ended, deleted and removed/);
  assert.ok(w.fake.runners.get(runner.id)!.deleted);
  const check = await until('the job is reported failed', () => [...w.fake.checkRuns.values()].find((c) => c.fields.external_id === 'octo-org/hello/workflow_job/9400/1' && c.fields.status === 'completed'), 60_000);
  assert.equal(check.fields.conclusion, 'failure');
});

