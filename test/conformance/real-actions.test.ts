/**
 * Published actions and clients, unmodified, against the results service through the real
 * sandbox: actions/cache@v5.0.5 from ../shared/real-actions (cache service v2, and v1 as on
 * GitHub Enterprise Server) and @actions/artifact from npm, bundled as a local action the way
 * upload-artifact bundles it.
 */
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { stockade } from './cli';
import { build } from 'esbuild';
import { resolveHostConfig } from '../../src/host';
import { asRunner, exec } from '../../src/cli/exec';

const root = process.cwd();
const cli = join(root, 'dist/cli.js');
const realActions = join(root, '../shared/real-actions');
const work = mkdtempSync(join(tmpdir(), 'stockade-real-actions-'));
const resultsDir = join(work, 'results');
let artifactAction = '';

interface JsonStep {
  name: string;
  conclusion: string;
  outputs: Record<string, string>;
  log: string[];
}
interface JsonJob {
  id: string;
  conclusion: string;
  error?: string;
  steps: JsonStep[];
  outputs: Record<string, string>;
  results?: Record<string, number>;
}

const run = (args: string[]) => stockade(['run', ...args]);

/** A git repository named `owner/name` (its origin) holding `files`. */
function repo(name: string, files: Record<string, string>): string {
  const dir = join(work, name.replace('/', '-'), String(Math.random()).slice(2, 8));
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    writeFileSync(join(dir, p), text);
  }
  const git = (...a: string[]) => assert.equal(spawnSync('git', ['-C', dir, ...a], { encoding: 'utf8' }).status, 0, `git ${a.join(' ')}`);
  git('init', '-q', '-b', 'main');
  git('remote', 'add', 'origin', `https://github.com/${name}.git`);
  git('add', '-A');
  git('-c', 'user.email=t@example.test', '-c', 'user.name=t', 'commit', '-qm', 'x');
  return dir;
}

async function runJobs(dir: string, extra: string[] = []): Promise<{ jobs: JsonJob[]; all: string }> {
  const r = await run(['-C', dir, '--json', '--action-cache', realActions, '--results-dir', resultsDir, ...extra]);
  const all = `exit ${r.code}\nstderr: ${r.stderr.slice(0, 3000)}\nstdout: ${r.stdout.slice(0, 8000)}`;
  assert.ok(r.code === 0 || r.code === 1, all);
  return { jobs: (JSON.parse(r.stdout) as { jobs: JsonJob[] }).jobs, all };
}

const job = (jobs: JsonJob[], id: string) => {
  const j = jobs.find((x) => x.id === id);
  assert.ok(j, `no job ${id}`);
  return j;
};
const logOf = (j: JsonJob) => j.steps.flatMap((s) => s.log).join('\n');

before(async () => {
  assert.ok(existsSync(join(realActions, 'actions/cache/v5.0.5/action.yml')), `${realActions} holds the published actions (shared/ beside the checkout)`);
  // @actions/artifact as upload-artifact and download-artifact ship it: one bundled file.
  const src = join(work, 'artifact-action.mjs');
  writeFileSync(
    src,
    `import { DefaultArtifactClient } from '@actions/artifact';
import * as core from '@actions/core';
import { readdirSync } from 'node:fs';
async function main() {
  const client = new DefaultArtifactClient();
  const name = core.getInput('name');
  const ws = process.env.GITHUB_WORKSPACE;
  if (core.getInput('mode') === 'upload') {
    const dir = ws + '/' + core.getInput('path');
    const r = await client.uploadArtifact(name, readdirSync(dir).map((f) => dir + '/' + f), dir);
    core.setOutput('id', String(r.id));
    core.setOutput('size', String(r.size));
  } else {
    const { artifact } = await client.getArtifact(name);
    const r = await client.downloadArtifact(artifact.id, { path: ws + '/' + core.getInput('path') });
    core.setOutput('path', r.downloadPath);
  }
}
main().catch((e) => core.setFailed(e.message));
`,
  );
  const out = join(work, 'artifact-action.bundle.mjs');
  await build({ entryPoints: [src], bundle: true, platform: 'node', target: 'node20', format: 'esm', outfile: out, logLevel: 'error', nodePaths: [join(root, 'node_modules')], banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" } });
  artifactAction = readFileSync(out, 'utf8');
});

after(() => rmSync(work, { recursive: true, force: true }));

const CACHE_WF = `on: [push, pull_request]
jobs:
  save:
    runs-on: ubuntu-latest
    steps:
      - run: mkdir -p deps && echo "built $GITHUB_RUN_ID" > deps/lib.txt && head -c 200000 /dev/urandom > deps/blob.bin && sha256sum deps/blob.bin | cut -c1-64 > sum.txt
      - id: c
        uses: actions/cache@v5.0.5
        with:
          path: deps
          key: deps-\${{ hashFiles('lock.txt') }}
      - run: echo "save-hit=[\${{ steps.c.outputs.cache-hit }}]"
  restore:
    needs: save
    runs-on: ubuntu-latest
    steps:
      - id: c
        uses: actions/cache@v5.0.5
        with:
          path: deps
          key: deps-\${{ hashFiles('lock.txt') }}
      - run: echo "restore-hit=[\${{ steps.c.outputs.cache-hit }}]" && cat deps/lib.txt && test -s deps/blob.bin
  fallback:
    needs: save
    runs-on: ubuntu-latest
    steps:
      - id: c
        uses: actions/cache/restore@v5.0.5
        with:
          path: deps
          key: deps-no-such-key
          restore-keys: |
            nothing-
            deps-
      - run: echo "fallback-hit=[\${{ steps.c.outputs.cache-hit }}] matched=[\${{ steps.c.outputs.cache-matched-key }}]" && cat deps/lib.txt
`;

/** The workflow with no job needing another: `--job X` then runs X alone (it runs what X needs otherwise, as act does). */
const alone = (wf: string) => wf.replaceAll('    needs: save\n', '');
const setWorkflow = (dir: string, wf: string) => writeFileSync(join(dir, '.github/workflows/c.yml'), wf);

describe('actions/cache@v5.0.5 through the results service', { concurrency: 1 }, () => {
  let main = '';
  test('saves in one job; the next job restores with a hit; restore-keys fall back by prefix', async () => {
    main = repo('acme/cached', { 'lock.txt': 'lodash@4\n', '.github/workflows/c.yml': CACHE_WF });
    const { jobs, all } = await runJobs(main);
    for (const id of ['save', 'restore', 'fallback']) assert.equal(job(jobs, id).conclusion, 'success', all);
    const save = logOf(job(jobs, 'save'));
    assert.match(save, /Cache not found for input keys: deps-/, all);
    assert.match(save, /Cache saved with key: deps-/, all);
    assert.match(save, /save-hit=\[\]/);
    const restore = logOf(job(jobs, 'restore'));
    assert.match(restore, /Cache restored from key: deps-[0-9a-f]{64}/, all);
    assert.match(restore, /restore-hit=\[true\]/, all);
    assert.match(restore, /built \d+/);
    const fallback = logOf(job(jobs, 'fallback'));
    assert.match(fallback, /fallback-hit=\[false\] matched=\[deps-[0-9a-f]{64}\]/, all);
    assert.equal(job(jobs, 'save').results?.cachesSaved, 1);
    assert.equal(job(jobs, 'restore').results?.cacheHits, 1);
    assert.equal(job(jobs, 'fallback').results?.cachePartialHits, 1);
  });

  test('another repository never sees the entry', async () => {
    const other = repo('evil/other', { 'lock.txt': 'lodash@4\n', '.github/workflows/c.yml': alone(CACHE_WF) });
    const { jobs, all } = await runJobs(other, ['--job', 'fallback']);
    assert.match(logOf(job(jobs, 'fallback')), /Cache not found for input keys: deps-no-such-key, nothing-, deps-/, all);
    assert.match(logOf(job(jobs, 'fallback')), /fallback-hit=\[\] matched=\[\]/, all);
    // Nothing restored: the step reading the cached file fails.
    assert.equal(job(jobs, 'fallback').conclusion, 'failure', all);
  });

  test("a fork's pull request restores the base branch's cache, and what it saves stays in its own ref", async () => {
    assert.ok(main, 'the first test made the repository');
    const event = join(work, 'pr.json');
    writeFileSync(event, JSON.stringify({ number: 7, pull_request: { number: 7, head: { ref: 'topic', repo: { full_name: 'mallory/cached', fork: true } }, base: { ref: 'main', repo: { full_name: 'acme/cached' } } }, repository: { full_name: 'acme/cached', default_branch: 'main' } }));
    setWorkflow(main, alone(CACHE_WF));
    // Same lock file: the entry main saved is found from the pull request's ref.
    const read = await runJobs(main, ['pull_request', '-e', event, '--job', 'restore']);
    assert.match(logOf(job(read.jobs, 'restore')), /restore-hit=\[true\]/, read.all);
    // A new lock file: missed, and saved to refs/pull/7/merge only.
    writeFileSync(join(main, 'lock.txt'), 'lodash@5\n');
    const pr = await runJobs(main, ['pull_request', '-e', event, '--job', 'save']);
    assert.match(logOf(job(pr.jobs, 'save')), /Cache saved with key: deps-/, pr.all);
    const again = await runJobs(main, ['pull_request', '-e', event, '--job', 'restore']);
    assert.match(logOf(job(again.jobs, 'restore')), /restore-hit=\[true\]/, again.all);
    // main never sees what the pull request saved.
    const push = await runJobs(main, ['--job', 'restore']);
    assert.match(logOf(job(push.jobs, 'restore')), /Cache not found for input keys: deps-/, push.all);
    assert.match(logOf(job(push.jobs, 'restore')), /restore-hit=\[(false)?\]/, push.all);
  });

  test('cache service v1 (GitHub Enterprise Server: ACTIONS_CACHE_SERVICE_V2 is ignored there)', async () => {
    const dir = repo('acme/ghes', { 'lock.txt': 'x\n', '.github/workflows/c.yml': CACHE_WF });
    const { jobs, all } = await runJobs(dir, ['--github-instance', 'ghes.example.test', '--debug']);
    assert.match(logOf(job(jobs, 'save')), /Cache service version: v1/, all);
    assert.match(logOf(job(jobs, 'save')), /Cache saved with key: deps-/, all);
    assert.match(logOf(job(jobs, 'restore')), /restore-hit=\[true\]/, all);
  });
});

describe('@actions/artifact through the results service', { concurrency: 1 }, () => {
  const ART_WF = `on: push
jobs:
  up:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: mkdir -p out && echo one > out/a.txt && head -c 300000 /dev/urandom > out/b.bin && sha256sum out/b.bin | cut -c1-64 > sum.txt
      - id: u
        uses: ./.github/actions/artifact
        with: {mode: upload, name: my-build, path: out}
      - id: s
        run: echo "sum=$(cat sum.txt)" >> "$GITHUB_OUTPUT"
    outputs:
      sum: \${{ steps.s.outputs.sum }}
      id: \${{ steps.u.outputs.id }}
  down:
    needs: up
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: ./.github/actions/artifact
        with: {mode: download, name: my-build, path: got}
      - run: cat got/a.txt && test "$(sha256sum got/b.bin | cut -c1-64)" = "\${{ needs.up.outputs.sum }}" && echo "digest matches"
`;
  const files = () => ({
    '.github/workflows/a.yml': ART_WF,
    '.github/actions/artifact/action.yml': 'name: artifact\ninputs:\n  mode: {required: true}\n  name: {required: true}\n  path: {required: true}\noutputs:\n  id: {description: id}\nruns:\n  using: node20\n  main: index.mjs\n',
    '.github/actions/artifact/index.mjs': artifactAction,
  });

  test('uploads in one job and downloads, byte for byte, in a job that needs it', async () => {
    const dir = repo('acme/arts', files());
    const { jobs, all } = await runJobs(dir);
    assert.equal(job(jobs, 'up').conclusion, 'success', all);
    assert.equal(job(jobs, 'down').conclusion, 'success', all);
    assert.match(job(jobs, 'up').outputs.id ?? '', /^\d+$/, all);
    assert.match(logOf(job(jobs, 'down')), /digest matches/, all);
    assert.equal(job(jobs, 'up').results?.artifactsUploaded, 1);
    assert.equal(job(jobs, 'down').results?.artifactsDownloaded, 1);
  });

  test("a later run does not see an earlier run's artifact", async () => {
    const dir = repo('acme/arts2', files());
    const first = await runJobs(dir, ['--job', 'up']);
    assert.equal(job(first.jobs, 'up').conclusion, 'success', first.all);
    // The same download, in a run of its own.
    writeFileSync(join(dir, '.github/workflows/a.yml'), ART_WF.replace('    needs: up\n', '').replace(/ && test .*$/m, ''));
    const { jobs, all } = await runJobs(dir, ['--job', 'down']);
    assert.equal(job(jobs, 'down').conclusion, 'failure', all);
    assert.match(logOf(job(jobs, 'down')), /not found|No artifacts found|Artifact not found/i, all);
  });

  test('nothing is left behind: no forwarder container, no socket directory', async () => {
    const host = resolveHostConfig(process.env);
    const [cmd, args] = asRunner(host, ['podman', 'ps', '-a', '--filter', 'label=io.stockade.step=results', '--format', '{{.Names}}']);
    const left = await exec(cmd, args);
    assert.equal(left.code, 0, left.stderr);
    assert.equal(left.stdout.trim(), '');
    // One directory per runner process; a finished job leaves nothing in it, and the next job's
    // start removes the directories of runners that are gone (killed mid-job by earlier tests).
    const dirs = readdirSync(join(host.stateDir, 'results-sockets'));
    for (const d of dirs) assert.deepEqual(readdirSync(join(host.stateDir, 'results-sockets', d)), [], `${d} holds a job's socket`);
  });

  test('a runner killed mid-job: the next run removes its forwarder and its socket directory', async () => {
    const host = resolveHostConfig(process.env);
    const dir = repo('acme/killed', { '.github/workflows/k.yml': 'on: push\njobs:\n  hold:\n    runs-on: x\n    steps:\n      - run: sleep 120\n' });
    const child = spawn('node', [cli, 'run', '-C', dir, '--results-dir', resultsDir], { stdio: 'ignore' });
    const sockets = join(host.stateDir, 'results-sockets');
    const deadline = Date.now() + 60_000;
    let owner: string | undefined;
    while (!owner && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      owner = readdirSync(sockets).find((d) => d.startsWith(`${child.pid}.`) && readdirSync(join(sockets, d)).length > 0);
    }
    assert.ok(owner, 'the job started its results service');
    process.kill(child.pid!, 'SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const next = repo('acme/after', { '.github/workflows/n.yml': 'on: push\njobs:\n  n:\n    runs-on: x\n    steps:\n      - run: "true"\n' });
    const { jobs, all } = await runJobs(next);
    assert.equal(job(jobs, 'n').conclusion, 'success', all);
    assert.ok(!readdirSync(sockets).includes(owner), `${owner} was removed`);
    const [cmd, args] = asRunner(host, ['podman', 'ps', '-a', '--filter', 'label=io.stockade.step=results', '--format', '{{.Names}}']);
    assert.equal((await exec(cmd, args)).stdout.trim(), '', 'no forwarder is left');
  });
});

describe('actions/setup-node@v7.0.0 and the tool cache', () => {
  test('a Node.js in --tool-cache (the hosted tool-cache layout) is found without any network; one that is not there fails the step', async () => {
    const tools = join(work, 'toolcache');
    mkdirSync(join(tools, 'node/20.19.0/x64/bin'), { recursive: true });
    copyFileSync(process.execPath, join(tools, 'node/20.19.0/x64/bin/node'));
    chmodSync(join(tools, 'node/20.19.0/x64/bin/node'), 0o755);
    writeFileSync(join(tools, 'node/20.19.0/x64.complete'), '');
    const dir = repo('acme/node-app', {
      '.github/workflows/n.yml': `on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/setup-node@v7.0.0
        id: node
        with:
          node-version: 20.19.0
      - run: echo "node-version=\${{ steps.node.outputs.node-version }} at $(command -v node)"
  missing:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/setup-node@v7.0.0
        with:
          node-version: 16.0.0
`,
    });
    const { jobs, all } = await runJobs(dir, ['--tool-cache', tools]);
    assert.equal(job(jobs, 'build').conclusion, 'success', all);
    assert.match(logOf(job(jobs, 'build')), /Found in cache @ \/__t\/node\/20\.19\.0\/x64/, all);
    assert.match(logOf(job(jobs, 'build')), /node-version=v20\.\d+\.\d+ at \/__t\/node\/20\.19\.0\/x64\/bin\/node/, all);
    // Not in the cache and no network to download it from: the step fails.
    assert.equal(job(jobs, 'missing').conclusion, 'failure', all);
  });
});
