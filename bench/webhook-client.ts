/**
 * The sending side of bench/webhook-burst.ts, in a process of its own, so the acknowledgement
 * latencies it measures include nothing of the benchmark's fake GitHub (which answers the jobs'
 * requests on its own event loop). Reads its orders as JSON from argv[2], prints one JSON line:
 * { latencies, statuses, sendMs }.
 */
import { randomUUID } from 'node:crypto';
import { deliver, workflowJobPayload, type World } from '../test/server/helpers';

interface Orders {
  url: string;
  secret: string;
  n: number;
  inFlight: number;
  repos: number;
  firstJobId: number;
}

async function main(): Promise<void> {
  const o = JSON.parse(process.argv[2]!) as Orders;
  const w = { secret: o.secret } as World;
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  // Payloads are made before the clock starts: only the request is timed.
  const payloads = Array.from({ length: o.n }, (_, i) => {
    const payload = workflowJobPayload({ jobId: o.firstJobId + i, name: 'one', labels: ['self-hosted', 'stockade'] });
    if (o.repos > 1) (payload.repository as Record<string, unknown>).full_name = `octo-org/repo${i % o.repos}`;
    return payload;
  });
  let next = 0;
  const t0 = Date.now();
  const sender = async () => {
    while (next < o.n) {
      const payload = payloads[next++]!;
      const start = process.hrtime.bigint();
      const r = await deliver(w, o.url, 'workflow_job', payload, randomUUID());
      latencies.push(Number(process.hrtime.bigint() - start) / 1e6);
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: o.inFlight }, sender));
  process.stdout.write(`${JSON.stringify({ latencies, statuses, sendMs: Date.now() - t0 })}\n`);
}

void main();
