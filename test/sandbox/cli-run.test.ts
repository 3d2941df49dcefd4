import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync, readdirSync, existsSync, readFileSync, statfsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LABEL_MANAGED, LABEL_OWNER, processTag } from '../../src/sandbox';
import { root, sandbox, tempDir } from './helpers';

const cli = join(root, 'dist/cli.js');

function repo(workflow: string): string {
  const dir = tempDir();
  mkdirSync(join(dir, '.github/workflows'), { recursive: true });
  writeFileSync(join(dir, '.github/workflows/ci.yml'), workflow);
  writeFileSync(join(dir, 'README.md'), 'repo\n');
  return dir;
}

function run(dir: string, ...args: string[]) {
  return spawnSync('node', [cli, 'run', '-C', dir, ...args], { encoding: 'utf8', timeout: 120_000 });
}

test('two steps run in different containers: the workspace and /tmp carry over (as on GitHub), processes and /var/tmp do not', () => {
  const dir = repo(`on: push
jobs:
  a:
    runs-on: [self-hosted]
    steps:
      - id: one
        run: |
          awk '$5 == "/"' /proc/self/mountinfo > container-1
          echo persisted > file.txt; echo kept > /tmp/t.txt; echo gone > /var/tmp/t.txt
          tool=$(mktemp -d) && printf '#!/bin/sh\\necho tool from tmp\\n' > "$tool/mytool" && chmod +x "$tool/mytool" && echo "$tool" >> "$GITHUB_PATH"
          setsid sleep 1000 > /dev/null 2>&1 &
          echo "x=1" >> "$GITHUB_OUTPUT"
      - run: |
          test "$(cat file.txt)" = persisted
          test "$(cat /tmp/t.txt)" = kept && echo "tmp carried over"
          test ! -e /var/tmp/t.txt && echo "var-tmp is clean"
          mytool
          test "$(stat -c %a /tmp)" = 1777 && echo "tmp is sticky"
          if pgrep -f "sleep 1000"; then echo "LEFTOVER PROCESS"; exit 1; fi
          test -s container-1 && test "$(awk '$5 == "/"' /proc/self/mountinfo)" != "$(cat container-1)" && echo "different container"
          echo "output \${{ steps.one.outputs.x }}"
`);
  const r = run(dir, '--json');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const json = JSON.parse(r.stdout) as { jobs: Array<{ steps: Array<{ conclusion: string }> }> };
  assert.deepEqual(json.jobs[0]!.steps.map((s) => s.conclusion), ['success', 'success']);
  const human = run(dir);
  assert.match(human.stdout, /tmp carried over/);
  assert.match(human.stdout, /var-tmp is clean/);
  assert.match(human.stdout, /tool from tmp/);
  assert.match(human.stdout, /tmp is sticky/);
  assert.match(human.stdout, /different container/);
  assert.match(human.stdout, /output 1/);
  assert.match(human.stdout, /peak memory/);
});

test('a failing step fails the job (exit 1), continue-on-error and if: failure()/always() behave as on GitHub', () => {
  const dir = repo(`on: push
jobs:
  a:
    runs-on: [self-hosted]
    timeout-minutes: 0.5
    steps:
      - run: exit 3
        continue-on-error: true
      - run: exit 4
      - run: echo never
      - if: failure()
        run: echo "on failure"
      - if: always()
        run: echo "always"
`);
  const r = run(dir, '--json');
  assert.equal(r.status, 1, r.stderr);
  const steps = (JSON.parse(r.stdout) as { jobs: Array<{ steps: Array<{ conclusion: string; outcome: string; exitCode: number | null }> }> }).jobs[0]!.steps;
  assert.deepEqual(steps.map((s) => s.conclusion), ['success', 'failure', 'skipped', 'success', 'success']);
  assert.equal(steps[0]!.outcome, 'failure');
  assert.equal(steps[1]!.exitCode, 4);
});

test('a malformed workflow gives exit 2 with file:line:column and runs nothing', () => {
  const dir = repo('on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo hi\n        shell: bash\n        bogus-key: 1\n');
  const r = run(dir);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /\.github\/workflows\/ci\.yml:8:9: error: .*bogus-key/);
  assert.equal(r.stdout, '');
});

test('kill -9 of the runner mid-job: the next start leaves no labelled container, volume or cgroup behind', async () => {
  const dir = repo('on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: sleep 300\n');
  const child = spawn('node', [cli, 'run', '-C', dir], { stdio: 'ignore' });
  const tag = await waitFor(() => processTag(child.pid!));
  const sb = await sandbox();
  const owned = async () => ({
    containers: (await sb.deps.engine.listContainers(`${LABEL_OWNER}=${tag}`)).length,
    volumes: (await sb.deps.engine.listVolumes(`${LABEL_OWNER}=${tag}`)).length,
  });
  await waitFor(async () => ((await owned()).containers > 0 ? true : undefined), 60_000);
  const cgroupsOf = () => ['pids', 'cpu'].flatMap((c) => {
    const d = `/sys/fs/cgroup/${c}/stockade`;
    return existsSync(d) ? readdirSync(d).filter((n) => n.startsWith(`${tag}_`)) : [];
  });
  await waitFor(() => (cgroupsOf().length > 0 ? true : undefined), 30_000);
  // The job's own disk (a loop-mounted filesystem) exists while it runs.
  const disksOf = () => (existsSync('/var/lib/stockade/disks') ? readdirSync('/var/lib/stockade/disks').filter((n) => n.startsWith(`${tag}-`)) : []);
  const loopsOf = () => (spawnSync('losetup', ['-a'], { encoding: 'utf8' }).stdout.match(new RegExp(`/var/lib/stockade/disks/${tag!.replace('.', '\\.')}-`, 'g')) ?? []).length;
  assert.ok(disksOf().length > 0 && loopsOf() === 1, `disk ${disksOf().join(' ')}, loops ${loopsOf()}`);
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const again = run(repo('on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: "true"\n'));
  assert.equal(again.status, 0, again.stderr);
  assert.deepEqual(await owned(), { containers: 0, volumes: 0 });
  assert.deepEqual(cgroupsOf(), []);
  assert.deepEqual(disksOf(), [], "the dead runner's job disk is gone");
  assert.equal(loopsOf(), 0, 'and its loop device is detached');
  assert.equal((await sb.deps.engine.listContainers(`${LABEL_MANAGED}=true`)).filter((c) => c.labels[LABEL_OWNER] === tag).length, 0);
});

test('SIGTERM mid-job stops the step and removes the job\'s containers and volumes before exit', async () => {
  const dir = repo('on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: sleep 300\n');
  const child = spawn('node', [cli, 'run', '-C', dir], { stdio: 'ignore' });
  const tag = await waitFor(() => processTag(child.pid!));
  const sb = await sandbox();
  await waitFor(async () => ((await sb.deps.engine.listContainers(`${LABEL_OWNER}=${tag}`)).length ? true : undefined), 60_000);
  child.kill('SIGTERM');
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  assert.equal(code, 130);
  assert.equal((await sb.deps.engine.listContainers(`${LABEL_OWNER}=${tag}`)).length, 0);
  assert.equal((await sb.deps.engine.listVolumes(`${LABEL_OWNER}=${tag}`)).length, 0);
});

async function waitFor<T>(f: () => T | undefined | Promise<T | undefined>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await f();
    if (v !== undefined) return v;
    await sleep(100);
  }
  throw new Error('timed out waiting');
}

test('host identity does not leak: /etc/hosts and the host name in steps and services carry only the job\'s own names', () => {
  const image = spawnSync('node', [cli, 'images', 'list', '--json'], { encoding: 'utf8' });
  const base = (JSON.parse(image.stdout) as Array<{ name: string; ref: string }>).find((i) => i.name === 'base')!.ref;
  const hostNames = readFileSync('/etc/hosts', 'utf8').split('\n').filter((l) => l.trim() && !l.startsWith('#')).flatMap((l) => l.trim().split(/\s+/).slice(1)).filter((n) => !/^(localhost|ip6-\w+)$/.test(n));
  const hostName = hostname();
  const dir = repo(`on: push
jobs:
  a:
    runs-on: [self-hosted]
    services:
      db:
        image: ${base}
    steps:
      - run: echo "HOSTS-NONET $(tr '\\n' ' ' < /etc/hosts) NAME $(hostname)"
  b:
    runs-on: [self-hosted]
    steps:
      - run: echo "HOSTS-PLAIN $(tr '\\n' ' ' < /etc/hosts) NAME $(hostname)"
`);
  const r = run(dir);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const lines = r.stdout.split('\n').filter((l) => /\| HOSTS-(NONET|PLAIN) /.test(l));
  assert.equal(lines.length, 2, r.stdout);
  for (const l of lines) {
    for (const n of [...hostNames, hostName]) assert.ok(!new RegExp(`\\b${n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\b`).test(l.replace(/^.*?\| /, '')), `host name ${n} leaked: ${l}`);
    assert.doesNotMatch(l, /host\.containers\.internal|host\.docker\.internal/);
  }
  assert.match(lines.find((l) => l.includes('NONET'))!, /\bdb\b/, 'the service is reachable by name');
});

test('disk and inode limits bite on everything a job writes: filling the disk or creating files past the limit ends the step as disk-limit, the host disk is untouched, the next job starts clean', () => {
  const dir = repo(`on: push
jobs:
  a:
    runs-on: x
    steps:
      - run: df -B1 --output=size /github/workspace /github/home /__w/_temp /__t | tail -n +2; df --output=itotal /github/workspace | tail -1
      - run: echo kept > kept.txt && head -c 200000000 /dev/zero > "$HOME/big.bin"
      - if: always()
        run: rm -f "$HOME/big.bin" && cat kept.txt && mkdir -p many && cd many && for i in $(seq 1 3000); do touch "f$i"; done
      - if: always()
        run: rm -rf many && echo "room again"
`);
  const free0 = statfsSync('/').bavail * statfsSync('/').bsize;
  const r = run(dir, '--disk', '96m', '--inodes', '2000', '--json');
  assert.equal(r.status, 1, r.stderr);
  const j = JSON.parse(r.stdout) as { jobs: Array<{ disk: { bytesLimit: number; inodesLimit: number; bytesUsed: number }; steps: Array<{ exitReason: string; conclusion: string; log: string[]; error?: string }> }> };
  const steps = j.jobs[0]!.steps;
  // Read back inside the step: all four volumes on one 96 MiB filesystem of about 2,000 inodes (mkfs rounds up).
  const sizes = steps[0]!.log.map((l) => Number(l.trim())).filter((n) => n > 0);
  assert.equal(new Set(sizes.slice(0, 4)).size, 1, steps[0]!.log.join('\n'));
  assert.ok(sizes[0]! > 88 * 1024 ** 2 && sizes[0]! <= 96 * 1024 ** 2, String(sizes[0]));
  assert.ok(sizes[4]! >= 2000 && sizes[4]! < 2300, String(sizes[4]));
  assert.equal(steps[1]!.exitReason, 'disk-limit', JSON.stringify(steps[1]));
  assert.match(steps[1]!.error ?? '', /disk limit was reached/);
  assert.equal(steps[2]!.exitReason, 'disk-limit', JSON.stringify(steps[2]));
  assert.ok(steps[2]!.log.some((l) => l === 'kept'), 'the workspace survives a full disk');
  assert.equal(steps[3]!.conclusion, 'success', JSON.stringify(steps[3]));
  assert.ok(j.jobs[0]!.disk.bytesLimit > 88 * 1024 ** 2, JSON.stringify(j.jobs[0]!.disk));
  const free1 = statfsSync('/').bavail * statfsSync('/').bsize;
  assert.ok(free0 - free1 < 64 * 1024 ** 2, `host disk lost ${free0 - free1} bytes`);
  const next = run(repo('on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: test ! -e kept.txt && df -B1 --output=used /github/workspace | tail -1\n'), '--json');
  assert.equal(next.status, 0, next.stderr);
});

test('act habits for runs: --matrix KEY:VALUE picks combinations, --var-file and --input-file read dotenv files', () => {
  const dir = repo(`on:
  workflow_dispatch:
    inputs:
      who: {type: string, default: nobody}
jobs:
  m:
    runs-on: [self-hosted]
    strategy:
      matrix:
        os: [a, b, c]
        node: [18, 20]
    steps:
      - run: echo "COMBO \${{ matrix.os }}-\${{ matrix.node }} \${{ vars.GREETING }} \${{ inputs.who }}"
`);
  writeFileSync(join(dir, 'vars.env'), 'GREETING=hello\n');
  writeFileSync(join(dir, 'inputs.env'), 'who=octocat\n');
  const r = run(dir, 'workflow_dispatch', '--matrix', 'node:18', '--matrix', 'os:b', '--matrix', 'os:c', '--var-file', join(dir, 'vars.env'), '--input-file', join(dir, 'inputs.env'));
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const combos = [...r.stdout.matchAll(/\| COMBO (\S+) (\S+) (\S+)$/gm)].map((m) => m.slice(1).join(' '));
  assert.deepEqual(combos.sort(), ['b-18 hello octocat', 'c-18 hello octocat']);
  const bad = run(dir, 'workflow_dispatch', '--matrix', 'node');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--matrix needs KEY:VALUE/);
  const badFile = run(dir, 'workflow_dispatch', '--var-file', join(dir, 'missing.env'));
  assert.equal(badFile.status, 2);
  assert.match(badFile.stderr, /--var-file .*missing\.env: ENOENT/);
});
