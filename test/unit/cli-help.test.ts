// The built CLI, as a user meets it first: every command's --help prints its own usage and does nothing else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes } from '../../src/common';
import { EXIT_CODES } from '../../src/cli/main';
import { RUN_OPTIONS } from '../../src/cli/run-command';

const cli = join(process.cwd(), 'dist/cli.js');
const run = (...args: string[]) => spawnSync('node', [cli, ...args], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, STOCKADE_USER: 'no-such-user-for-help-tests' } });

test('every command prints its own usage with --help and -h, exits 0 and acts on nothing; --version prints the package version', () => {
  for (const c of ['run', 'serve', 'quota', 'queue', 'jobs', 'admin-token', 'images', 'actions', 'hook-broker', 'setup', 'doctor', 'completion']) {
    for (const flag of ['--help', '-h']) {
      const r = run(c, flag);
      assert.equal(r.status, 0, `${c} ${flag}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`usage: stockade ${c === 'quota' || c === 'queue' || c === 'jobs' || c === 'admin-token' ? '(quota|queue|jobs|admin-token)' : c}\\b`), `${c} ${flag}`);
      assert.equal(r.stderr, '', `${c} ${flag} did something: ${r.stderr}`);
    }
  }
  // setup --help would otherwise install packages and create users: it must not even look at the host.
  const s = run('setup', '--runner', '--help');
  assert.equal(s.status, 0);
  assert.doesNotMatch(s.stderr + s.stdout, /installing|creating|starting/);
  const v = run('--version');
  assert.equal(v.status, 0);
  assert.equal(v.stdout.trim(), `stockade ${(JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version}`);
});

test('an unknown option names the command and prints that command\'s usage, exit 2', () => {
  // setup and doctor too: `setup --no-imags` must not set up a host with images.
  for (const c of ['run', 'serve', 'setup', 'doctor']) {
    const r = run(c, '--bogus');
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`^stockade ${c}: Unknown option '--bogus'`));
    assert.match(r.stderr, new RegExp(`usage: stockade ${c}\\b`));
  }
});

test('act habits: the event as the first argument, -l lists jobs by stage, -g draws them, -P and --env are checked, -n validates and plans and starts nothing (no sandbox needed), -e is the payload file', () => {
  const { mkdtempSync, mkdirSync, writeFileSync, rmSync } = require('node:fs') as typeof import('node:fs');
  const dir = mkdtempSync(join(require('node:os').tmpdir() as string, 'stockade-act-habits-'));
  try {
    mkdirSync(join(dir, '.github/workflows'), { recursive: true });
    writeFileSync(join(dir, '.github/workflows/ci.yml'), 'on: [push, pull_request]\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n      - name: Unit\n        run: echo unit\n  deploy:\n    needs: test\n    if: github.event_name == \'push\'\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo deploy\n');
    writeFileSync(join(dir, '.github/workflows/rel.yml'), 'on: release\njobs:\n  publish:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo publish\n');
    const list = run('run', '-C', dir, '-l');
    assert.equal(list.status, 0, list.stderr);
    assert.match(list.stdout, /^Stage\s+Job ID\s+Job name\s+Workflow name\s+Workflow file\s+Events$/m);
    assert.match(list.stdout, /^0\s+test\s+test\s+\.github\/workflows\/ci\.yml\s+\.github\/workflows\/ci\.yml\s+push,pull_request$/m);
    assert.match(list.stdout, /^1\s+deploy\s+deploy\s+/m);
    assert.doesNotMatch(list.stdout, /publish/, 'a release workflow does not run on push');
    const graph = run('run', '-C', dir, '-g');
    assert.equal(graph.status, 0, graph.stderr);
    // act -g: a row of boxes per stage, an arrow between stages, needs above.
    assert.match(graph.stdout, /│ test │\n ╰─+╯\n\s+⬇\n ╭─+╮\n │ deploy │/);
    const badPlatform = run('run', '-C', dir, '-n', '-P', 'ubuntu-latest');
    assert.equal(badPlatform.status, 2);
    assert.match(badPlatform.stderr, /-P needs LABEL=IMAGE/);
    const badEnv = run('run', '-C', dir, '-n', '--env', '1X=y');
    assert.equal(badEnv.status, 2);
    assert.match(badEnv.stderr, /--env needs NAME=VALUE/);
    // act's -W/--workflows: a directory of workflows, chosen by the event; a file, as it is.
    const wdir = run('run', '-C', dir, '-l', '--workflows', join(dir, '.github/workflows'));
    assert.equal(wdir.status, 0, wdir.stderr);
    assert.match(wdir.stdout, /^0\s+test\s+/m);
    assert.doesNotMatch(wdir.stdout, /publish/);
    const wfile = run('run', '-C', dir, '-l', '-W', '.github/workflows/rel.yml');
    assert.match(wfile.stdout, /^0\s+publish\s+/m, 'a file names the workflow to run, whatever its on:');
    const rel = run('run', 'release', '-C', dir, '--list');
    assert.match(rel.stdout, /^0\s+publish\s+/m);
    const dry = run('run', 'pull_request', '-C', dir, '-n');
    assert.equal(dry.status, 0, dry.stderr);
    assert.match(dry.stdout, /ci\.yml test: Unit/);
    assert.match(dry.stdout, /dry run: .*nothing was started/);
    writeFileSync(join(dir, 'event.json'), JSON.stringify({ action: 'opened', pull_request: { number: 7 } }));
    const withPayload = run('run', 'pull_request', '-C', dir, '-e', join(dir, 'event.json'), '-n');
    assert.equal(withPayload.status, 0, withPayload.stderr);
    const bad = run('run', 'push', 'pull_request', '-C', dir, '-n');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /one event name at most/);
    writeFileSync(join(dir, '.github/workflows/broken.yml'), 'on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ nope( }}\n');
    const invalid = run('run', '-C', dir, '-n');
    assert.equal(invalid.status, 2);
    assert.match(invalid.stderr, /broken\.yml:6:\d+/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('shell completions come from the commands\' own option tables: bash completes commands, flags, subcommands and files', () => {
  const { mkdtempSync, writeFileSync, rmSync } = require('node:fs') as typeof import('node:fs');
  const dir = mkdtempSync(join(require('node:os').tmpdir() as string, 'stockade-completion-'));
  try {
    const script = run('completion', 'bash');
    assert.equal(script.status, 0, script.stderr);
    writeFileSync(join(dir, 'c.bash'), script.stdout);
    writeFileSync(join(dir, 'workflow-file.yml'), '');
    // Real bash: source the script, fill COMP_WORDS as readline would, call the function.
    const complete = (...words: string[]) => {
      const r = spawnSync('bash', ['-c', `source c.bash; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _stockade; printf '%s\\n' "\${COMPREPLY[@]}"`], { cwd: dir, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.split('\n').filter(Boolean);
    };
    assert.deepEqual(complete('stockade', 'se').sort(), ['serve', 'setup']);
    assert.ok(complete('stockade', 'run', '--s').includes('--secret-file'));
    assert.ok(complete('stockade', 'run', '-').includes('-P'), 'short flags too');
    assert.ok(complete('stockade', 'run', 'pull_').includes('pull_request'), 'event names');
    assert.deepEqual(complete('stockade', 'images', ''), complete('stockade', 'images', '').filter((w) => w !== 'bogus'));
    assert.ok(complete('stockade', 'images', '').includes('build'));
    assert.deepEqual(complete('stockade', 'run', '--workflow', 'workflow-f'), ['workflow-file.yml'], 'a path option completes files');
    assert.deepEqual(complete('stockade', 'run', '--memory', ''), [], 'a value option offers no flags');
    assert.ok(complete('stockade', 'completion', '').includes('fish'));
    // Every run flag is offered by every shell.
    const zsh = run('completion', 'zsh').stdout;
    const fish = run('completion', 'fish').stdout;
    assert.match(zsh, /^#compdef stockade/);
    for (const name of Object.keys(RUN_OPTIONS)) {
      assert.ok(complete('stockade', 'run', `--${name}`).includes(`--${name}`), `bash lacks --${name}`);
      assert.ok(zsh.includes(`'--${name}'`), `zsh lacks --${name}`);
      assert.ok(fish.includes(`-n '__fish_seen_subcommand_from run' -l '${name}'`), `fish lacks --${name}`);
    }
    const zshCheck = spawnSync('zsh', ['-n', '-c', zsh], { encoding: 'utf8' });
    if (!zshCheck.error) assert.equal(zshCheck.status, 0, zshCheck.stderr);
    const bad = run('completion', 'tcsh');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /bash, zsh or fish/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('exit codes: one table in --help that covers every code an error can end the process with', () => {
  const listed = new Set(EXIT_CODES.map(([c]) => c));
  for (const [code, { exit }] of Object.entries(ErrorCodes)) assert.ok(listed.has(exit), `${code} exits ${exit}, not in the table`);
  for (const c of [0, 1, 130]) assert.ok(listed.has(c));
  const help = run('--help');
  for (const [c, m] of EXIT_CODES) assert.ok(help.stdout.includes(`${String(c).padStart(3)}  ${m}`), `--help lacks exit code ${c}`);
  const readme = readFileSync('README.md', 'utf8');
  for (const [c] of EXIT_CODES) assert.match(readme, new RegExp(`^\\| ${c} \\|`, 'm'), `README's exit code table lacks ${c}`);
});
