/**
 * Resident memory of `stockade serve` (VmRSS of its process): idle, with 1,000 jobs
 * queued, and while it runs the host's maximum concurrent jobs (the default 2,
 * each a step that sleeps). Fake GitHub, real sandbox.
 *
 *   npm run build && npx tsx bench/runner-memory.ts [QUEUED=1000]
 */
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deliver, makeWorld, sleep, startServer, workflowJobPayload } from '../test/server/helpers';

const QUEUED = Number(process.argv[2] ?? 1000);
const rss = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

async function main(): Promise<void> {
  const w = await makeWorld({ '.github/workflows/ci.yml': 'on: push\njobs:\n  one:\n    runs-on: [self-hosted, stockade]\n    steps:\n      - run: sleep 600\n' });
  const state = mkdtempSync(join(tmpdir(), 'stockade-bench-mem-'));
  const server = await startServer(w, state, ['--reconcile-seconds', '0', '--no-request-pacing']);
  const pid = server.child.pid!;
  await sleep(3000);
  console.log(`idle: ${rss(pid).toFixed(1)} MB resident`);
  for (let i = 0; i < QUEUED; i++) await deliver(w, server.url, 'workflow_job', workflowJobPayload({ jobId: 300_000 + i, name: 'one', labels: ['stockade'] }));
  const running = () => [...w.fake.checkRuns.values()].filter((c) => c.fields.status === 'in_progress').length;
  const created = () => w.fake.checkRuns.size;
  const t0 = Date.now();
  while ((created() < QUEUED || running() < 2) && Date.now() - t0 < 10 * 60_000) await sleep(500);
  await sleep(3000);
  const health = await (await fetch(`${server.url}/healthz`)).json();
  console.log(`${QUEUED} jobs accepted (${created()} check runs), ${running()} running, queue ${JSON.stringify(health)}: ${rss(pid).toFixed(1)} MB resident`);
  let peak = 0;
  for (let i = 0; i < 20; i++) {
    peak = Math.max(peak, rss(pid));
    await sleep(250);
  }
  console.log(`peak over 5 s with 2 jobs running and the rest queued: ${peak.toFixed(1)} MB resident`);
  server.child.kill('SIGTERM');
  await sleep(5000);
  await w.fake.stop();
  rmSync(state, { recursive: true, force: true });
  rmSync(w.dir, { recursive: true, force: true });
}

void main();
