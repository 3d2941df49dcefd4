/**
 * Egress sidecar costs, against the test's own outside world (a network namespace
 * this script creates on 198.18.N.0/24; nothing else is contacted):
 *   start-up   wall time of a one-step job with an allowlist minus the same job
 *              without one (median of ROUNDS), and the sidecar's own "ready in" figure
 *   memory     resident memory of the sidecar's processes while a job runs
 *   throughput a SIZE MiB download from the local server: direct from the host,
 *              through the sidecar's proxy (HTTP, and HTTPS via CONNECT), and
 *              transparently (DNS → sidecar → Host header / SNI)
 * Prints figures; nothing fails on time.
 *
 *   npm run build && npx tsx bench/egress.ts [ROUNDS=5] [SIZE=100]   (as root, after `stockade setup`)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startOutsideWorld } from '../test/network/outside-world';

const ROUNDS = Number(process.argv[2] ?? 5);
const SIZE = Number(process.argv[3] ?? 100);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const world = await startOutsideWorld();
  const dirs: string[] = [];
  const repo = (script: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'stockade-bench-egress-'));
    dirs.push(dir);
    mkdirSync(join(dir, '.github/workflows'), { recursive: true });
    copyFileSync(world.certFile, join(dir, 'ca.pem'));
    writeFileSync(join(dir, '.github/workflows/b.yml'), `on: push\njobs:\n  b:\n    runs-on: x\n    steps:\n      - run: |\n${script.split('\n').map((l) => `          ${l}`).join('\n')}\n`);
    return dir;
  };
  const egressArgs = ['--allow-domain', 'allowed.test', '--upstream-dns', world.dns, '--permit-range', world.subnet];
  const run = (dir: string, extra: string[]) => {
    const t0 = process.hrtime.bigint();
    const r = spawnSync('node', ['dist/cli.js', 'run', '-C', dir, '--json', ...extra], { encoding: 'utf8', maxBuffer: 64 * 1024 ** 2 });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0) throw new Error(`stockade run exited ${r.status}: ${r.stdout.slice(-2000)} ${r.stderr.slice(-2000)}`);
    return { ms, json: JSON.parse(r.stdout) as { jobs: Array<{ steps: Array<{ log: string[] }> }> } };
  };
  try {
    const trivial = repo('true');
    const without: number[] = [];
    const withEgress: number[] = [];
    const ready: number[] = [];
    run(trivial, egressArgs); // first use fills the externals volumes
    for (let i = 0; i < ROUNDS; i++) {
      without.push(run(trivial, []).ms);
      const r = run(trivial, egressArgs);
      withEgress.push(r.ms);
      const line = r.json.jobs[0]!.steps.flatMap((s) => s.log).find((l) => l.includes('ready in'));
      ready.push(Number(/ready in (\d+) ms/.exec(line ?? '')?.[1] ?? NaN));
    }
    console.log(`start-up: job without egress ${median(without).toFixed(0)} ms, with egress ${median(withEgress).toFixed(0)} ms: +${(median(withEgress) - median(without)).toFixed(0)} ms per job (median of ${ROUNDS}); sidecar network+container ready in ${median(ready)} ms`);

    // Memory of the sidecar's processes while a job is running (and after a download).
    const memDir = repo(`curl -sS -o /dev/null http://allowed.test/big/${SIZE}\nsleep 3`);
    const child = (await import('node:child_process')).spawn('node', ['dist/cli.js', 'run', '-C', memDir, ...egressArgs], { stdio: 'ignore' });
    let rssKb = 0;
    for (let i = 0; i < 60 && child.exitCode === null; i++) {
      await new Promise((r) => setTimeout(r, 200));
      for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
        try {
          const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
          if (!cmd.includes('/__s/sidecar.js')) continue;
          const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
          rssKb = Math.max(rssKb, kb);
        } catch {
          /* gone */
        }
      }
    }
    if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
    console.log(`memory: sidecar peak RSS ${(rssKb / 1024).toFixed(1)} MiB (limit 256 MiB) during a ${SIZE} MiB download`);

    // Throughput of a SIZE MiB download.
    const host: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const out = execFileSync('curl', ['-sS', '-o', '/dev/null', '-w', '%{speed_download}', `http://${world.allowed}/big/${SIZE}`]).toString();
      host.push(Number(out) / 1024 ** 2);
    }
    // The same download from a container on the routed network Podman gives the sidecar
    // (rootless: slirp4netns carries it), without the proxy: the cost of the way out itself.
    const user = process.env.STOCKADE_USER ?? 'stockade';
    const uid = execFileSync('id', ['-u', user]).toString().trim();
    const image = /base image: (\S+)/.exec(spawnSync('node', ['dist/cli.js', 'doctor']).stdout.toString())?.[1] ?? '';
    const routed = execFileSync('runuser', ['-u', user, '--', 'env', `XDG_RUNTIME_DIR=/run/user/${uid}`, 'podman', 'run', '--rm', '--network', 'stockade-egress', image, 'bash', '-c', `for i in $(seq ${ROUNDS}); do curl -sS -o /dev/null -w '%{speed_download}\\n' http://${world.allowed}/big/${SIZE}; done`], { cwd: '/' })
      .toString()
      .trim()
      .split('\n')
      .map((x) => Number(x) / 1024 ** 2);
    const script = [
      `for i in $(seq ${ROUNDS}); do`,
      `  echo "proxy-http $(curl -sS -o /dev/null -w '%{speed_download}' http://allowed.test/big/${SIZE})"`,
      `  echo "proxy-https $(curl -sS --cacert ca.pem -o /dev/null -w '%{speed_download}' https://allowed.test/big/${SIZE})"`,
      `  echo "transparent-http $(curl -sS --noproxy '*' -o /dev/null -w '%{speed_download}' http://allowed.test/big/${SIZE})"`,
      `  echo "transparent-https $(curl -sS --noproxy '*' --cacert ca.pem -o /dev/null -w '%{speed_download}' https://allowed.test/big/${SIZE})"`,
      'done',
    ].join('\n');
    const r = run(repo(script), egressArgs);
    const speeds = new Map<string, number[]>();
    for (const l of r.json.jobs[0]!.steps.flatMap((s) => s.log)) {
      const m = /^(\S+) (\d+(?:\.\d+)?)$/.exec(l);
      if (m) speeds.set(m[1]!, [...(speeds.get(m[1]!) ?? []), Number(m[2]) / 1024 ** 2]);
    }
    const direct = median(host);
    console.log(`throughput (${SIZE} MiB, median of ${ROUNDS}): direct from the host ${direct.toFixed(0)} MiB/s; from a container on the routed egress network, no proxy ${median(routed).toFixed(0)} MiB/s`);
    for (const [k, v] of speeds) console.log(`  ${k.padEnd(18)} ${median(v).toFixed(0)} MiB/s = ${((median(v) / direct) * 100).toFixed(0)} % of direct from the host, ${((median(v) / median(routed)) * 100).toFixed(0)} % of the routed container`);
  } finally {
    world.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
