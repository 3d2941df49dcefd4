import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runScript } from './helpers';

test('a fork bomb stops at the process limit and is reported as process-limit', async () => {
  const r = await runScript(':(){ :|:& };: ; sleep 2; echo survived', { limits: { pids: 64, timeoutMs: 30_000 } });
  assert.equal(r.reason, 'process-limit', r.text.slice(-500));
  assert.ok(r.usage.pidsLimitHits > 0);
  assert.ok(r.durationMs < 15_000, `took ${r.durationMs} ms`);
  assert.equal(r.ok, false);
});

test('a memory hog is killed and reported as out-of-memory', async () => {
  const r = await runScript('python3 -c "b = bytearray(512 << 20); print(len(b))"', { limits: { memoryBytes: 64 << 20 } });
  assert.equal(r.reason, 'out-of-memory', r.text);
  assert.ok(r.usage.oomKills > 0);
  assert.ok(r.usage.peakMemoryBytes <= 64 << 20 && r.usage.peakMemoryBytes > 32 << 20, String(r.usage.peakMemoryBytes));
  assert.doesNotMatch(r.text, /536870912/);
});

test('an endless loop is killed at its timeout; a process ignoring SIGTERM is killed after the grace period', async () => {
  const loop = await runScript('while :; do :; done', { limits: { timeoutMs: 2000, killGraceMs: 1000 } });
  assert.equal(loop.reason, 'timeout');
  assert.ok(loop.durationMs < 2000 + 1000 + 3000, `took ${loop.durationMs} ms`);
  assert.ok(loop.usage.cpuSeconds > 0.5, `cpu ${loop.usage.cpuSeconds}`);
  const stubborn = await runScript("trap '' TERM; setsid sleep 1000 & while :; do sleep 1; done", { limits: { timeoutMs: 1500, killGraceMs: 1000 } });
  assert.equal(stubborn.reason, 'timeout');
  assert.ok(stubborn.durationMs < 1500 + 1000 + 3000, `took ${stubborn.durationMs} ms`);
});

test('a 1 GB output flood is cut at the output cap with a visible marker; the runner stays small', async () => {
  const rssBefore = process.memoryUsage().rss;
  const r = await runScript("head -c 1G /dev/zero | tr '\\0' 'a' | fold -w 100", { limits: { outputBytes: 1 << 20, timeoutMs: 60_000 } });
  assert.equal(r.reason, 'output-limit');
  assert.match(r.lines.at(-1)!, /output limit of 1048576 bytes/);
  assert.ok(r.durationMs < 15_000, `took ${r.durationMs} ms`);
  const kept = r.lines.slice(0, -1).reduce((n, l) => n + l.length, 0) + r.lines.length - 2;
  assert.ok(kept <= 1 << 20, `kept ${kept} bytes`);
  assert.ok(process.memoryUsage().rss - rssBefore < 200 << 20, 'runner memory stays flat');
});

test('one endless line is cut at the line limit', async () => {
  const r = await runScript("head -c 5M /dev/zero | tr '\\0' 'b'; echo; echo next", { limits: { maxLineBytes: 4096 } });
  assert.equal(r.exitCode, 0);
  assert.match(r.lines[0]!, /line cut at 4096 bytes/);
  assert.equal(r.lines[1], 'next');
});

test('after all of that, the next step on the same machine succeeds', async () => {
  const r = await runScript('echo fine');
  assert.equal(r.ok, true);
  assert.deepEqual(r.lines, ['fine']);
});

test('the CPU quota bites: two busy processes for 3 s at 0.5 CPU use about 1.5 CPU seconds, not 6', async () => {
  const r = await runScript('timeout 3 sh -c "while :; do :; done" & timeout 3 sh -c "while :; do :; done" & wait', { limits: { cpus: 0.5 } });
  assert.ok(r.usage.cpuSeconds > 0.8 && r.usage.cpuSeconds < 2.2, `cpu seconds ${r.usage.cpuSeconds}`);
});

test('open files stop at the nofile limit (EMFILE), and core dumps are off', async () => {
  const r = await runScript(`ulimit -c; python3 -c "
import os
fds = []
try:
    while True: fds.append(os.open('/dev/null', os.O_RDONLY))
except OSError as e: print('stopped at', len(fds), e.errno)
"`, { limits: { nofile: 256 } });
  assert.match(r.text, /^0$/m, r.text);
  assert.match(r.text, /stopped at 25\d 24/, r.text);
});
