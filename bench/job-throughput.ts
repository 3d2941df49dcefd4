/**
 * 200 one-step jobs across 20 repositories through `stockade serve` (fake GitHub,
 * real sandbox) at the default concurrency: jobs per minute, and queue wait
 * (check run created `queued` → set `in_progress`) p50 / p99.
 *
 *   npm run build && npx tsx bench/job-throughput.ts [JOBS=200] [REPOS=20]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deliver, makeWorld, sleep, startServer, workflowJobPayload } from '../test/server/helpers';

const JOBS = Number(process.argv[2] ?? 200);
const REPOS = Number(process.argv[3] ?? 20);
const pct = (s: number[], p: number) => s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;

async function main(): Promise<void> {
  const w = await makeWorld({ '.github/workflows/ci.yml': 'on: push\njobs:\n  one:\n    runs-on: [self-hosted, stockade]\n    steps:\n      - run: echo hi\n' });
  const base = w.fake.repos.get('octo-org/hello')!;
  for (let r = 0; r < REPOS; r++) w.fake.repos.set(`octo-org/repo${r}`, base);
  const state = mkdtempSync(join(tmpdir(), 'stockade-bench-tp-'));
  const server = await startServer(w, state, ['--reconcile-seconds', '0', '--no-request-pacing']);
  const t0 = Date.now();
  for (let i = 0; i < JOBS; i++) {
    const p = workflowJobPayload({ jobId: 200_000 + i, name: 'one', labels: ['stockade'] });
    (p.repository as Record<string, unknown>).full_name = `octo-org/repo${i % REPOS}`;
    await deliver(w, server.url, 'workflow_job', p);
  }
  const done = () => [...w.fake.checkRuns.values()].filter((c) => c.fields.status === 'completed');
  while (done().length < JOBS && Date.now() - t0 < 30 * 60_000) await sleep(500);
  const ms = Date.now() - t0;
  const waits = done()
    .map((c) => c.times[c.history.findIndex((h) => h.status === 'in_progress')]! - c.times[0]!)
    .sort((a, b) => a - b);
  console.log(`${done().length} of ${JOBS} jobs across ${REPOS} repositories in ${(ms / 1000).toFixed(1)} s: ${((done().length / ms) * 60_000).toFixed(1)} jobs/minute (concurrency 2, the default)`);
  console.log(`queue wait (check run queued -> in_progress): p50 ${(pct(waits, 50) / 1000).toFixed(1)} s, p99 ${(pct(waits, 99) / 1000).toFixed(1)} s`);
  server.child.kill('SIGTERM');
  await sleep(1000);
  await w.fake.stop();
  rmSync(state, { recursive: true, force: true });
  rmSync(w.dir, { recursive: true, force: true });
}

void main();
