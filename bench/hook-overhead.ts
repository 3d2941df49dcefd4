/**
 * Runner mode's cost per step, side by side and interleaved in each round:
 *   hook       one `run_script_step` of `true` through the installed hook (/opt/stockade/hook.js,
 *              run as github-runner with Node, as GitHub's runner runs it) and the broker setup
 *              started: wall time of the hook process, as the runner waits for it
 *   hook-node  `node -e 0` as the same user: the part of `hook` that is the runner's own Node start-up
 *   local      marginal cost of one more `true` step in a `stockade run` job (bench/step-overhead.ts's shape)
 *   local-net  the same with an allowlist (`--allow-domain example.invalid`): each step on the job's network,
 *              as every runner-mode step is when the broker allows GitHub's endpoints (its default)
 * plus the time of prepare_job (the image probe) and cleanup_job. Prints medians, p90 and ratios;
 * nothing fails on time. The runner's side is the test harness (test/hook/runner-harness.ts).
 *
 *   npm run build && npx tsx bench/hook-overhead.ts [N=20] [ROUNDS=5]   (as root, after `stockade setup --runner`)
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeRunner, RUNNER_GID, RUNNER_UID } from '../test/hook/runner-harness';

const N = Number(process.argv[2] ?? 20);
const ROUNDS = Number(process.argv[3] ?? 5);
const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor((s.length - 1) / 2)]!, p90: s[Math.min(s.length - 1, Math.ceil(0.9 * s.length) - 1)]! };
};

function repo(steps: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'stockade-bench-hook-'));
  mkdirSync(join(dir, '.github/workflows'), { recursive: true });
  writeFileSync(join(dir, '.github/workflows/b.yml'), `on: push\njobs:\n  bench:\n    runs-on: x\n    steps:\n${'      - run: "true"\n'.repeat(steps)}`);
  return dir;
}

function timed(cmd: string[]): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd[0]!, cmd.slice(1), { stdio: 'ignore', cwd: process.cwd() });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} exited ${r.status}`);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

async function main(): Promise<void> {
  const base = `/home/github-runner/bench-${process.pid}`;
  mkdirSync(base, { recursive: true });
  const big = repo(N);
  const one = repo(1);
  const results: Record<string, number[]> = { hook: [], 'hook-node': [], local: [], 'local-net': [], prepare: [], cleanup: [] };
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      const runner = new FakeRunner(base, '');
      let t0 = performance.now();
      const p = await runner.prepareJob({ image: 'stockade/base' });
      if (p.code !== 0) throw new Error(`prepare_job failed: ${p.stdout}`);
      results.prepare!.push(performance.now() - t0);
      const steps: number[] = [];
      for (let i = 0; i < N; i++) {
        t0 = performance.now();
        const s = await runner.runScript('true');
        if (s.code !== 0) throw new Error(`step failed: ${s.stdout}`);
        steps.push(performance.now() - t0);
      }
      results.hook!.push(stats(steps).median);
      t0 = performance.now();
      await runner.cleanupJob();
      results.cleanup!.push(performance.now() - t0);
      runner.remove();
      results['hook-node']!.push(timed(['setpriv', `--reuid=${RUNNER_UID}`, `--regid=${RUNNER_GID}`, '--init-groups', '--', 'node', '-e', '0']));
      const tN = timed(['node', 'dist/cli.js', 'run', '-C', big, '--json']);
      const t1 = timed(['node', 'dist/cli.js', 'run', '-C', one, '--json']);
      results.local!.push((tN - t1) / (N - 1));
      const net = ['--allow-domain', 'example.invalid', '--upstream-dns', '127.0.0.1'];
      const nN = timed(['node', 'dist/cli.js', 'run', '-C', big, '--json', ...net]);
      const n1 = timed(['node', 'dist/cli.js', 'run', '-C', one, '--json', ...net]);
      results['local-net']!.push((nN - n1) / (N - 1));
      console.log(`round ${round}: ${Object.entries(results).map(([k, v]) => `${k} ${v[v.length - 1]!.toFixed(0)} ms`).join(', ')}`);
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
    rmSync(big, { recursive: true, force: true });
    rmSync(one, { recursive: true, force: true });
  }
  const s = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, stats(v)]));
  console.log(`\nover ${ROUNDS} rounds of ${N} steps (median / p90 ms):`);
  for (const [k, v] of Object.entries(s)) console.log(`  ${k.padEnd(10)} ${v.median.toFixed(0).padStart(5)} / ${v.p90.toFixed(0)}`);
  const hook = s.hook!.median;
  const local = s.local!.median;
  const localNet = s['local-net']!.median;
  console.log(`ratios (medians): hook/local ${(hook / local).toFixed(2)}, hook/local-net ${(hook / localNet).toFixed(2)}; hook minus Node start-up ${(hook - s['hook-node']!.median).toFixed(0)} ms vs local-net ${localNet.toFixed(0)} ms`);
}

void main();
