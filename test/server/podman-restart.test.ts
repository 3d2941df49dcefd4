// The Podman API service killed mid-job (by its PIDs): the running step ends as a sandbox failure that
// says why, the server starts the service again, the interrupted job's containers, volumes and cgroups
// are reaped, and the next job runs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LABEL_JOB, LABEL_MANAGED, LABEL_OWNER } from '../../src/sandbox';
import { host, sandbox } from '../sandbox/helpers';
import { deliver, endWorld, makeWorld, setDiagnostics, sleep, startServer, until, workflowJobPayload, type ServerProcess, type World } from './helpers';

let w: World;
let state: string;
let server: ServerProcess;

const WF = `on: push
jobs:
  slow:
    runs-on: [self-hosted, stockade]
    steps:
      - run: echo start; sleep 37; echo end
      - run: echo never
  quick:
    runs-on: [self-hosted, stockade]
    steps:
      - run: echo quick
`;

before(async () => {
  w = await makeWorld({ '.github/workflows/ci.yml': WF });
  state = mkdtempSync(join(tmpdir(), 'stockade-podman-restart-'));
  server = await startServer(w, state, ['--reconcile-seconds', '0', '--no-request-pacing', '--modes', 'workflow_job']);
  setDiagnostics(() => `\nserver: ${server.stderr().slice(-4000)}`);
});

after(async () => {
  await endWorld(w, server, state);
  // Whatever happened, the machine's service is left answering for the tests after this one.
  if (!(await (await sandbox()).deps.engine.ping().then(() => true, () => false))) spawnSync('node', ['dist/cli.js', 'setup', '--runner'], { stdio: 'inherit' });
}, { timeout: 120_000 });

/** PIDs of the runner user's `podman system service` processes (the re-executing parent and the server in its namespace). */
function servicePids(): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      if (statSync(`/proc/${d}`).uid !== host.runnerUid) continue;
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (cmd[0]?.endsWith('podman') && cmd[1] === 'system' && cmd[2] === 'service') out.push(Number(d));
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

const runOf = (key: string) => [...w.fake.checkRuns.values()].find((c) => c.fields.external_id === key);

test('Podman API service SIGKILLed mid-step: the step fails saying so, the service comes back, the job is reaped, the next job runs', async () => {
  const key = 'octo-org/hello/workflow_job/601/1';
  await deliver(w, server.url, 'workflow_job', workflowJobPayload({ jobId: 601, name: 'slow', labels: ['stockade'] }));
  const sb = await sandbox();
  const owner = `${server.child.pid}.`;
  const mine = async () => (await sb.deps.engine.listContainers(`${LABEL_MANAGED}=true`)).filter((c) => c.labels[LABEL_OWNER]?.startsWith(owner));
  await until('the slow step runs', async () => (await mine()).some((c) => c.running) && runOf(key)?.fields.status === 'in_progress', 90_000);
  await sleep(1500);
  const killed = servicePids();
  assert.ok(killed.length > 0, 'the service runs');
  for (const pid of killed) process.kill(pid, 'SIGKILL');
  const run = await until('the check run completed', () => (runOf(key)?.fields.status === 'completed' ? runOf(key) : undefined), 90_000);
  assert.equal(run.fields.conclusion, 'failure');
  const text = JSON.stringify(run.fields.output);
  assert.match(text, /the Podman API service stopped answering while the step ran/);
  assert.match(text, /ended by PID/);
  // The step's own process did not outlive it.
  assert.equal(spawnSync('pgrep', ['-f', 'sleep 37']).status, 1, 'no "sleep 37" left running');
  // The server started the service again.
  await until('the service answers again', () => sb.deps.engine.ping().then(() => true, () => false), 90_000);
  assert.ok(servicePids().every((p) => !killed.includes(p)), 'a new service process');
  // The job's own objects; the helpers the server makes ahead for its next jobs (job key prepared-…) stay.
  const ofJob = (x: { labels: Record<string, string> }) => x.labels[LABEL_OWNER]?.startsWith(owner) && !x.labels[LABEL_JOB]?.startsWith('prepared-');
  const cgroups = () => spawnSync('sh', ['-c', `find /sys/fs/cgroup -maxdepth 6 -type d -name '${owner}*' ! -name '*_stockade-prepared-*' 2>/dev/null`], { encoding: 'utf8' }).stdout.trim();
  await until("the interrupted job's containers, volumes and step cgroups are reaped", async () => {
    const [c, v] = await Promise.all([mine(), sb.deps.engine.listVolumes(`${LABEL_MANAGED}=true`)]);
    return c.filter(ofJob).length === 0 && v.filter(ofJob).length === 0 && cgroups() === '';
  }, 90_000);
  // And the next job runs.
  const next = 'octo-org/hello/workflow_job/602/1';
  await deliver(w, server.url, 'workflow_job', workflowJobPayload({ jobId: 602, name: 'quick', labels: ['stockade'] }));
  const ok = await until('the next job completed', () => (runOf(next)?.fields.status === 'completed' ? runOf(next) : undefined), 120_000);
  assert.equal(ok.fields.conclusion, 'success', JSON.stringify(ok.fields.output));
  assert.match(server.stderr(), /the Podman API service does not answer/);
});
