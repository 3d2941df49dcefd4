import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchScript } from '../../src/runner/prewarm';
import type { StepSpec } from '../../src/sandbox';

// The launch file a prepared container sources (src/runner/prewarm.ts), run by the host's /bin/sh as
// the launcher would: every byte of every value arrives as written, names the shell cannot export go
// through env(1), the directory is entered (made when missing), and nothing of the shell's is added.
const values = {
  QUOTES: `it's "double" and 'single' '\\'' end`,
  EXPANSIONS: '$HOME ${PATH} $(id) `id` $((1+1)) ~ *',
  NEWLINES: 'one\ntwo\n\nthree\n',
  BACKSLASHES: '\\ \\n \\\\ \\0',
  EMPTY: '',
  UNICODE: 'päth ☃',
};

function launch(env: Record<string, string>, workdir: string) {
  const dir = mkdtempSync(join(tmpdir(), 'stockade-launch-'));
  try {
    const file = join(dir, 'launch.sh');
    const out = join(dir, 'env.json');
    const spec = { env, workdir: join(dir, workdir), argv: [process.execPath, '-e', `require('fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify({ env: process.env, cwd: process.cwd() }))`] } as unknown as StepSpec;
    writeFileSync(file, launchScript(spec));
    const r = spawnSync('/bin/sh', ['-c', '. "$1"', 'launcher', file], { env: { PATH: '/usr/bin:/bin', OLDPWD: '/x' }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return { ...(JSON.parse(spawnSync('cat', [out], { encoding: 'utf8' }).stdout) as { env: Record<string, string>; cwd: string }), dir };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('the launch file hands the step exactly its environment: quotes, expansions, newlines, backslashes and empty values arrive as written', () => {
  const r = launch(values, 'a/b');
  for (const [k, v] of Object.entries(values)) assert.equal(r.env[k], v, k);
  assert.equal(r.cwd, join(r.dir, 'a/b'));
  assert.equal(r.env.OLDPWD, undefined, 'cd set OLDPWD; a step the runtime starts has none');
  assert.deepEqual(Object.keys(r.env).filter((k) => !(k in values) && !['PATH', 'PWD'].includes(k)), []);
});

test('names the shell cannot export (GitHub keeps INPUT_MY-INPUT) still arrive, with every other value, through env(1)', () => {
  const env = { ...values, 'INPUT_MY-INPUT': 'dashed', 'A.B': 'dotted' };
  const r = launch(env, '.');
  for (const [k, v] of Object.entries(env)) assert.equal(r.env[k], v, k);
});
