import { executeJob } from './execute-job';
import type { LiveLogs } from './live-logs';
import type { ServerMetrics } from './metrics';
import type { ServerJob } from './plan-delivery';
import type { GitHubPort } from './ports';
import type { ServerOptions } from './server-options';
import type { HandOff, HostLeases } from './host-leases';

/** What running one admitted job needs of the server: its options, the live logs, metrics, and the cancel switches. */
export interface RunJobContext {
  o: ServerOptions;
  live: LiveLogs;
  metrics: ServerMetrics;
  /** Per job: aborted by a cancel (admin API, GitHub cancelled the run). */
  jobAborts: Map<string, AbortController>;
  /** Aborted when the server stops. */
  serverSignal: AbortSignal;
  /** This host's leases: the job is held from its claim to its stored result. */
  leases: HostLeases;
  /** Per running job: how the fleet stops it (lease lost, handed back on drain). */
  handOff: Map<string, (why: HandOff) => void>;
}

/**
 * One admitted job from start to stored result: the check run in progress (with throttled step
 * updates), the job in the sandbox (or on a just-in-time runner in runner mode), its masked lines
 * to the live page, the usage counted, the result stored. The report itself goes later (check-runs.ts).
 */
export async function runAdmittedJob(c: RunJobContext, row: ServerJob): Promise<void> {
  const spec = row.spec;
  const gh = c.o.github;
  const log = c.o.logger.child({ job: row.key });
  const started = new Date();
  let lastProgress = 0;
  const every = c.o.progressIntervalMs ?? 5000;
  // No write for a job whose lease may have passed to another host: it is that host's now.
  const update = (fields: Parameters<GitHubPort['updateCheckRun']>[4]) =>
    row.checkRunId && c.leases.holds(row.key) ? gh.updateCheckRun(row.installationId, spec.owner, spec.repo, row.checkRunId, fields).catch((e: unknown) => log.warn({ err: e }, 'progress update failed')) : Promise.resolve();
  // Cancellable from the moment the job is running, before the first await.
  const abort = new AbortController();
  let handedOff: HandOff | undefined;
  const fence = { owner: row.leaseOwner ?? '', attempt: row.attempt };
  const stopFor = (why: HandOff) => {
    handedOff ??= why;
    abort.abort();
  };
  c.leases.hold(row.key, row.attempt, stopFor);
  c.handOff.set(row.key, stopFor);
  c.jobAborts.set(row.key, abort);
  const onServerAbort = () => abort.abort();
  c.serverSignal.addEventListener('abort', onServerAbort, { once: true });
  await update({ status: 'in_progress', started_at: started.toISOString() });
  c.live.start(row.key);
  const steps: string[] = [];
  const t0 = Date.now();
  const jit = c.o.jit;
  let result: Awaited<ReturnType<typeof executeJob>>;
  try {
    result = jit && spec.mode === 'workflow_job' ? await jit.run(row, spec, abort.signal, log) : await executeJob(
      {
        github: gh,
        sandbox: c.o.sandbox,
        // executeJob adds the job's key itself (a second binding of it would repeat the key in every line).
        logger: c.o.logger,
        settings: c.o.settings,
        egressFor: c.o.egressFor,
        fetchAction: c.o.fetchAction,
        workDir: c.o.workDir,
        secrets: c.o.secrets,
        payloadOf: async (guid) => JSON.parse((await c.o.store.getDelivery(guid))?.payload ?? '{}') as Record<string, unknown>,
        signal: abort.signal,
        line: (text) => c.live.append(row.key, text),
        progress: (name) => {
          steps.push(name);
          const now = Date.now();
          if (now - lastProgress < every) return;
          lastProgress = now;
          void update({ output: { title: `running: ${name}`, summary: steps.map((s, i) => `${i + 1}. ${s}`).join('\n').slice(-60_000) } });
        },
      },
      row,
    );
  } catch (e) {
    c.live.finish(row.key);
    c.leases.release(row.key);
    throw e;
  } finally {
    c.jobAborts.delete(row.key);
    c.handOff.delete(row.key);
    c.serverSignal.removeEventListener('abort', onServerAbort);
  }
  const wall = Date.now() - t0;
  try {
    if (handedOff === 'lease-lost') {
      // Another host has the job now (it failed or re-queued it): this run's result is not this host's to store.
      c.metrics.fencedWrites.inc();
      log.warn({ host: fence.owner, attempt: fence.attempt }, 'job ended after its lease was lost; its result is discarded');
      return;
    }
    if (handedOff === 'handback') {
      const back = await persist(log, () => c.o.store.transition(row.key, 'queued', {}, fence));
      if (!back) c.metrics.fencedWrites.inc();
      log.warn({ handedBack: back }, 'drain: job stopped and handed back to the queue');
      return;
    }
    c.metrics.jobFinished(result.report, wall);
    const state = result.report.conclusion === 'cancelled' ? 'cancelled' : result.report.error && !result.report.steps.length ? 'failed' : 'completed';
    // The result, the job time and the running counts in one fenced transaction: a host whose lease
    // passed to another changes nothing (0 rows) and counts no minutes.
    const stored = await persist(log, () => c.o.store.transition(row.key, state, { result: result.report, log: result.log, usage: { scopes: [`repo:${row.repository}`, `org:${row.repository.split('/')[0]}`], ms: wall } }, fence));
    if (!stored) {
      c.metrics.fencedWrites.inc();
      log.warn({ host: fence.owner, attempt: fence.attempt }, 'fenced write refused: another host took the job over; 0 rows changed');
      return;
    }
    log.info({ conclusion: result.report.conclusion }, 'job finished');
  } finally {
    c.leases.release(row.key);
    // After the stored result: a page reloaded at the end shows it.
    c.live.finish(row.key);
  }
}

/**
 * A finished job's result is written until the database takes it (a restart or an outage of the
 * database must not lose a job that ran): retried for up to `forMs`. The write is fenced, so a
 * retry after another host took the job over changes nothing and says so (false).
 */
async function persist(log: { warn(o: object, m: string): void }, write: () => Promise<boolean>, forMs = 120_000): Promise<boolean> {
  const deadline = Date.now() + forMs;
  for (let delay = 250; ; delay = Math.min(delay * 2, 5000)) {
    try {
      return await write();
    } catch (e) {
      if (Date.now() + delay > deadline) throw e;
      log.warn({ err: e }, 'the database did not take the job\'s result; retrying');
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
