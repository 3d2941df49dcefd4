import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { spawnSync, spawn } from 'node:child_process';

test('worker threads add in parallel', async () => {
  const parts = await Promise.all([0, 1, 2, 3].map((w) => new Promise((resolve, reject) => {
    const worker = new Worker(`const { parentPort, workerData } = require('node:worker_threads'); let s = 0; for (let i = workerData; i < 1000000; i += 4) s += i; parentPort.postMessage(s);`, { eval: true, workerData: w });
    worker.once('message', resolve);
    worker.once('error', reject);
  })));
  assert.equal(parts.reduce((a, b) => a + b, 0), 499999500000);
});

test('child processes, pipes and signals', async () => {
  assert.equal(spawnSync('sh', ['-c', 'echo piped'], { encoding: 'utf8' }).stdout, 'piped\n');
  const child = spawn('sleep', ['30']);
  const ended = new Promise((r) => child.once('exit', (_c, sig) => r(sig)));
  child.kill('SIGTERM');
  assert.equal(await ended, 'SIGTERM');
});
