/**
 * Server runner mode: time from a `workflow_job` delivery to GitHub's runner process asking for its
 * job, split at the moment the server mints the JIT runner (generate-jitconfig reaches GitHub):
 *   admit   delivery → generate-jitconfig (intake, queue, admission, the API call)
 *   start   generate-jitconfig → the runner's first request (directory laid out by hard links, process started)
 * The runner is test/server/fake-runner.mjs (a Node process, as run.sh starts the real runner's .NET
 * Listener: the real one adds its own start-up, about a second); GitHub is the fake. Prints medians
 * and p90 over ROUNDS sequential jobs; nothing fails on time.
 *
 *   npm run build && npx tsx bench/jit-start.ts [ROUNDS=10]   (as root, after `stockade setup --runner`)
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deliver, endWorld, makeWorld, startServer, until, workflowJobPayload } from '../test/server/helpers';

const ROUNDS = Number(process.argv[2] ?? 10);
const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return `${s[Math.floor((s.length - 1) / 2)]!.toFixed(0)} / ${s[Math.min(s.length - 1, Math.ceil(0.9 * s.length) - 1)]!.toFixed(0)}`;
};

async function main(): Promise<void> {
  const root = process.cwd();
  const install = `/home/github-runner/bench-actions-runner-${process.pid}`;
  for (const d of [install, join(install, 'bin'), join(install, 'externals/node20/bin')]) mkdirSync(d, { recursive: true });
  copyFileSync(join(root, 'test/server/fake-runner.mjs'), join(install, 'bin/fake-runner.mjs'));
  copyFileSync(process.execPath, join(install, 'externals/node20/bin/node'));
  writeFileSync(join(install, 'run.sh'), `#!/bin/sh\nexec "$(dirname "$0")/externals/node20/bin/node" "$(dirname "$0")/bin/fake-runner.mjs" "$@"\n`, { mode: 0o755 });
  spawnSync('chown', ['-R', '100000:100000', install]);
  const w = await makeWorld({ '.github/workflows/ci.yml': 'on: push\njobs:\n  build:\n    runs-on: [self-hosted, stockade]\n    steps:\n      - run: "true"\n' });
  const state = mkdtempSync(join(tmpdir(), 'stockade-bench-jit-'));
  // PACING=off: without the 1 s between GitHub writes that GitHub's rate-limit guidance asks for (on by default).
  const server = await startServer(w, state, ['--mode', 'runner', '--runner-install', install, '--runner-poll', '500ms', '--no-github-egress', '--modes', 'workflow_job', ...(process.env.PACING === 'off' ? ['--no-request-pacing'] : [])]);
  const admit: number[] = [];
  const start: number[] = [];
  try {
    for (let i = 0; i < ROUNDS; i++) {
      const id = 7000 + i;
      w.fake.queuedJobs.set('octo-org/hello', [{ id, steps: ['true'] }]);
      const t0 = Date.now();
      await deliver(w, server.url, 'workflow_job', workflowJobPayload({ jobId: id, name: 'build', labels: ['self-hosted', 'linux', 'x64', 'stockade'] }));
      const r = await until('the runner asks for its job', () => [...w.fake.runners.values()].find((x) => x.jobs.includes(id) && x.firstPollAt), 60_000);
      admit.push(r.mintedAt - t0);
      start.push(r.firstPollAt! - r.mintedAt);
      await until('the job is reported', () => [...w.fake.checkRuns.values()].find((c) => c.fields.external_id === `octo-org/hello/workflow_job/${id}/1` && c.fields.status === 'completed'), 60_000);
      console.log(`job ${i + 1}: admit ${admit[i]} ms, start ${start[i]} ms`);
    }
  } finally {
    await endWorld(w, server, state);
    rmSync(install, { recursive: true, force: true });
  }
  console.log(`\nover ${ROUNDS} jobs (median / p90 ms): admit ${stats(admit)}, start ${stats(start)}, delivery → runner process ${stats(admit.map((a, i) => a + start[i]!))}`);
}

void main();
