/**
 * Per-step overhead, side by side and interleaved in each round, for two shapes of step:
 *   `true`     the marginal cost of one more step;
 *   `sleep 1`  the visible overhead of a step that runs: its wall time minus the 1 s it sleeps
 *              (what preparing the next container while a step runs can hide).
 * Columns:
 *   stockade   marginal cost of one more step in a `stockade run` job:
 *              (T(job of N steps) - T(job of 1 step)) / (N - 1), full policy on, the next
 *              step's container prepared while a step runs (runner/prewarm.ts)
 *   cold       the same with STOCKADE_PREWARM=0: every container made when its step starts
 *   run        `podman run --rm IMAGE true` through the CLI (the naive approach)
 *   exec       `podman exec` into one running container (what act does; no isolation between steps)
 *   bwrap      `bwrap --unshare-all ... true` (a floor for namespace set-up)
 * Prints per-step ms (median and p90 over rounds) and the ratios. Not a test: nothing fails on time.
 *
 *   npm run build && npx tsx bench/step-overhead.ts [N=20] [ROUNDS=5]   (as root, after `stockade setup`)
 *   SHAPE=true (or SHAPE='sleep 1') runs one shape only.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const N = Number(process.argv[2] ?? 20);
const ROUNDS = Number(process.argv[3] ?? 5);
const user = process.env.STOCKADE_USER ?? 'stockade';
const uid = execFileSync('id', ['-u', user]).toString().trim();
const home = execFileSync('getent', ['passwd', user]).toString().split(':')[5]!;
const image = /base image: (\S+)/.exec(spawnSync('node', ['dist/cli.js', 'doctor']).stdout.toString())?.[1];
if (!image) throw new Error('no base image: run `stockade setup` first');
const asRunner = (args: string[]) => ['runuser', '-u', user, '--', 'env', `XDG_RUNTIME_DIR=/run/user/${uid}`, `HOME=${home}`, ...args];

function repo(steps: number, command: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'stockade-bench-steps-'));
  mkdirSync(join(dir, '.github/workflows'), { recursive: true });
  writeFileSync(join(dir, '.github/workflows/b.yml'), `on: push\njobs:\n  bench:\n    runs-on: x\n    steps:\n${`      - run: ${JSON.stringify(command)}\n`.repeat(steps)}`);
  return dir;
}

function timed(cmd: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd[0]!, cmd.slice(1), { stdio: 'ignore', cwd: opts.cwd ?? '/', env: opts.env ?? process.env });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} exited ${r.status}`);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** One shell loop of N commands as the runner user, so process start-up of the loop is paid once. */
function loop(command: string): number {
  return timed(asRunner(['sh', '-c', `for i in $(seq ${N}); do ${command} >/dev/null; done`])) / N;
}


const ctr = `stockade-bench-exec-${process.pid}`;
spawnSync(asRunner(['podman', 'run', '-d', '--name', ctr, '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096', image, 'sleep', 'infinity'])[0]!, asRunner(['podman', 'run', '-d', '--name', ctr, '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096', image, 'sleep', 'infinity']).slice(1), { stdio: 'ignore', cwd: '/' });
// bwrap is the namespace floor; where it is not installed (stockade setup does not install it) the column is skipped.
const hasBwrap = spawnSync('sh', ['-c', 'command -v bwrap'], { stdio: 'ignore' }).status === 0;
if (!hasBwrap) console.log('note: bwrap is not installed (apt-get install bubblewrap): the namespace-floor column is skipped');
const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor((s.length - 1) / 2)]!, p90: s[Math.min(s.length - 1, Math.ceil(0.9 * s.length) - 1)]! };
};

function shape(command: string, workMs: number): Record<string, { median: number; p90: number }> {
  const big = repo(N, command);
  const one = repo(1, command);
  const results: Record<string, number[]> = { stockade: [], cold: [], run: [], exec: [], ...(hasBwrap ? { bwrap: [] } : {}) };
  const cold = { ...process.env, STOCKADE_PREWARM: '0' };
  try {
    for (let r = 1; r <= ROUNDS; r++) {
      const marginal = (env?: NodeJS.ProcessEnv) => {
        const tN = timed(['node', 'dist/cli.js', 'run', '-C', big, '--json'], { cwd: process.cwd(), env });
        const t1 = timed(['node', 'dist/cli.js', 'run', '-C', one, '--json'], { cwd: process.cwd(), env });
        return (tN - t1) / (N - 1) - workMs;
      };
      results.stockade!.push(marginal());
      results.cold!.push(marginal(cold));
      results.run!.push(loop(`podman run --rm --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 ${image} ${command}`) - workMs);
      results.exec!.push(loop(`podman exec ${ctr} ${command}`) - workMs);
      if (hasBwrap) results.bwrap!.push(loop(`bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp ${command}`) - workMs);
      console.log(`${command}, round ${r}: ${Object.entries(results).map(([k, v]) => `${k} ${v[v.length - 1]!.toFixed(0)} ms`).join(', ')}`);
    }
  } finally {
    rmSync(big, { recursive: true, force: true });
    rmSync(one, { recursive: true, force: true });
  }
  return Object.fromEntries(Object.entries(results).map(([k, v]) => [k, stats(v)]));
}

try {
  // SHAPE=true or SHAPE="sleep 1" runs one shape only.
  const shapes = ([['true', 0], ['sleep 1', 1000]] as Array<[string, number]>).filter(([c]) => !process.env.SHAPE || c === process.env.SHAPE);
  const out: string[] = [];
  for (const [command, workMs] of shapes) {
    const s = shape(command, workMs);
    const ratio = (a: string, b: string) => (s[a]!.median / s[b]!.median).toFixed(2);
    out.push(`\n\`${command}\` steps, ${workMs ? 'overhead beyond the work' : 'cost'} per step over ${ROUNDS} rounds of ${N} (median / p90 ms):`);
    for (const [k, v] of Object.entries(s)) out.push(`  ${k.padEnd(9)} ${v.median.toFixed(0).padStart(5)} / ${v.p90.toFixed(0)}`);
    out.push(`ratios (medians): stockade/run ${ratio('stockade', 'run')}${workMs ? '' : ' (target <= 0.35)'}, stockade/exec ${ratio('stockade', 'exec')}, stockade/cold ${ratio('stockade', 'cold')}${hasBwrap ? `, stockade/bwrap ${ratio('stockade', 'bwrap')}` : ''}${workMs ? ` (target: stockade <= 25 ms per step)` : ''}`);
  }
  console.log(out.join('\n'));
} finally {
  spawnSync(asRunner(['podman', 'rm', '-f', '-t', '0', ctr])[0]!, asRunner(['podman', 'rm', '-f', '-t', '0', ctr]).slice(1), { stdio: 'ignore', cwd: '/' });
}
