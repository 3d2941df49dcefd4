// Egress audit mode set for one repository in the server's config: its jobs reach every name, the
// denied ranges still hold, and the check run proposes the allowlist to paste.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deliver, endWorld, makeWorld, startServer, until, workflowJobPayload, type ServerProcess, type World } from '../server/helpers';
import { startOutsideWorld, type OutsideWorld } from './outside-world';

let world: OutsideWorld;
let w: World;
let state: string;
let server: ServerProcess;

const WORKFLOW = `on: push
jobs:
  explore:
    runs-on: [self-hosted, stockade]
    steps:
      - run: |
          curl -sS -f --max-time 5 --cacert ca.pem https://allowed.test/ >/dev/null && echo "allowed.test reached"
          curl -sS -f --max-time 5 http://other.test/ >/dev/null && echo "other.test reached"
          curl -sS -f --max-time 5 http://meta.test/ >/dev/null && echo "meta.test REACHED" || echo "meta.test refused"
`;

before(async () => {
  world = await startOutsideWorld();
  w = await makeWorld({ '.github/workflows/ci.yml': WORKFLOW, 'ca.pem': readFileSync(world.certFile, 'utf8') });
  state = mkdtempSync(join(tmpdir(), 'stockade-state-'));
  const config = join(w.dir, 'config.yml');
  // Enforce for the organisation (nothing allowed), audit for this one repository.
  writeFileSync(config, `egress:\n  upstreamDns: ${world.dns}\n  permittedRanges: [${world.subnet}]\n  orgs:\n    octo-org: []\n  modes:\n    octo-org/hello: audit\n`);
  server = await startServer(w, state, ['--config', config, '--reconcile-seconds', '0', '--modes', 'workflow_job']);
});

after(async () => {
  await endWorld(w, server, state);
  world?.stop();
});

test('a repository in audit mode reaches every name, the link-local one stays refused, and its check run proposes the allowlist', async () => {
  await deliver(w, server.url, 'workflow_job', workflowJobPayload({ jobId: 81, name: 'explore', labels: ['self-hosted', 'stockade'] }));
  const run = await until('check run completed', () => [...w.fake.checkRuns.values()].find((c) => c.fields.external_id === 'octo-org/hello/workflow_job/81/1' && c.fields.status === 'completed'), 90_000);
  const output = run.fields.output as { summary: string; text: string };
  assert.equal(run.fields.conclusion, 'success', output.text);
  assert.match(output.text, /allowed\.test reached/);
  assert.match(output.text, /other\.test reached/, 'a name on no allowlist is reached in audit mode');
  assert.match(output.text, /meta\.test refused/, 'the denied ranges hold in audit mode');
  assert.match(output.summary, /\*\*Egress audit\*\*: \d+ names? reached; the allowlist that enforces the same:/);
  assert.match(output.summary, /```yaml\negress:\n {2}allow:\n(?: {4}- [a-z0-9.-]+\n)*? {4}- allowed\.test\n(?: {4}- [a-z0-9.-]+\n)*? {4}- other\.test\n/);
});
