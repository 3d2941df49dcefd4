// Runs last in the sandbox directory (files run one at a time, in name order): it kills the
// runner user's Podman processes, as a machine that stops does, and sets up again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { host, root, tempDir } from './helpers';

const cli = join(root, 'dist/cli.js');

/** The runner user's Podman processes: the API service (under catatonit), conmon, the pause process, slirp4netns, the keeper. */
function podmanProcesses(): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (statSync(`/proc/${d}`).uid !== host.runnerUid) continue;
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      const argv0 = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0')[0]!;
      if (/(^|\/)(catatonit|podman|conmon|slirp4netns|podman-init|sleep)$/.test(argv0)) pids.push(Number(d));
    } catch {
      // ended meanwhile
    }
  }
  return pids;
}

test('after the machine stops with the netns keeper running, setup recovers Podman and a job with a network runs', { timeout: 240_000 }, () => {
  const dir = tempDir();
  mkdirSync(join(dir, '.github/workflows'), { recursive: true });
  writeFileSync(join(dir, '.github/workflows/n.yml'), 'on: push\njobs:\n  j:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo reached-$((6*7))\n');
  const run = () => spawnSync('node', [cli, 'run', '-C', dir, '--allow-domain', 'example.invalid'], { encoding: 'utf8', timeout: 120_000 });
  const first = run();
  assert.equal(first.status, 0, first.stderr + first.stdout);
  const keeperUp = spawnSync('runuser', ['-u', host.runnerUser, '--', 'env', `XDG_RUNTIME_DIR=${host.runtimeDir}`, `HOME=${host.runnerHome}`, 'podman', 'ps', '--format', '{{.Names}}'], { encoding: 'utf8', cwd: '/' });
  assert.match(keeperUp.stdout, /stockade-netns-keeper/);

  // The machine stops: every process of the runner user's Podman ends at once, its records stay.
  const victims = podmanProcesses();
  assert.ok(victims.length >= 4, `expected the service, conmon, the pause process and the keeper, found ${victims.length}`);
  for (const p of victims) process.kill(p, 'SIGKILL');
  for (let i = 0; i < 50 && podmanProcesses().length; i++) spawnSync('sleep', ['0.1']);
  assert.deepEqual(podmanProcesses(), []);

  const setup = spawnSync('node', [cli, 'setup', '--no-images'], { encoding: 'utf8', timeout: 180_000 });
  assert.equal(setup.status, 0, setup.stderr);
  assert.match(setup.stderr, /podman system migrate/);
  const again = run();
  assert.equal(again.status, 0, again.stderr + again.stdout);
  assert.match(again.stdout, /reached-42/);
  const keeper = spawnSync('runuser', ['-u', host.runnerUser, '--', 'env', `XDG_RUNTIME_DIR=${host.runtimeDir}`, `HOME=${host.runnerHome}`, 'podman', 'ps', '--format', '{{.Names}} {{.Status}}'], { encoding: 'utf8', cwd: '/' });
  assert.match(keeper.stdout, /stockade-netns-keeper Up/);
});
