/**
 * The results service's cost, side by side in each round, for one folder of SIZE MiB of random
 * (incompressible) data:
 *   cache-save     the post step of unmodified actions/cache@v5.0.5: tar + gzip, then upload
 *                  through the job's forwarder to the results service (twirp + Azure blob PUTs)
 *   cache-restore  its main step in the next job: lookup, download, gunzip + untar
 *   host-copy      `cp -a` of the same folder on the host, then `tar -czf` of it (what the cache
 *                  action does before any network), as the floor a round trip cannot beat
 *   artifact-up    @actions/artifact's uploadArtifact of the folder (zip + block upload), bundled
 *                  as a local action; throughput in MiB/s
 * Step durations come from `stockade run --json`. Prints medians and ratios; nothing fails on time.
 *
 *   npm run build && npx tsx bench/results-cache.ts [SIZE_MIB=100] [ROUNDS=3]   (as root, after `stockade setup`)
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';

const SIZE = Number(process.argv[2] ?? 100);
const ROUNDS = Number(process.argv[3] ?? 3);
const root = process.cwd();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

interface JsonJob {
  id: string;
  conclusion: string;
  steps: Array<{ name: string; durationMs: number; conclusion: string }>;
}

async function artifactAction(work: string): Promise<string> {
  const src = join(work, 'a.mjs');
  writeFileSync(src, `import { DefaultArtifactClient } from '@actions/artifact';
import * as core from '@actions/core';
import { readdirSync } from 'node:fs';
const dir = process.env.GITHUB_WORKSPACE + '/deps';
const t0 = Date.now();
new DefaultArtifactClient().uploadArtifact('deps', readdirSync(dir).map((f) => dir + '/' + f), dir, { compressionLevel: 0 })
  .then((r) => console.log('uploaded ' + r.size + ' bytes in ' + (Date.now() - t0) + ' ms'), (e) => core.setFailed(e.message));
`);
  const out = join(work, 'a.bundle.mjs');
  await build({ entryPoints: [src], bundle: true, platform: 'node', target: 'node20', format: 'esm', outfile: out, logLevel: 'error', nodePaths: [join(root, 'node_modules')], banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" } });
  return readFileSync(out, 'utf8');
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'stockade-bench-results-'));
  const action = await artifactAction(work);
  const r: Record<string, number[]> = { 'cache-save': [], 'cache-restore': [], 'host-copy': [], 'artifact-up': [] };
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      const dir = join(work, `repo-${round}`);
      mkdirSync(join(dir, '.github/workflows'), { recursive: true });
      mkdirSync(join(dir, '.github/actions/up'), { recursive: true });
      writeFileSync(join(dir, '.github/actions/up/action.yml'), 'name: up\nruns: {using: node20, main: index.mjs}\n');
      writeFileSync(join(dir, '.github/actions/up/index.mjs'), action);
      const key = `bench-${process.pid}-${round}`;
      writeFileSync(
        join(dir, '.github/workflows/b.yml'),
        `on: push
jobs:
  save:
    runs-on: x
    steps:
      - run: mkdir -p deps && for i in $(seq 1 ${SIZE}); do head -c 1048576 /dev/urandom > deps/f$i; done
      - uses: actions/cache@v5.0.5
        with: {path: deps, key: ${key}}
      - uses: actions/checkout@v4
      - uses: ./.github/actions/up
  restore:
    needs: save
    runs-on: x
    steps:
      - uses: actions/cache@v5.0.5
        with: {path: deps, key: ${key}}
      - run: test "$(ls deps | wc -l)" = ${SIZE}
`,
      );
      const run = spawnSync('node', [join(root, 'dist/cli.js'), 'run', '-C', dir, '--json', '--action-cache', join(root, '../shared/real-actions'), '--results-dir', join(work, 'results'), '--memory', '4g'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      if (run.status !== 0) throw new Error(`run failed: ${run.stderr}\n${run.stdout.slice(0, 4000)}`);
      const jobs = (JSON.parse(run.stdout) as { jobs: JsonJob[] }).jobs;
      const save = jobs.find((j) => j.id === 'save')!;
      const restore = jobs.find((j) => j.id === 'restore')!;
      r['cache-save']!.push(save.steps.find((s) => s.name === 'Post actions/cache@v5.0.5')!.durationMs);
      r['cache-restore']!.push(restore.steps.find((s) => s.name === 'actions/cache@v5.0.5')!.durationMs);
      r['artifact-up']!.push(save.steps.find((s) => s.name === './.github/actions/up')!.durationMs);
      // The same data on the host: copy the folder, then archive it as the cache action does.
      const data = join(work, `data-${round}`);
      mkdirSync(data);
      for (let i = 1; i <= SIZE; i++) spawnSync('sh', ['-c', `head -c 1048576 /dev/urandom > ${data}/f${i}`]);
      const t0 = process.hrtime.bigint();
      spawnSync('cp', ['-a', data, `${data}-copy`]);
      spawnSync('tar', ['-czf', `${data}.tgz`, '-C', data, '.']);
      r['host-copy']!.push(Number(process.hrtime.bigint() - t0) / 1e6);
      rmSync(data, { recursive: true, force: true });
      rmSync(`${data}-copy`, { recursive: true, force: true });
      rmSync(`${data}.tgz`, { force: true });
      rmSync(dir, { recursive: true, force: true });
      console.log(`round ${round}: ${Object.entries(r).map(([k, v]) => `${k} ${v[v.length - 1]!.toFixed(0)} ms`).join(', ')}`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const m = Object.fromEntries(Object.entries(r).map(([k, v]) => [k, median(v)])) as Record<string, number>;
  console.log(`\n${SIZE} MiB of random data, ${ROUNDS} rounds, medians:`);
  for (const [k, v] of Object.entries(m)) console.log(`  ${k.padEnd(14)} ${v.toFixed(0).padStart(7)} ms`);
  const trip = m['cache-save']! + m['cache-restore']!;
  console.log(`  round trip (save + restore) ${trip.toFixed(0)} ms = ${(trip / m['host-copy']!).toFixed(2)} x the host copy + archive`);
  console.log(`  artifact upload ${((SIZE / m['artifact-up']!) * 1000).toFixed(1)} MiB/s (step time, zip level 0 included)`);
}

void main();
