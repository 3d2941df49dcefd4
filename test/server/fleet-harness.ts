import { mkdirSync, writeFileSync, mkdtempSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { deliver, makeWorld, sleep, startServer, workflowJobPayload, type ServerProcess, type World } from './helpers';

/** The fleet's 10 repositories: 3 of organisation `orga` (limited to 2 jobs at once in the config), 7 of `orgb`. */
export const FLEET_REPOS = [...Array.from({ length: 3 }, (_, i) => `orga/r${i}`), ...Array.from({ length: 7 }, (_, i) => `orgb/r${i}`)];

export interface FleetHost {
  name: string;
  proc: ServerProcess;
  state: string;
  /** Not to be sent deliveries (killed or paused). */
  down: boolean;
}

/** A fake GitHub serving FLEET_REPOS, each with one job `one` whose steps are `steps`, and the fleet's config file. */
export async function fleetWorld(steps: string[], orgaConcurrency = 2): Promise<{ w: World; config: string }> {
  const wf = `on: push\njobs:\n  one:\n    runs-on: [self-hosted, stockade]\n    steps:\n${steps.map((s) => `      - run: ${JSON.stringify(s)}\n`).join('')}`;
  const w = await makeWorld({ '.github/workflows/ci.yml': wf });
  const repo = w.fake.repos.get('octo-org/hello')!;
  for (const r of FLEET_REPOS) w.fake.repos.set(r, repo);
  const config = join(w.dir, 'fleet.yml');
  writeFileSync(config, `quotas:\n  orgs:\n    orga:\n      concurrency: ${orgaConcurrency}\n`);
  return { w, config };
}

/** Serves `repository` with its own files (its workflow and tarball), otherwise as octo-org/hello. */
export function addRepo(w: World, repository: string, files: Record<string, string>): void {
  const src = mkdtempSync(join(w.dir, 'repo-'));
  const top = join(src, 'top');
  for (const [p, c] of Object.entries(files)) {
    mkdirSync(dirname(join(top, p)), { recursive: true });
    writeFileSync(join(top, p), c);
  }
  const tarball = spawnSync('tar', ['-czf', '-', '-C', src, 'top']).stdout;
  const base = w.fake.repos.get('octo-org/hello')!;
  w.fake.repos.set(repository, { ...base, workflows: Object.fromEntries(Object.entries(files).filter(([p]) => p.startsWith('.github/workflows/'))), tarball });
}

/** N `stockade serve` processes sharing one PostgreSQL, each with its own state directory and `--host-id hostI`. */
export async function startFleet(w: World, config: string, database: string, n: number, extra: string[] = []): Promise<FleetHost[]> {
  return Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const state = mkdtempSync(join(tmpdir(), `stockade-fleet-${i}-`));
      const proc = await startServer(w, state, ['--database', database, '--host-id', `host${i}`, '--reconcile-seconds', '0', '--no-request-pacing', '--modes', 'workflow_job', '--burst-per-minute', '100000', '--config', config, ...extra]);
      return { name: `host${i}`, proc, state, down: false };
    }),
  );
}

/** A workflow_job delivery of job `id` in `repository` (its own installation, so no burst limit applies). */
export function fleetJob(id: number, repository: string): Record<string, unknown> {
  const p = workflowJobPayload({ jobId: id, name: 'one', labels: ['stockade'] });
  (p.repository as Record<string, unknown>).full_name = repository;
  (p.repository as Record<string, unknown>).name = repository.split('/')[1];
  return p;
}

export const fleetKey = (id: number, repository: string) => `${repository}/workflow_job/${id}/1`;

/**
 * Delivers through "the load balancer": to the next host that is up, and to another one when a
 * host answers 5xx or not at all (as a proxy retries, and as GitHub redelivers).
 */
export async function deliverToFleet(w: World, hosts: FleetHost[], start: number, payload: unknown, guid = randomUUID()): Promise<{ status: number; host: string }> {
  const seen: string[] = [];
  for (let tries = 0; tries < 200; tries++) {
    const up = hosts.filter((h) => !h.down);
    const h = up[(start + tries) % up.length]!;
    try {
      const r = await Promise.race([deliver(w, h.proc.url, 'workflow_job', payload, guid), sleep(5000).then(() => ({ status: 0, text: 'timeout' }))]);
      if (r.status === 202) return { status: r.status, host: h.name };
      if (r.status < 500 && r.status !== 0) throw new Error(`delivery refused by ${h.name}: ${r.status} ${r.text}`);
      seen.push(`${h.name}: ${r.status} ${r.text.slice(0, 80)}`);
    } catch (e) {
      if (!/ECONNREFUSED|ECONNRESET|socket hang up/.test(String(e))) throw e;
      seen.push(`${h.name}: ${String(e).slice(0, 80)}`);
    }
    await sleep(200);
  }
  const exits = hosts.map((h) => `${h.name} exit ${String(h.proc.child.exitCode ?? h.proc.child.signalCode)}: ${h.proc.stderr().slice(-1500)}`).join('\n');
  throw new Error(`no host took the delivery; last answers: ${seen.slice(-6).join('; ')}\n${exits}`);
}
