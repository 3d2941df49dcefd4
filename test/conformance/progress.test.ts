// Progress and readable logs: on a terminal a status line and pretty logs; in a pipe neither, and JSON logs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const cli = join(process.cwd(), 'dist/cli.js');

function run(cmd: string, args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (out += d));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

test('stockade run on a terminal shows a live status line of the running step and readable logs; in a pipe, plain lines and JSON logs', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'stockade-progress-'));
  try {
    mkdirSync(join(dir, '.github/workflows'), { recursive: true });
    writeFileSync(join(dir, '.github/workflows/ci.yml'), 'on: push\njobs:\n  slow:\n    runs-on: ubuntu-latest\n    steps:\n      - name: Wait a little\n        run: sleep 1.5 && echo waited\n');
    // util-linux's script(1) gives the CLI a real pseudo-terminal.
    const tty = await run('script', ['-qec', `node ${cli} run -C ${dir}`, '/dev/null'], { STOCKADE_LOG_LEVEL: 'info', COLUMNS: '120' });
    assert.equal(tty.code, 0, tty.out);
    assert.match(tty.out, /\r\x1b\[2K⏵ \[slow\] Wait a little \(\d+\.\d s\)/, 'the status line, redrawn in place with the elapsed time');
    assert.match(tty.out, /INFO.*results service ready/, 'pino-pretty lines on a terminal');
    assert.doesNotMatch(tty.out, /\{"level":/);
    const pipe = await run('node', [cli, 'run', '-C', dir], { STOCKADE_LOG_LEVEL: 'info' });
    assert.equal(pipe.code, 0, pipe.out);
    assert.doesNotMatch(pipe.out, /\x1b\[/, 'no terminal control sequences in a pipe');
    assert.match(pipe.out, /^\[slow\] Wait a little \| waited$/m);
    assert.match(pipe.out, /^\{"level":30,.*"msg":"results service ready"/m, 'JSON logs off a terminal');
    const forced = await run('node', [cli, 'run', '-C', dir], { STOCKADE_LOG_LEVEL: 'info', STOCKADE_LOG_FORMAT: 'pretty' });
    assert.match(forced.out, /INFO.*results service ready/, 'STOCKADE_LOG_FORMAT=pretty in a pipe');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
