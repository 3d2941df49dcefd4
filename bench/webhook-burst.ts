/**
 * A burst of N signed workflow_job deliveries (default 500) across R repositories at `stockade serve`,
 * against the fake GitHub of the tests: acknowledgement latency p50 / p99 / max,
 * then waits until every job's check run is completed and counts them
 * (count in = count completed). Each job is one `true` step in the real sandbox.
 *
 * Also samples the server's resident memory (peak) until the queue has drained.
 *
 *   npm run build && npx tsx bench/webhook-burst.ts [N=500] [in-flight=50] [REPOS=1]   (ACK_ONLY=1: stop after the burst)
 *   (bench/burst of issue 7: npx tsx bench/webhook-burst.ts 1000 1 50: one client, 50 repositories)
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { deliver, makeWorld, startServer, sleep, workflowJobPayload } from '../test/server/helpers';

const N = Number(process.argv[2] ?? 500);
const inFlight = Number(process.argv[3] ?? 50);
const REPOS = Number(process.argv[4] ?? 1);

const WORKFLOW = 'on: push\njobs:\n  one:\n    runs-on: [self-hosted, stockade]\n    steps:\n      - run: "true"\n';

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<void> {
  const w = await makeWorld({ '.github/workflows/ci.yml': WORKFLOW });
  for (let r = 0; r < REPOS; r++) w.fake.repos.set(`octo-org/repo${r}`, w.fake.repos.get('octo-org/hello')!);
  const state = mkdtempSync(join(tmpdir(), 'stockade-bench-'));
  const pacing = process.env.PACING === '1';
  const server = await startServer(w, state, ['--reconcile-seconds', '0', '--concurrency', '2', '--admin-port', '0', '--drain-seconds', '2', ...(pacing ? [] : ['--no-request-pacing'])]);
  const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.child.pid}/status`, 'utf8'))![1]) / 1024;
  let peak = rss();
  const sampler = setInterval(() => (peak = Math.max(peak, rss())), 200);
  // One job first, run to its end: the server's and the fake's first-use costs (module loading, the
  // fake's first tarball parse) are not counted as acknowledgement latency.
  await deliver(w, server.url, 'workflow_job', workflowJobPayload({ jobId: 99_999, name: 'one', labels: ['self-hosted', 'stockade'] }), randomUUID());
  while (![...w.fake.checkRuns.values()].some((c) => c.fields.status === 'completed')) await sleep(100);
  const warmed = 1;
  // The server's own event-loop delay while the burst runs: prom-client's histogram is reset at each
  // scrape, so every 250 ms sample holds that interval's worst delay.
  const lag = { max: 0, samples: 0, over50: 0 };
  let sampling = true;
  const sampleLag = (async () => {
    while (sampling) {
      const text = await fetch(`${server.adminUrl}/metrics`).then((r) => r.text(), () => '');
      const max = Number(/^stockade_process_nodejs_eventloop_lag_max_seconds (\S+)/m.exec(text)?.[1] ?? NaN) * 1000;
      if (Number.isFinite(max)) {
        lag.samples++;
        lag.max = Math.max(lag.max, max);
        if (max > 50) lag.over50++;
      }
      await sleep(250);
    }
  })();
  const t0 = Date.now();
  // The client in a process of its own (bench/webhook-client.ts): its latencies hold nothing of this process's fake GitHub.
  const orders = { url: server.url, secret: w.secret, n: N, inFlight, repos: REPOS, firstJobId: 100_000 };
  const result = await runClient(orders);
  sampling = false;
  await sampleLag;
  const latencies = result.latencies.sort((a, b) => a - b);
  console.log(`deliveries: ${N} across ${REPOS} repositories sent in ${result.sendMs} ms with ${inFlight} in flight (client in its own process); answers ${JSON.stringify(result.statuses)}`);
  console.log(`ack latency ms: p50 ${pct(latencies, 50).toFixed(1)}  p99 ${pct(latencies, 99).toFixed(1)}  max ${latencies[latencies.length - 1]!.toFixed(1)}`);
  console.log(`server event-loop delay during the burst: max ${lag.max.toFixed(1)} ms; ${lag.over50} of ${lag.samples} 250 ms intervals had a delay over 50 ms`);
  const done = () => [...w.fake.checkRuns.values()].filter((c) => c.fields.status === 'completed').slice(warmed);
  // ACK_ONLY=1: the acknowledgement figures only (the jobs were starting meanwhile), not the drain.
  const deadline = process.env.ACK_ONLY === '1' ? Date.now() : Date.now() + 30 * 60_000;
  while (done().length < N && Date.now() < deadline) await sleep(1000);
  const completed = done();
  const conclusions: Record<string, number> = {};
  for (const c of completed) conclusions[String(c.fields.conclusion)] = (conclusions[String(c.fields.conclusion)] ?? 0) + 1;
  const keys = new Set(completed.map((c) => c.fields.external_id));
  const totalMs = Date.now() - t0;
  clearInterval(sampler);
  console.log(`server peak resident memory: ${peak.toFixed(1)} MB`);
  console.log(`check runs completed: ${completed.length} of ${N} (distinct jobs ${keys.size}); conclusions ${JSON.stringify(conclusions)}`);
  console.log(`all done in ${(totalMs / 1000).toFixed(1)} s: ${((completed.length / totalMs) * 60_000).toFixed(1)} jobs/minute at concurrency 2`);
  console.log(`OpenAPI violations: ${w.fake.violations.length}`);
  server.child.kill('SIGTERM');
  // Its own exit (a drain of at most a few seconds here), so a --cpu-prof of the server is written.
  await Promise.race([new Promise((r) => server.child.once('exit', r)), sleep(40_000)]);
  await w.fake.stop();
  rmSync(state, { recursive: true, force: true });
  rmSync(w.dir, { recursive: true, force: true });
  process.exit((completed.length === N || process.env.ACK_ONLY === '1') && w.fake.violations.length === 0 ? 0 : 1);
}

/** Runs bench/webhook-client.ts in its own process and returns what it measured. */
function runClient(orders: Record<string, unknown>): Promise<{ latencies: number[]; statuses: Record<string, number>; sendMs: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn('npx', ['tsx', join(__dirname, 'webhook-client.ts'), JSON.stringify(orders)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()!)) : reject(new Error(`the client exited ${code}`))));
  });
}

void main();
