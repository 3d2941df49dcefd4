// The built CLI, as a user meets it first: every command's --help prints its own usage and does nothing else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const cli = join(process.cwd(), 'dist/cli.js');
const run = (...args: string[]) => spawnSync('node', [cli, ...args], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, STOCKADE_USER: 'no-such-user-for-help-tests' } });

test('every command prints its own usage with --help and -h, exits 0 and acts on nothing; --version prints the package version', () => {
  for (const c of ['run', 'serve', 'quota', 'queue', 'jobs', 'admin-token', 'images', 'hook-broker', 'setup', 'doctor']) {
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
  for (const c of ['run', 'serve']) {
    const r = run(c, '--bogus');
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`^stockade ${c}: Unknown option '--bogus'`));
    assert.match(r.stderr, new RegExp(`usage: stockade ${c} `));
  }
});
