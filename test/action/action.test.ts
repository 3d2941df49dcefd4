import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { parseWorkflowText } from '../../src/workflow';
import { startOutsideWorld, type OutsideWorld } from '../network/outside-world';

const root = process.cwd();
const entry = join(root, 'dist/action/index.js');
let world: OutsideWorld;

before(async () => {
  world = await startOutsideWorld();
});
after(() => world?.stop());

interface ActionRun {
  code: number | null;
  stdout: string;
  outputs: Record<string, string>;
  summary: string;
  env: string;
  workspace: string;
  dir: string;
}

/** Runs the bundled entry as the Actions runner does: INPUT_* variables and the GITHUB_* files. */
function runAction(inputs: Record<string, string>, extraEnv: Record<string, string> = {}, files: Record<string, string> = {}): Promise<ActionRun> {
  const dir = mkdtempSync(join(tmpdir(), 'stockade-action-'));
  const workspace = join(dir, 'workspace');
  mkdirSync(workspace);
  for (const [p, c] of Object.entries(files)) writeFileSync(join(workspace, p), c);
  const paths = { GITHUB_OUTPUT: join(dir, 'output'), GITHUB_STEP_SUMMARY: join(dir, 'summary'), GITHUB_ENV: join(dir, 'env'), GITHUB_PATH: join(dir, 'path'), GITHUB_STATE: join(dir, 'state') };
  for (const p of Object.values(paths)) writeFileSync(p, '');
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    GITHUB_WORKSPACE: workspace,
    GITHUB_REPOSITORY: 'octo-org/hello',
    GITHUB_SHA: 'a'.repeat(40),
    GITHUB_ACTIONS: 'true',
    RUNNER_TEMP: dir,
    ...paths,
    ...Object.fromEntries(Object.entries(inputs).map(([k, v]) => [`INPUT_${k.toUpperCase()}`, v])),
    ...extraEnv,
  };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [entry], { env, cwd: workspace, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c));
    child.stderr.on('data', (c: Buffer) => (stdout += c));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, outputs: parseOutputFile(readFileSync(paths.GITHUB_OUTPUT, 'utf8')), summary: readFileSync(paths.GITHUB_STEP_SUMMARY, 'utf8'), env: readFileSync(paths.GITHUB_ENV, 'utf8'), workspace, dir }));
  });
}

/** GITHUB_OUTPUT as @actions/core writes it: `name<<DELIM\nvalue\nDELIM`. */
function parseOutputFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /^([^\n<]+)<<(\S+)\n([^]*?)\n\2$/gm;
  for (const m of text.matchAll(re)) out[m[1]!] = m[3]!;
  return out;
}

test('the bundled action runs a script in the sandbox over a copy of the workspace: outputs, summary, masking, literal ${{ }}', async () => {
  const r = await runAction(
    {
      run: 'cat input.txt\necho \'greeting=hello ${{ not.an.expression }}\' >> "$GITHUB_OUTPUT"\necho "token is $DEPLOY_TOKEN"\necho "other is [${OTHER_SECRET:-unset}]"\necho "::set-output name=conclusion::forged"\necho "::error file=app.js,line=2::from the sandbox"\necho "whoami: $(id -u)"; touch /usr/bin/x 2>/dev/null || echo "root is read-only"',
      env: 'DEPLOY_TOKEN',
      memory: '512m',
      timeout: '2m',
    },
    { DEPLOY_TOKEN: 'tok-4711-secret', OTHER_SECRET: 'never-passed' },
    { 'input.txt': 'from the workspace\n' },
  );
  assert.equal(r.code, 0, r.stdout);
  assert.equal(r.outputs['exit-code'], '0');
  assert.equal(r.outputs.conclusion, 'success');
  assert.equal(r.outputs.greeting, 'hello ${{ not.an.expression }}');
  assert.ok(Number(r.outputs['duration-ms']) > 0 && Number(r.outputs['peak-memory-bytes']) > 0, JSON.stringify(r.outputs));
  assert.match(r.stdout, /from the workspace/);
  assert.match(r.stdout, /token is \*\*\*/);
  assert.match(r.stdout, /^::add-mask::tok-4711-secret$/m, 'the value is registered with the Actions runner for masking');
  assert.doesNotMatch(r.stdout.replace(/^::add-mask::.*$/m, ''), /tok-4711-secret/);
  assert.match(r.stdout, /other is \[unset\]/);
  assert.match(r.stdout, /root is read-only/);
  // The script's workflow commands were stopped on the way to the Actions runner; its
  // annotation is re-emitted by the action itself, after the stop-commands block ends.
  const stop = /::stop-commands::([0-9a-f]{32})\n([^]*)::\1::\n/.exec(r.stdout);
  assert.ok(stop, r.stdout);
  assert.match(stop[2]!, /from the workspace\n[^]*root is read-only/, 'the script\'s output is inside the block');
  assert.equal(r.outputs.conclusion, 'success', 'the script cannot forge the action\'s outputs');
  assert.match(r.stdout, /::warning::output 'conclusion' from the sandbox is not a valid or free name; dropped/);
  assert.match(r.stdout.slice(stop.index + stop[0].length), /^::error file=app\.js,line=2(,endLine=2)?::from the sandbox$/m);
  assert.equal(r.env, '', 'nothing reached GITHUB_ENV');
  assert.match(r.summary, /<h3>Stockade sandbox<\/h3>/);
  assert.match(r.summary, /<td>success<\/td><td>[\d.]+ s<\/td><td>[\d.]+ MiB<\/td><td>exit 0<\/td><td>base<\/td><td>0<\/td>/);
});

test('a failing script fails the action with its exit code; a timeout is timed_out; bad inputs name the input', async () => {
  const failed = await runAction({ run: 'echo about to fail; exit 3' });
  assert.equal(failed.code, 1);
  assert.equal(failed.outputs['exit-code'], '3');
  assert.equal(failed.outputs.conclusion, 'failure');
  assert.match(failed.stdout, /^::error::the script exited with code 3$/m);
  const slow = await runAction({ run: 'sleep 30', timeout: '2s' });
  assert.equal(slow.code, 1);
  assert.equal(slow.outputs.conclusion, 'timed_out');
  assert.match(slow.stdout, /::error::the script timed out after 2 s and was killed/);
  const bad = await runAction({ run: 'true', memory: 'lots' });
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, /::error::stockade: input 'memory' 'lots' is not a size such as 512m or 2g/);
  const outside = await runAction({ run: 'true', seccomp: '../../etc/passwd' });
  assert.match(outside.stdout, /::error::stockade: input 'seccomp' '..\/..\/etc\/passwd' is outside the workspace/);
});

test('results: globs in the workspace copy come back into a folder of their own, regular files only, byte for byte, capped; a bad destination refuses before the run', async () => {
  const { createHash } = require('node:crypto') as typeof import('node:crypto');
  const { existsSync, readdirSync, symlinkSync } = require('node:fs') as typeof import('node:fs');
  const script = [
    'mkdir -p dist/sub logs/deep',
    'head -c 300000 /dev/urandom > dist/app.bin; sha256sum dist/app.bin | cut -d" " -f1 > /tmp/sum',
    'echo "<testsuite/>" > report.xml; echo nested > logs/deep/run.log; echo skip > dist/skip.txt; echo "in sub" > dist/sub/x.txt',
    'ln -s /etc/passwd dist/passwd-link; mkfifo dist/fifo; echo secret > secret.txt',
    'echo "sum=$(cat /tmp/sum)" >> "$GITHUB_OUTPUT"',
    'exit 4',
  ].join('\n');
  const r = await runAction({ run: script, results: 'dist/**\n./report.xml\nlogs\n!dist/skip.txt\n# a comment' });
  assert.equal(r.code, 1, 'the script failed: results come back all the same');
  assert.equal(r.outputs['exit-code'], '4');
  const dest = r.outputs['results-path']!;
  assert.equal(dest, join(r.workspace, 'stockade-results'));
  const got = (p: string) => readFileSync(join(dest, p));
  assert.equal(createHash('sha256').update(got('dist/app.bin')).digest('hex'), r.outputs.sum, 'binary content byte for byte');
  assert.equal(got('report.xml').toString(), '<testsuite/>\n');
  assert.equal(got('logs/deep/run.log').toString(), 'nested\n', 'a directory pattern takes what is below it');
  assert.equal(got('dist/sub/x.txt').toString(), 'in sub\n');
  assert.ok(!existsSync(join(dest, 'dist/skip.txt')), '!glob excludes');
  assert.ok(!existsSync(join(dest, 'secret.txt')), 'unmatched files stay in the sandbox');
  assert.ok(!existsSync(join(dest, 'dist/passwd-link')) && !existsSync(join(dest, 'dist/fifo')), 'no link, no FIFO');
  assert.equal(r.outputs['results-count'], '4');
  assert.match(r.stdout, /::warning::results: dist\/passwd-link was not copied: a symbolic link/);
  assert.match(r.stdout, /::warning::results: dist\/fifo was not copied: not a regular file/);
  assert.match(r.summary, /Results handed back: 4 files/);
  assert.match(r.summary, /<li>dist\/app\.bin \(300000 bytes\)<\/li>/);

  const capped = await runAction({ run: 'touch a.txt b.txt', results: '*.txt', 'results-max-files': '1' });
  assert.equal(capped.code, 1);
  assert.match(capped.stdout, /::error::results: 2 files match the results patterns; the limit is 1 \(results-max-files\): nothing was copied/);
  assert.ok(!existsSync(join(capped.workspace, 'stockade-results')) || readdirSync(join(capped.workspace, 'stockade-results')).length === 0);
  const big = await runAction({ run: 'head -c 2000 /dev/zero > big.dat', results: 'big.dat', 'results-max-size': '1k' });
  assert.match(big.stdout, /::error::results: the results are larger than 1024 bytes \(results-max-size\) at big\.dat: nothing was copied/);

  // The destination is checked before anything runs: the script's output never appears.
  const over = await runAction({ run: 'echo ran-anyway', results: 'x', 'results-path': '.' });
  assert.match(over.stdout, /::error::stockade: input 'results-path' '\.' is the workspace or holds it/);
  assert.doesNotMatch(over.stdout, /ran-anyway/);
  const linkDir = mkdtempSync(join(tmpdir(), 'stockade-results-link-'));
  symlinkSync('/tmp', join(linkDir, 'out'));
  const viaLink = await runAction({ run: 'echo ran-anyway', results: 'x', 'results-path': join(linkDir, 'out', 'r') });
  assert.match(viaLink.stdout, /::error::stockade: input 'results-path': .*\/out is a symbolic link; links are never followed/);
  assert.doesNotMatch(viaLink.stdout, /ran-anyway/);
  const climb = await runAction({ run: 'echo ran-anyway', results: '../etc/passwd' });
  assert.match(climb.stdout, /::error::stockade: input 'results': '\.\.\/etc\/passwd' must be a glob relative to the workspace, without '\.\.'/);
});

test('no allow-domains: no network; with allow-domains: the allowed name works and the denied attempt is listed in the summary', async () => {
  const script = [`curl -sS -f --max-time 5 --cacert ca.pem https://allowed.test/ || echo "allowed.test unreachable"`, `curl -sS --max-time 5 --noproxy '*' http://other.test/ || echo "other.test blocked"`].join('\n');
  const files = { 'ca.pem': readFileSync(world.certFile, 'utf8') };
  const none = await runAction({ run: script }, {}, files);
  assert.equal(none.code, 0, none.stdout);
  assert.match(none.stdout, /allowed\.test unreachable/);
  const allowed = await runAction({ run: script, 'allow-domains': 'allowed.test' }, { STOCKADE_UPSTREAM_DNS: world.dns, STOCKADE_PERMIT_RANGES: world.subnet }, files);
  assert.equal(allowed.code, 0, allowed.stdout);
  assert.match(allowed.stdout, new RegExp(`hello from ${world.allowed.replace(/\./g, '\\.')} over https`));
  assert.match(allowed.stdout, /other\.test blocked/);
  assert.ok(Number(allowed.outputs['blocked-network-attempts']) >= 1, JSON.stringify(allowed.outputs));
  assert.match(allowed.summary, /<li>DNS A other\.test: not-allowlisted<\/li>/);
});

test('action.yml declares node24 and the committed bundle; the workflow using it is valid for GitHub\'s parser', () => {
  const meta = YAML.parse(readFileSync(join(root, 'action.yml'), 'utf8')) as { runs: { using: string; main: string }; inputs: Record<string, unknown>; outputs: Record<string, unknown> };
  assert.equal(meta.runs.using, 'node24');
  assert.equal(meta.runs.main, 'dist/action/index.js');
  for (const i of ['run', 'shell', 'image', 'working-directory', 'env', 'allow-domains', 'memory', 'cpus', 'pids', 'timeout', 'output-limit', 'seccomp']) assert.ok(i in meta.inputs, i);
  for (const o of ['exit-code', 'conclusion', 'duration-ms', 'peak-memory-bytes']) assert.ok(o in meta.outputs, o);
  const file = join(root, '.github/workflows/sandbox-action.yml');
  const parsed = parseWorkflowText(file, readFileSync(file, 'utf8'));
  assert.deepEqual(parsed.diagnostics, []);
  assert.ok(parsed.value?.jobs.some((j) => j.steps.some((s) => (s as { uses?: string }).uses === './')));
});
