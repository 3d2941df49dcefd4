import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LABEL_JOB, LABEL_OWNER, LABEL_STEP, processTag } from '../../src/sandbox';
import { deliver, endWorld, makeWorld, sleep, startServer, until, workflowJobPayload, type ServerProcess, type World } from '../server/helpers';
import { sandbox } from '../sandbox/helpers';
import { startOutsideWorld, type OutsideWorld } from './outside-world';

// Issue 17, target 2: a long-running server makes the next job's network, egress sidecar and results
// forwarder ahead. Each prepared network serves one job, with that job's allowlist, and goes with it.
let world: OutsideWorld;
let w: World;
let state: string;
let server: ServerProcess;

const WORKFLOW = `on: push
jobs:
  fetch:
    runs-on: [self-hosted, stockade]
    steps:
      - run: |
          curl -sS -f --max-time 5 --cacert ca.pem https://allowed.test/ || echo "allowed.test is blocked"
          curl -sS --max-time 5 --noproxy '*' http://other.test/ || echo "other.test is blocked"
  offline:
    runs-on: [self-hosted, stockade]
    env:
      STOCKADE_EGRESS: none
    steps:
      - run: echo "interfaces:$(tail -n +3 /proc/net/dev | awk '{print $1}' | tr -d ':' | sort | tr '\\n' ' ')"
`;

before(async () => {
  world = await startOutsideWorld();
  w = await makeWorld({ '.github/workflows/ci.yml': WORKFLOW, 'ca.pem': readFileSync(world.certFile, 'utf8') });
  w.fake.repos.set('octo-org/narrow', w.fake.repos.get('octo-org/hello')!);
  state = mkdtempSync(join(tmpdir(), 'stockade-state-'));
  const file = join(w.dir, 'config.yml');
  writeFileSync(file, `egress:\n  upstreamDns: ${world.dns}\n  permittedRanges: [${world.subnet}]\n  orgs:\n    octo-org: [allowed.test, other.test]\n  repos:\n    octo-org/hello: [allowed.test]\n    octo-org/narrow: [other.test]\n`);
  // Info lines (JSON): the results service says whether its forwarder was made ahead.
  process.env.STOCKADE_SERVER_LOG_LEVEL = 'info';
  process.env.STOCKADE_LOG_FORMAT = 'json';
  server = await startServer(w, state, ['--config', file, '--concurrency', '1']);
});

after(async () => {
  await endWorld(w, server, state);
  world?.stop();
});

const job = (id: number, repository: string, name: string) => {
  const p = workflowJobPayload({ jobId: id, name, labels: ['self-hosted', 'stockade'] });
  (p.repository as Record<string, unknown>).full_name = repository;
  return p;
};

const hello = (address: string, scheme: string) => new RegExp(`hello from ${address.replace(/\./g, '\\.')} over ${scheme}\\b`);

async function runJob(id: number, repository: string, name = 'fetch'): Promise<string> {
  await deliver(w, server.url, 'workflow_job', job(id, repository, name));
  const run = await until(`job ${id} completed`, () => [...w.fake.checkRuns.values()].find((c) => c.fields.external_id === `${repository}/workflow_job/${id}/1` && c.fields.status === 'completed'), 90_000);
  assert.equal(run.fields.conclusion, 'success', JSON.stringify(run.fields.output));
  return String((run.fields.output as { text?: string }).text);
}

test('a job network made ahead serves one job with that job\'s allowlist: the next repository\'s names, never the last one\'s; nothing is left once the server stops', async () => {
  const sb = await sandbox();
  const tag = processTag(server.child.pid!)!;
  const owned = async () => ({
    containers: (await sb.deps.engine.listContainers(`${LABEL_OWNER}=${tag}`)).map((c) => `${c.labels[LABEL_JOB]} ${c.labels[LABEL_STEP]}`).sort(),
    networks: (await sb.deps.engine.listNetworks(`${LABEL_OWNER}=${tag}`)).map((n) => n.labels[LABEL_JOB]),
    volumes: (await sb.deps.engine.listVolumes(`${LABEL_OWNER}=${tag}`)).map((v) => v.labels[LABEL_JOB]),
  });
  const first = await runJob(301, 'octo-org/hello');
  assert.match(first, hello(world.allowed, 'https'));
  assert.match(first, /made ahead/, "the first job's network was made at the server's start, from its settings");
  // Between jobs: one network ready, with its sidecar and results forwarder, and nothing of the finished job.
  const idle = await until('a network is made ahead', async () => {
    const o = await owned();
    return o.networks.length === 1 && o.containers.every((c) => c.startsWith('prepared-')) ? o : undefined;
  }, 30_000);
  const key = idle.networks[0]!;
  assert.match(key, /^prepared-[0-9a-f]{12}$/);
  assert.deepEqual(idle.containers.filter((c) => c.startsWith(`${key} `)), [`${key} egress`, `${key} results`]);
  assert.deepEqual(idle.volumes, [key], 'its control volume');
  // The next job is of another repository, allowed other.test only: the prepared sidecar enforces its list.
  const second = await runJob(302, 'octo-org/narrow');
  assert.match(second, /\[stockade\] egress: other\.test through the sidecar at [\d.]+ \(ready in \d+ ms, made ahead\)/);
  assert.match(second, /allowed\.test is blocked/);
  assert.match(second, hello(world.other, 'http'));
  assert.match(second, /blocked: connect allowed\.test:443: not-allowlisted/);
  const third = await runJob(303, 'octo-org/hello');
  assert.match(third, /made ahead/);
  assert.match(third, hello(world.allowed, 'https'));
  assert.match(third, /other\.test is blocked/);
  // A job without a network takes the loopback-only forwarder made ahead: its step sees loopback alone.
  const premade = () => server.stderr().split('\n').filter((l) => l.includes('"results service ready"') && l.includes('"premade":true')).length;
  const before = premade();
  const offline = await runJob(304, 'octo-org/hello', 'offline');
  assert.match(offline, /interfaces:lo\s*$/m);
  assert.equal(premade(), before + 1, 'its results service used a forwarder made ahead');
  // SIGTERM: the server removes what it made ahead before it exits.
  server.child.kill('SIGTERM');
  await new Promise((r) => (server.child.exitCode === null ? server.child.once('exit', r) : r(undefined)));
  await sleep(200);
  assert.deepEqual(await owned(), { containers: [], networks: [], volumes: [] });
});
