/**
 * Job start (issue 17, target 2): from a signed delivery's acknowledgement (the 202) to the first
 * step's process running (the step prints the host clock in ms; containers share the host's clock),
 * over ROUNDS sequential one-step jobs, without egress and with an egress allowlist (sidecar and job
 * network). Prints p50 / p99 and the sidecar's extra cost; nothing fails on time.
 *
 *   npm run build && npx tsx bench/job-start.ts [ROUNDS=50]   (as root, after `stockade setup`)
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deliver, endWorld, makeWorld, startServer, until, workflowJobPayload } from '../test/server/helpers';

const ROUNDS = Number(process.argv[2] ?? 50);
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
};

/** Per phase, the median over the jobs of the server's debug lines (execute-job.ts, run-job.ts). */
function phaseTable(stderr: string): Record<string, number> {
  const per = new Map<string, number[]>();
  let prepared = 0;
  for (const line of stderr.split('\n')) {
    if (line.includes('"step phases"') && line.includes('"step":"0"') && line.includes('"prepared":true')) prepared++;
    if (!line.includes('job phases before')) continue;
    const { phases } = JSON.parse(line) as { phases: Record<string, number> };
    for (const [k, v] of Object.entries(phases)) per.set(k, [...(per.get(k) ?? []), v]);
  }
  return { ...Object.fromEntries([...per].map(([k, v]) => [k, pct(v, 0.5)])), 'first steps prepared ahead (count)': prepared };
}

// The server's debug lines carry the phases of each job's start.
process.env.STOCKADE_SERVER_LOG_LEVEL = 'debug';
process.env.STOCKADE_LOG_FORMAT = 'json';

async function measure(egress: boolean): Promise<{ ms: number[]; phases: Record<string, number> }> {
  const w = await makeWorld({ '.github/workflows/ci.yml': 'on: push\njobs:\n  build:\n    runs-on: [self-hosted, stockade]\n    steps:\n      - run: echo "first-step-at=$(date +%s%3N)"\n' });
  const state = mkdtempSync(join(tmpdir(), 'stockade-bench-start-'));
  const config = join(w.dir, 'config.yml');
  // A documentation address as the sidecar's resolver: nothing is resolved, the sidecar and network are what is timed.
  writeFileSync(config, egress ? 'egress:\n  upstreamDns: 192.0.2.53\n  orgs:\n    octo-org: [registry.npmjs.org]\n' : 'quotas: {}\n');
  const server = await startServer(w, state, ['--no-request-pacing', '--reconcile-seconds', '0', '--modes', 'workflow_job', '--concurrency', '1', '--config', config, '--admin-port', '0']);
  // A server is up before its jobs arrive: the first job is timed once the helpers it makes at its start are ready (stockade_helpers_ready).
  const t0 = Date.now();
  const ready = async () => {
    const m = await (await fetch(`${server.adminUrl}/metrics`)).text();
    const n = (kind: string) => Number(new RegExp(`^stockade_helpers_ready\\{kind="${kind}"\\} (\\d+)`, 'm').exec(m)?.[1] ?? 0);
    return n('forwarder') >= 1 && (!egress || n('network') >= 1);
  };
  await until('the helpers made at the start are ready', ready, 60_000);
  console.log(`${egress ? 'egress   ' : 'no egress'} helpers made at the server's start ready ${Date.now() - t0} ms after it listened`);
  const out: number[] = [];
  let phases: Record<string, number> = {};
  try {
    for (let i = 0; i < ROUNDS; i++) {
      const id = 9000 + i;
      const r = await deliver(w, server.url, 'workflow_job', workflowJobPayload({ jobId: id, name: 'build', labels: ['self-hosted', 'stockade'] }));
      const acked = Date.now();
      if (r.status !== 202) throw new Error(`delivery answered ${r.status}`);
      const run = await until('the job is reported', () => [...w.fake.checkRuns.values()].find((c) => c.fields.external_id === `octo-org/hello/workflow_job/${id}/1` && c.fields.status === 'completed'), 120_000);
      const text = String((run.fields.output as { text?: string }).text ?? '');
      const at = Number(/first-step-at=(\d+)/.exec(text)?.[1]);
      if (!at) throw new Error(`no timestamp in the log: ${text.slice(0, 500)}`);
      out.push(at - acked);
      console.log(`${egress ? 'egress   ' : 'no egress'} job ${i + 1}: ${at - acked} ms`);
    }
    phases = phaseTable(server.stderr());
  } finally {
    await endWorld(w, server, state);
  }
  return { ms: out, phases };
}

async function main(): Promise<void> {
  const { ms: plain, phases: plainPhases } = await measure(false);
  const { ms: withEgress, phases: egressPhases } = await measure(true);
  const row = (name: string, xs: number[]) => `  ${name.padEnd(12)} p50 ${pct(xs, 0.5).toFixed(0).padStart(5)} ms   p99 ${pct(xs, 0.99).toFixed(0).padStart(5)} ms`;
  console.log(`\nacknowledged delivery → first step's process running, ${ROUNDS} jobs each (one at a time):`);
  console.log(row('no egress', plain));
  console.log(row('egress', withEgress));
  console.log('\nwhere the start goes (median ms per phase; the rest is the claim, the check run and the first step\'s container):');
  for (const k of new Set([...Object.keys(plainPhases), ...Object.keys(egressPhases)])) console.log(`  ${k.padEnd(34)} ${String(plainPhases[k] ?? '-').padStart(7)}  ${String(egressPhases[k] ?? '-').padStart(7)}`);
  console.log(`  sidecar's extra cost (p50): ${(pct(withEgress, 0.5) - pct(plain, 0.5)).toFixed(0)} ms (target <= 200); no egress p50 target < 1000 ms`);
}

void main();
