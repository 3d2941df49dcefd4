// stockade run and doctor work from whatever cgroup they are started in (a login shell, a systemd
// unit, another shell than setup's): root makes the step cgroups under its own and removes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { detectCgroupHost } from '../../src/sandbox';

const cli = join(process.cwd(), 'dist/cli.js');
const CONTROLLERS = ['memory', 'pids', 'cpu', 'cpuacct'];

test('from a cgroup setup never saw: doctor is satisfied, a job runs with its limits read back, and nothing is left in that cgroup', async (t) => {
  const host = detectCgroupHost();
  if (host.mode !== 'v1') return t.skip('cgroup v2 host: Podman applies the limits itself');
  // A fresh cgroup nested under this process's own, per controller (cpu and cpuacct may share a mount).
  const others = [...new Set(CONTROLLERS.map((c) => join(host.own[c]!.mount, host.own[c]!.path, `stockade-other-${process.pid}`)))];
  for (const d of others) mkdirSync(d);
  const dir = mkdtempSync(join(tmpdir(), 'stockade-other-cgroup-'));
  try {
    mkdirSync(join(dir, '.github/workflows'), { recursive: true });
    writeFileSync(join(dir, '.github/workflows/ci.yml'), 'on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo "from another cgroup"\n');
    const script = `${others.map((d) => `echo $$ > ${d}/cgroup.procs`).join(' && ')} && node ${cli} doctor && node ${cli} run -C ${dir} --json --memory 300m`;
    const r = await new Promise<{ code: number | null; out: string }>((done) => {
      const child = spawn('sh', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b));
      child.stderr.on('data', (b: Buffer) => (out += b));
      child.on('exit', (code) => done({ code, out }));
    });
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /cgroup limits.*(made as needed under this process's own cgroups|step cgroups under)/);
    assert.match(r.out, /"conclusion": "success"/);
    assert.match(r.out, /from another cgroup/);
    // Nothing of Stockade's is left in the other cgroup: it can go, as systemd removes a session's scope.
    for (const d of others) assert.deepEqual(readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name), [], `${d} still has child cgroups`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    for (const d of others) {
      for (let i = 0; i < 50 && existsSync(d); i++) {
        try {
          rmdirSync(d);
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
  }
  for (const d of others) assert.ok(!existsSync(d), `${d} could not be removed`);
});
