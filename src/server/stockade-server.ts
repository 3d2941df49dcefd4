import { helperPoolOf } from '../runner';
import { reconcileDeliveries } from './reconcile-deliveries';
import type { ServerJob } from './plan-delivery';
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { burstAllows, exhaustedMinutes, interleaveByRepository, pickNext } from '../queue';
import { adminHandler } from './admin-api';
import { ServerMetrics } from './metrics';
import type { AddressInfo } from 'node:net';
import type { Quota } from '../store';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { HostLeases, type HandOff } from './host-leases';
import { CheckRuns, failedReport } from './check-runs';
import { LiveLogs } from './live-logs';
import { runAdmittedJob } from './run-admitted-job';
import { planDelivery } from './plan-delivery';
import { acceptJob, planRerun } from './accept-job';
import { webhookHandler, MAX_WEBHOOK_BYTES } from './webhook-intake';
import { hardenListener } from './harden-listener';
import { EngineWatchdog } from './engine-watchdog';
import { publicRoute, readiness } from './public-routes';
import type { ServerOptions } from './server-options';

export type { ServerOptions } from './server-options';

const EVENTS = new Set(['workflow_job', 'push', 'pull_request', 'check_suite', 'check_run']);

/**
 * `stockade serve`: webhook intake, the durable queue, the job worker, check run
 * reports, start-up recovery and delivery reconciliation.
 */
export class StockadeServer {
  private http?: Server;
  private admin?: Server;
  readonly metrics: ServerMetrics;
  /** When this process started: rows created before it were accepted by an earlier one. */
  private readonly startedAt = Date.now();
  private readonly jobAborts = new Map<string, AbortController>();
  readonly hostId: string;
  private readonly leaseMs: number;
  readonly leases: HostLeases;
  private draining = false;
  private running = 0;
  /** Masked log lines of running jobs, for the job pages' live view. */
  private readonly live = new LiveLogs();
  private readonly checkRuns: CheckRuns;
  private pumping = false;
  private again = false;
  private timers: NodeJS.Timeout[] = [];
  private readonly active = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private stopped = false;
  /** Jobs whose final report is being sent (each at most once at a time). */
  private readonly reporting = new Set<string>();
  private readonly engine: EngineWatchdog;

  /** The settings a job is checked against before it is queued: remote actions count as available when they can be fetched. */
  private prechecked(): ServerOptions['settings'] {
    const fetch = this.o.fetchAction;
    if (!fetch) return this.o.settings;
    return { ...this.o.settings, actionSource: { fetch: () => Promise.reject(new Error('fetched per installation when the job runs')) } };
  }

  constructor(private readonly o: ServerOptions) {
    this.metrics = new ServerMetrics(o.store, () => helperPoolOf(o.sandbox)?.readyCount());
    this.hostId = o.hostId ?? `${hostname()}/${process.pid}/${randomBytes(3).toString('hex')}`;
    this.leaseMs = o.leaseMs ?? 30_000;
    this.checkRuns = new CheckRuns({ github: o.github, store: o.store, logger: o.logger, publicUrl: o.publicUrl, logKey: o.logKey, backoff: o.githubBackoff, cancelGitHubRun: o.cancelGitHubRun, runnerMode: !!o.jit, hostId: this.hostId, leaseMs: this.leaseMs });
    this.engine = new EngineWatchdog({ sandbox: o.sandbox, logger: o.logger, restartEngine: o.restartEngine, recovered: () => this.kick() });
    this.leases = new HostLeases({ store: o.store, logger: o.logger, metrics: this.metrics, hostId: this.hostId, capacity: o.concurrency ?? 2, leaseMs: this.leaseMs, hostLoss: o.hostLoss ?? 'fail', reap: () => o.sandbox.reap(), running: () => this.running, draining: () => this.draining, cancel: (key) => this.cancelHere(key) });
  }

  /** Address of the admin listener once started. */
  adminAddress(): AddressInfo | undefined {
    return this.admin?.address() as AddressInfo | undefined;
  }

  /** Recovers jobs a dead process left running, reaps its containers, starts the HTTP server and the loops. */
  async start(): Promise<AddressInfo> {
    const log = this.o.logger;
    const report = await this.o.sandbox.reap();
    // One host on SQLite: whatever is still running was this host's before it stopped. A fleet's jobs
    // belong to their hosts' leases: one whose host is gone is taken over when its lease expires.
    if (this.o.store.db.dialect === 'sqlite') {
      for (const row of await this.o.store.inState('running')) {
        await this.o.store.transition(row.key, 'failed', { result: failedReport(row, 'the runner restarted while this job ran; its containers were removed') });
        log.warn({ job: row.key }, 'job was running when the runner stopped; reported as failed');
      }
    }
    const runners = await this.o.jit?.reapLeftovers();
    log.info({ reaped: report, runners }, 'recovered');
    const intake = webhookHandler({
      secret: this.o.webhookSecret,
      store: this.o.store,
      logger: log.child({ component: 'intake' }),
      events: EVENTS,
      onStored: () => this.kick(),
      onResult: (r) => this.metrics.deliveries.inc({ result: r }),
      maxBytes: this.o.maxWebhookBytes ?? MAX_WEBHOOK_BYTES,
    });
    const handle = (req: IncomingMessage, res: ServerResponse) => {
      // No request may take the listener down: whatever a handler throws is a 400/500, never an exit.
      try {
        publicRoute({ store: this.o.store, logger: log, logKey: this.o.logKey, live: this.live, intake }, req, res);
      } catch (e) {
        log.warn({ err: e }, 'request failed');
        if (!res.headersSent) res.writeHead(400).end();
        else res.destroy();
      }
    };
    this.http = this.o.tls ? createHttpsServer({ cert: this.o.tls.cert, key: this.o.tls.key, minVersion: 'TLSv1.2' }, handle) : createServer(handle);
    hardenListener(this.http);
    await new Promise<void>((r) => this.http!.listen(this.o.port ?? 8080, this.o.host ?? '127.0.0.1', r));
    if (this.o.adminPort !== undefined) {
      const handler = adminHandler({ store: this.o.store, metrics: this.metrics, cancel: (k) => this.cancel(k), ready: () => readiness({ sandbox: this.o.sandbox, store: this.o.store, stateDir: this.o.workDir.replace(/\/work$/, ''), minFreeBytes: this.o.minFreeDiskBytes ?? 1024 ** 3 }), ceiling: (scope) => this.o.quotaDefaults?.(scope) ?? {}, pages: { publicUrl: this.o.publicUrl, logKey: this.o.logKey } });
      this.admin = createServer((req, res) => void handler(req, res));
      hardenListener(this.admin);
      await new Promise<void>((r) => this.admin!.listen(this.o.adminPort, this.o.adminHost ?? '127.0.0.1', r));
    }
    this.leases.start();
    this.timers.push(setInterval(() => this.kick(), 1000));
    this.timers.push(setInterval(() => void (this.stopped ? undefined : this.engine.check()), this.o.engineCheckMs ?? 2000));
    const every = this.o.reconcileIntervalMs ?? 60_000;
    if (every > 0) this.timers.push(setInterval(() => void this.reconcile(), every));
    this.kick();
    return this.http.address() as AddressInfo;
  }

  /**
   * Drains and stops: no more claims; running jobs may finish for `drainMs`; those still running
   * then are stopped and handed back to the queue (another host, or this one after a restart, runs
   * them); then the listeners close.
   */
  async stop(drainMs = this.o.drainMs ?? 30_000): Promise<void> {
    this.draining = true;
    this.stopped = true;
    this.timers.forEach(clearInterval);
    await this.leases.tick();
    const all = Promise.allSettled([...this.active]);
    const drained = await Promise.race([all.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), drainMs).unref())]);
    if (!drained) {
      this.o.logger.warn({ jobs: this.leases.heldKeys() }, `drain: ${Math.round(drainMs / 1000)} s passed; the jobs still running are handed back to the queue`);
      for (const key of this.leases.heldKeys()) this.handOff.get(key)?.('handback');
    }
    this.abort.abort();
    await Promise.allSettled([...this.active]);
    await this.leases.stop();
    this.http?.closeAllConnections();
    this.admin?.closeAllConnections();
    await new Promise<void>((r) => (this.http ? this.http.close(() => r()) : r()));
    await new Promise<void>((r) => (this.admin ? this.admin.close(() => r()) : r()));
  }

  /** Per running job: stops it for the fleet's reasons (lease lost, handed back on drain). */
  private readonly handOff = new Map<string, (why: HandOff) => void>();

  /** Cancels a queued job (reported cancelled) or a running one (its step is stopped); false if none or finished. */
  async cancel(key: string): Promise<boolean> {
    const row = await this.o.store.get(key);
    if (!row) return false;
    if (row.state === 'running') {
      // Here, or on whichever host of the fleet runs it (it sees the request within a third of its lease).
      if (this.cancelHere(key)) return true;
      return this.o.store.leases.requestCancel(key);
    }
    if (row.state !== 'accepted' && row.state !== 'queued') return false;
    const ok = await this.o.store.transition(key, 'cancelled', { result: { ...failedReport(row, 'cancelled by an administrator'), conclusion: 'cancelled' } });
    this.kick();
    return ok;
  }

  /** Stops a job this host runs; false when it runs elsewhere (or not at all). */
  private cancelHere(key: string): boolean {
    const c = this.jobAborts.get(key);
    if (!c || c.signal.aborted) return !!c;
    this.o.logger.info({ job: key }, 'cancelling the running job');
    c.abort();
    return true;
  }

  /** Wakes the worker; runs at most one pump at a time. */
  kick(): void {
    if (this.stopped) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    void this.pump()
      .catch((e: unknown) => this.o.logger.error({ err: e }, 'worker pass failed'))
      .finally(() => {
        this.pumping = false;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  private async pump(): Promise<void> {
    const { store, logger } = this.o;
    for (const d of await store.unprocessedDeliveries()) {
      // A burst of deliveries is planned one at a time with the listener served in between: the
      // store's promises settle as microtasks, which alone would hold new webhooks back until the
      // whole batch is planned.
      await new Promise<void>((r) => setImmediate(r));
      let payload: Record<string, unknown>;
      try {
        payload = JSON.parse(d.payload) as Record<string, unknown>;
      } catch {
        await store.processDelivery(d.guid, []);
        continue;
      }
      await this.cancelIfGitHubCancelled(d.event, payload);
      const plan = d.event === 'check_run' ? await planRerun(this.o.store, d.guid, payload) : planDelivery(d.guid, d.event, payload, this.o.labels, this.o.modes, this.o.priorities);
      // Two hosts may plan the same delivery at once: a job's key is inserted once, by whichever is first.
      const added = await store.processDelivery(d.guid, plan.jobs);
      logger.info({ delivery: d.guid, event: d.event, jobs: added.length, reason: plan.reason }, 'delivery processed');
    }
    // Free job slots first: creating check runs is paced by GitHub's write limits (one a second),
    // so a burst of deliveries must not hold up jobs that are already accepted.
    await this.startQueued();
    // Reports go out side by side, each job's at most once at a time in the whole fleet (the report
    // is claimed first): a repository whose reports GitHub refuses never holds up another's.
    for (const row of await store.unreported(20)) {
      if (this.reporting.has(row.key)) continue;
      if (!(await store.leases.claimReport(row.key, this.hostId, 60_000))) continue;
      this.reporting.add(row.key);
      // A database that went away mid-report: the claim lapses and the report is sent on a later pass.
      const p = this.checkRuns.report(row).catch((e: unknown) => this.o.logger.warn({ err: e, job: row.key }, 'report pass failed; will retry')).finally(() => {
        this.reporting.delete(row.key);
        this.active.delete(p);
      });
      this.active.add(p);
    }
    const burst = this.o.burstPerMinute ?? 120;
    let accepted = 0;
    for (const row of interleaveByRepository(await store.dueAccepted(1000))) {
      if (accepted >= 5 || this.stopped) break;
      // Burst limit: over it, the job stays stored and accepted, admitted later in arrival order.
      if (!burstAllows(await store.admittedSince(row.installationId, Date.now() - 60_000), burst)) continue;
      // One host accepts a job at a time (its check run is created once).
      const attempt = await store.leases.claimAccept(row.key, this.hostId, this.leaseMs);
      if (attempt === undefined) continue;
      await this.accept(row, attempt);
      accepted++;
      await this.startQueued();
    }
  }

  /**
   * Claims queued jobs while this host has free slots: fairly across repositories and within every
   * concurrency quota of the whole fleet (the claim's transaction, store/leases.ts), then each
   * minutes quota; a job whose minutes are used up completes at once as neutral.
   */
  private async startQueued(): Promise<void> {
    const { store } = this.o;
    const host = this.o.concurrency ?? 2;
    if (this.stopped || this.running >= host || this.engine.down) return;
    const stored = new Map((await store.quotas.list()).map((q) => [q.scope, q.quota]));
    const quota = (scope: string): Quota => ({ ...(this.o.quotaDefaults?.(scope) ?? {}), ...(stored.get(scope.toLowerCase()) ?? {}) });
    while (this.running < host && !this.stopped) {
      const t0 = process.hrtime.bigint();
      const row = await store.leases.claim(this.hostId, this.leaseMs, { repository: (repo) => quota(`repo:${repo}`).concurrency, org: (org) => quota(`org:${org}`).concurrency }, pickNext);
      this.metrics.claimLatency.observe(Number(process.hrtime.bigint() - t0) / 1e9);
      if (!row) return;
      const fence = { owner: this.hostId, attempt: row.attempt };
      const exhausted = await this.exhaustedQuota(row.repository, quota);
      if (exhausted) {
        this.metrics.quotaRefusals.inc({ scope: exhausted.scope });
        const report = { ...failedReport(row, exhausted.message), conclusion: 'neutral' as const, annotations: [] };
        await store.transition(row.key, 'completed', { result: report }, fence);
        continue;
      }
      this.metrics.queueWait.observe((Date.now() - row.createdAt) / 1000);
      this.running++;
      const p = this.run(row).catch((e: unknown) => this.o.logger.error({ err: e, job: row.key }, 'job run failed outside the sandbox; its lease lapses and another pass takes it over')).finally(() => {
        this.running--;
        this.active.delete(p);
        this.kick();
      });
      this.active.add(p);
    }
  }

  /** The first minutes quota of the repository or its organisation that is used up (queue/minutes-quota.ts). */
  private async exhaustedQuota(repository: string, quota: (scope: string) => Quota): Promise<{ scope: string; message: string } | undefined> {
    const scopes = [`repo:${repository}`, `org:${repository.split('/')[0]}`];
    const used = new Map(await Promise.all(scopes.map(async (s) => [s, await this.o.store.quotas.usage(s)] as const)));
    return exhaustedMinutes(repository, { limit: quota, used: (scope) => used.get(scope)! });
  }

  /** A workflow_job that GitHub reports cancelled (the run was cancelled there) is cancelled here too, queued or running. */
  private async cancelIfGitHubCancelled(event: string, payload: Record<string, unknown>): Promise<void> {
    const job = (payload.workflow_job ?? {}) as Record<string, unknown>;
    if (event !== 'workflow_job' || payload.action !== 'completed' || job.conclusion !== 'cancelled') return;
    const repo = String(((payload.repository ?? {}) as Record<string, unknown>).full_name ?? '');
    const key = `${repo}/workflow_job/${String(job.id)}/${String(job.run_attempt ?? 1)}`;
    if (await this.cancel(key)) this.o.logger.info({ job: key }, 'GitHub cancelled the run; job cancelled');
  }

  /** accepted → queued, with the check run created as `queued` (accept-job.ts). */
  private accept(row: ServerJob, attempt: number): Promise<void> {
    return acceptJob({ o: this.o, checkRuns: this.checkRuns, settings: this.prechecked(), startedAt: this.startedAt, hostId: this.hostId, leaseMs: this.leaseMs }, row, attempt);
  }

  private run(row: ServerJob): Promise<void> {
    return runAdmittedJob({ o: this.o, live: this.live, metrics: this.metrics, jobAborts: this.jobAborts, serverSignal: this.abort.signal, leases: this.leases, handOff: this.handOff }, row);
  }

  /** Fetches deliveries GitHub made that this server never stored (it was down), and stores them (reconcile-deliveries.ts). */
  async reconcile(): Promise<number> {
    const found = await reconcileDeliveries(this.o, EVENTS);
    if (found) this.kick();
    return found;
  }
}
