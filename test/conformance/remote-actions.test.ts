/**
 * Remote actions fetched and pinned: `owner/repo@ref` resolved to a commit through GitHub's API
 * (the fake GitHub, every request checked against GitHub's OpenAPI description), the archive
 * downloaded once into the host's content-addressed cache, the commit recorded in the result.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stockade } from './cli';
import { FakeGitHub } from '../server/fake-github';
import { resolveHostConfig } from '../../src/host';

const work = mkdtempSync(join(tmpdir(), 'stockade-remote-actions-'));
const SHA1 = '1'.repeat(40);
const SHA2 = '2'.repeat(40);
const SHA3 = '3'.repeat(40);
const SHA4 = '4'.repeat(40);
let fake: FakeGitHub;
// A name of its own per test run, so the host's action cache starts empty for it.
const owner = `acme${process.pid}`;

function tarball(top: string, files: Record<string, string>, extra = ''): Buffer {
  const dir = mkdtempSync(join(work, 'tar-'));
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(join(dir, top, p, '..'), { recursive: true });
    writeFileSync(join(dir, top, p), text);
  }
  if (extra) spawnSync('sh', ['-c', extra], { cwd: join(dir, top) });
  const r = spawnSync('tar', ['-czf', '-', '-C', dir, top]);
  assert.equal(r.status, 0);
  return r.stdout;
}

const action = (version: string) => ({
  'action.yml': `name: greet\ninputs:\n  who: {default: world}\noutputs:\n  said: {value: "\${{ steps.s.outputs.said }}"}\nruns:\n  using: composite\n  steps:\n    - id: s\n      shell: bash\n      run: echo "greet \${{ inputs.who }} ${version}" && echo "said=${version}" >> "$GITHUB_OUTPUT"\n`,
});

before(async () => {
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs1', format: 'pem' } });
  fake = new FakeGitHub(publicKey);
  fake.repos.set(`${owner}/greet`, {
    workflows: {},
    tarball: Buffer.alloc(0),
    tarballs: { [SHA1]: tarball(`${owner}-greet-1111111`, action('v1')), [SHA2]: tarball(`${owner}-greet-2222222`, action('v2')) },
    runs: {},
    refs: { v1: SHA1 },
    public: true,
  });
  // An archive with a hard link entry: extraction must refuse it (a link's target is never trusted).
  fake.repos.set(`${owner}/evil`, { workflows: {}, tarball: Buffer.alloc(0), tarballs: { [SHA3]: tarball(`${owner}-evil-3333333`, action('evil'), 'ln action.yml hard') }, runs: {}, refs: { v1: SHA3 }, public: true });
  fake.repos.set(`${owner}/lib`, {
    workflows: {},
    tarball: Buffer.alloc(0),
    tarballs: { [SHA4]: tarball(`${owner}-lib-4444444`, { '.github/workflows/shared.yml': 'on:\n  workflow_call:\n    inputs:\n      who: {type: string, default: nobody}\n    outputs:\n      out:\n        value: ${{ jobs.hi.outputs.o }}\njobs:\n  hi:\n    runs-on: ubuntu-latest\n    outputs:\n      o: ${{ steps.s.outputs.o }}\n    steps:\n      - id: s\n        run: echo "shared workflow greets ${{ inputs.who }} in ${{ github.repository }}" && echo "o=done" >> "$GITHUB_OUTPUT"\n' }) },
    runs: {},
    refs: { main: SHA4 },
    public: true,
  });
  await fake.start();
});

after(async () => {
  await fake.stop();
  rmSync(work, { recursive: true, force: true });
  assert.deepEqual(fake.violations, [], "every request matched GitHub's OpenAPI description");
});

/** The CLI against the fake GitHub (answering from this process: never spawnSync). */
const cliWithFake = (args: string[]) => stockade(args, { ...process.env, STOCKADE_GITHUB_API_URL: fake.url });

const run = (dir: string, args: string[]) => cliWithFake(['run', '-C', dir, '--json', ...args]);

function repo(uses: string): string {
  const dir = mkdtempSync(join(work, 'repo-'));
  mkdirSync(join(dir, '.github/workflows'), { recursive: true });
  writeFileSync(join(dir, '.github/workflows/w.yml'), `on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - id: g\n        uses: ${uses}\n        with: {who: stockade}\n      - run: echo "output=\${{ steps.g.outputs.said }}"\n`);
  return dir;
}

interface Result {
  jobs: Array<{ conclusion: string; error?: string; actions?: Array<{ uses: string; sha?: string; source: string }>; steps: Array<{ log: string[] }> }>;
}
const parse = (r: { stdout: string }) => JSON.parse(r.stdout) as Result;
const logOf = (res: Result) => res.jobs.flatMap((j) => j.steps.flatMap((s) => s.log)).join('\n');
const requests = (op: string) => fake.requests.filter((r) => r.operationId === op && r.params.repo === 'greet').length;

test('a remote action is resolved to its commit, fetched once, run, and its commit recorded; a moved tag is fetched again', async () => {
  const dir = repo(`${owner}/greet@v1`);
  const first = await run(dir, []);
  assert.equal(first.code, 0, first.stderr + first.stdout.slice(0, 3000));
  const res = parse(first);
  assert.match(logOf(res), /greet stockade v1/);
  assert.match(logOf(res), /output=v1/);
  assert.deepEqual(res.jobs[0]!.actions, [{ uses: `${owner}/greet@v1`, sha: SHA1, source: 'fetched' }]);
  assert.equal(requests('repos/get-commit'), 1);
  assert.equal(requests('repos/download-tarball-archive'), 1);
  const cached = join(resolveHostConfig(process.env).stateDir, 'actions', owner, 'greet', SHA1, 'tree/action.yml');
  assert.ok(existsSync(cached), cached);

  // Again: the ref is resolved again (a tag can move), the archive is not downloaded again.
  const second = await run(dir, []);
  assert.equal(second.code, 0, second.stderr);
  assert.equal(requests('repos/get-commit'), 2);
  assert.equal(requests('repos/download-tarball-archive'), 1);

  // The tag moves: the new commit is fetched and is what ran.
  fake.repos.get(`${owner}/greet`)!.refs = { v1: SHA2 };
  const moved = parse(await run(dir, []));
  assert.match(logOf(moved), /greet stockade v2/);
  assert.equal(moved.jobs[0]!.actions?.[0]?.sha, SHA2);
  assert.equal(requests('repos/download-tarball-archive'), 2);
});

test('a full SHA is a pin: once fetched it is never looked up again', async () => {
  const dir = repo(`${owner}/greet@${SHA1}`);
  const before = requests('repos/get-commit');
  const r = await run(dir, []);
  assert.equal(r.code, 0, r.stderr);
  assert.match(logOf(parse(r)), /greet stockade v1/);
  assert.equal(requests('repos/get-commit'), before, 'no ref lookup for a SHA');
});

test('operator policy: --require-sha-pins and --allow-action-owner refuse before anything runs; offline mode does not fetch', async () => {
  const tag = repo(`${owner}/greet@v1`);
  const pins = await run(tag, ['--require-sha-pins']);
  assert.equal(pins.code, 2);
  assert.match(pins.stderr, /w\.yml:\d+:\d+: error: uses: .*greet@v1: this runner requires actions pinned to a full commit SHA/);
  const owners = await run(tag, ['--allow-action-owner', 'actions']);
  assert.equal(owners.code, 2);
  assert.match(owners.stderr, new RegExp(`actions of '${owner}' are not allowed on this runner`));
  const pinned = await run(repo(`${owner}/greet@${SHA1}`), ['--require-sha-pins', '--allow-action-owner', owner]);
  assert.equal(pinned.code, 0, pinned.stderr);
  const offline = await run(repo(`${owner}/greet@v9`), ['--action-offline-mode']);
  assert.equal(offline.code, 2);
  assert.match(offline.stderr, /is not available offline/);
});

test('an unknown ref fails the job with GitHub\'s answer; an archive with a hard link is refused and nothing is kept', async () => {
  const missing = parse(await run(repo(`${owner}/greet@nope`), []));
  assert.equal(missing.jobs[0]!.conclusion, 'failure');
  assert.match(JSON.stringify(missing.jobs[0]), /no such repository or ref on GitHub \(422\)/);
  const evil = parse(await run(repo(`${owner}/evil@v1`), []));
  assert.equal(evil.jobs[0]!.conclusion, 'failure');
  assert.match(JSON.stringify(evil.jobs[0]), /could not be fetched: .*(hard link|link)/i);
  assert.ok(!existsSync(join(resolveHostConfig(process.env).stateDir, 'actions', owner, 'evil', SHA3)), 'nothing of the refused archive is kept');
});

test('a reusable workflow of another repository is fetched at its commit and called; its outputs reach the caller', async () => {
  const dir = mkdtempSync(join(work, 'repo-'));
  mkdirSync(join(dir, '.github/workflows'), { recursive: true });
  writeFileSync(join(dir, '.github/workflows/w.yml'), `on: push\njobs:\n  shared:\n    uses: ${owner}/lib/.github/workflows/shared.yml@main\n    with: {who: caller}\n  next:\n    needs: shared\n    runs-on: x\n    steps:\n      - run: echo "got \${{ needs.shared.outputs.out }}"\n`);
  const r = await run(dir, []);
  assert.equal(r.code, 0, r.stderr + r.stdout.slice(0, 3000));
  const log = logOf(parse(r));
  assert.match(log, /shared workflow greets caller in local\/repo-/);
  assert.match(log, /got done/);
});

test('stockade actions list, pull and prune manage the cache', async () => {
  const list = await cliWithFake(['actions', 'list', '--json']);
  assert.equal(list.code, 0, list.stderr);
  const entries = (JSON.parse(list.stdout) as Array<{ owner: string; repo: string; sha: string; refs: string[] }>).filter((a) => a.owner === owner && a.repo === 'greet');
  assert.deepEqual(entries.map((a) => a.sha).sort(), [SHA1, SHA2]);
  assert.ok(entries.find((a) => a.sha === SHA1)!.refs.includes('v1'));
  const pull = await cliWithFake(['actions', 'pull', `${owner}/greet@v1`]);
  assert.equal(pull.code, 0, pull.stderr);
  assert.match(pull.stdout, new RegExp(`${owner}/greet@v1 ${SHA2}`));
  const prune = await cliWithFake(['actions', 'prune', '--unused-for', '0']);
  assert.equal(prune.code, 0, prune.stderr);
  assert.match(prune.stdout, new RegExp(`removed ${owner}/greet ${SHA1}`));
  assert.ok(!existsSync(join(resolveHostConfig(process.env).stateDir, 'actions', owner, 'greet', SHA1)));
});
