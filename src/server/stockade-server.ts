import type { ServerJob, ServerStore } from './plan-delivery';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { statfs } from 'node:fs/promises';
import { burstAllows, exhaustedMinutes, interleaveByRepository, pickNext, type BackoffPolicy } from '../queue';
import { adminHandler } from './admin-api';
import { ServerMetrics } from './metrics';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../common';
import type { EgressSettings, JobSettings } from '../runner';
import type { Sandbox } from '../sandbox';
import type { HostLossPolicy, Quota } from '../store';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { HostLeases, type HandOff } from './host-leases';
import type { ExecuteDeps } from './execute-job';
import { refusedBeforeQueue } from './precheck';
import { checkLogSignature, jobPageUrl } from './log-link';
import { CheckRuns, failedReport } from './check-runs';
import { jobPageRoute } from './job-pages';
import { LiveLogs } from './live-logs';
import { runAdmittedJob } from './run-admitted-job';
import { planDelivery, type JobSpec, type PlannedJob, type Priorities, type RunnerMode } from './plan-delivery';
import type { GitHubPort } from './ports';
import { webhookHandler, MAX_WEBHOOK_BYTES } from './webhook-intake';
import { hardenListener } from './harden-listener';
import type { JitRunners } from './jit-runners';

export interface ServerOptions {
  store: ServerStore;
  github: GitHubPort;
  sandbox: Sandbox;
  logger: Logger;
  settings: Omit<JobSettings, 'sourceDir'>;
  webhookSecret: string;
  /** Labels of this runner (workflow_job mode). */
  labels: string[];
  /** Base URL of this server as GitHub users reach it (for log links). */
  publicUrl: string;
  /** Key of log-link signatures. */
  logKey: Buffer;
  workDir: string;
  secrets(repository: string): Record<string, string>;
  /** Jobs run at once. @default 2 */
  concurrency?: number;
  /** How often recent deliveries are re-read from GitHub; 0 turns it off. @default 60000 */
  reconcileIntervalMs?: number;
  /** Seconds between progress updates of a running check run. @default 5000 */
  progressIntervalMs?: number;
  /** Start order within a repository by kind of event. @default DEFAULT_PRIORITIES */
  priorities?: Priorities;
  /** Which deliveries start jobs. @default both */
  modes?: ReadonlySet<RunnerMode>;
  /** Cancel GitHub's own copy of the run after reporting (workflow_job mode). @default false */
  cancelGitHubRun?: boolean;
  /** Jobs admitted per installation per minute; more wait (stored, in order) until the window allows. @default 120 */
  burstPerMinute?: number;
  /** Quota defaults from the server's configuration; values set through the admin API win. */
  quotaDefaults?: (scope: string) => Quota;
  /** The widest egress of a repository's jobs (config `egress:`); undefined or an empty allowlist: no network. */
  egressFor?: (repository: string) => EgressSettings | undefined;
  /** Fetches remote actions with an installation's token (into the host's action cache); undefined: offline only. */
  fetchAction?: ExecuteDeps['fetchAction'];
  /** Port of the admin API, /metrics and /readyz (its own listener); undefined: no admin listener. */
  adminPort?: number;
  /** @default 127.0.0.1 */
  adminHost?: string;
  /** /readyz fails below this much free disk in the state directory. @default 1 GiB */
  minFreeDiskBytes?: number;
  /** @default 8080 */
  port?: number;
  /** Serve the webhook listener over HTTPS with this certificate chain and key (PEM). @default plain HTTP */
  tls?: { cert: string; key: string };
  host?: string;
  maxWebhookBytes?: number;
  /** Runner mode: each workflow_job runs on a just-in-time official runner with Stockade as its hook. */
  jit?: JitRunners;
  /** Retries of GitHub writes that fail (check-run creation, the final report), and when to give up. @default DEFAULT_BACKOFF */
  githubBackoff?: BackoffPolicy;
  /** This host's name in the fleet (leases, the hosts table); a fresh suffix per process. @default hostname/pid/random */
  hostId?: string;
  /** How long a claim holds a job without renewal before another host may take it over. @default 30000 */
  leaseMs?: number;
  /** A running job whose host stopped renewing: failed ("the runner host stopped") or queued again (at most twice). @default fail */
  hostLoss?: HostLossPolicy;
  /** On stop: how long running jobs may finish before they are handed back to the queue. @default 30000 */
  drainMs?: number;
  /** Starts the Podman API service again when it stops answering; undefined: something else does (systemd). */
  restartEngine?: () => Promise<void>;
  /** How often the Podman API service is checked. @default 2000 */
  engineCheckMs?: number;
}

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

  /** The settings a job is checked against before it is queued: remote actions count as available when they can be fetched. */
  private prechecked(): ServerOptions['settings'] {
    const fetch = this.o.fetchAction;
    if (!fetch) return this.o.settings;
    return { ...this.o.settings, actionSource: { fetch: () => Promise.reject(new Error('fetched per installation when the job runs')) } };
  }

  constructor(private readonly o: ServerOptions) {
    this.metrics = new ServerMetrics(o.store);
    this.hostId = o.hostId ?? `${hostname()}/${process.pid}/${randomBytes(3).toString('hex')}`;
    this.leaseMs = o.leaseMs ?? 30_000;
    this.checkRuns = new CheckRuns({ github: o.github, store: o.store, logger: o.logger, publicUrl: o.publicUrl, logKey: o.logKey, backoff: o.githubBackoff, cancelGitHubRun: o.cancelGitHubRun, runnerMode: !!o.jit, hostId: this.hostId, leaseMs: this.leaseMs });
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
        this.route(req, res, intake);
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
      const handler = adminHandler({ store: this.o.store, metrics: this.metrics, cancel: (k) => this.cancel(k), ready: () => this.ready(), ceiling: (scope) => this.o.quotaDefaults?.(scope) ?? {}, pages: { publicUrl: this.o.publicUrl, logKey: this.o.logKey } });
      this.admin = createServer((req, res) => void handler(req, res));
      hardenListener(this.admin);
      await new Promise<void>((r) => this.admin!.listen(this.o.adminPort, this.o.adminHost ?? '127.0.0.1', r));
    }
    this.leases.start();
    this.timers.push(setInterval(() => this.kick(), 1000));
    this.timers.push(setInterval(() => void this.watchEngine(), this.o.engineCheckMs ?? 2000));
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

  /** The Podman API service did not answer on the last check: nothing is claimed until it does. */
  private engineDown = false;
  private engineChecking = false;
  /** Jobs that were running when the engine went away: until they have ended, what they left is reaped on each check. */
  private outageJobs?: Set<string>;

  /**
   * The Podman API service's watchdog: when it stops answering, no more jobs are claimed (they wait
   * queued), it is started again (restartEngine), and once it answers, what the interrupted jobs
   * left (containers, volumes, cgroups) is reaped: the running steps already ended as sandbox
   * failures saying why (run-step-container.ts).
   */
  private async watchEngine(): Promise<void> {
    if (this.engineChecking || this.stopped) return;
    this.engineChecking = true;
    const log = this.o.logger;
    try {
      const up = await this.o.sandbox.deps.engine.ping().then(() => true, () => false);
      if (!up) {
        if (!this.engineDown) log.error({ socket: 'podman' }, 'the Podman API service does not answer: no job is started until it does');
        this.engineDown = true;
        this.outageJobs ??= new Set(this.o.sandbox.activeJobs);
        if (this.o.restartEngine) await this.o.restartEngine().catch((e: unknown) => log.error({ err: e }, 'the Podman API service could not be started again; will retry'));
        return;
      }
      if (this.engineDown) log.warn('the Podman API service answers again');
      this.engineDown = false;
      if (!this.outageJobs) return;
      const r = await this.o.sandbox.reapFinished();
      const removed = r.containers + r.volumes + r.networks + r.cgroups + r.disks;
      if (![...this.outageJobs].some((k) => this.o.sandbox.activeJobs.has(k)) && removed === 0) this.outageJobs = undefined;
      this.kick();
    } catch (e) {
      log.warn({ err: e }, 'engine check failed');
    } finally {
      this.engineChecking = false;
    }
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

  private async ready(): Promise<{ ok: boolean; checks: Record<string, string> }> {
    const checks: Record<string, string> = {};
    let ok = true;
    try {
      await this.o.sandbox.deps.engine.ping();
      checks.podman = 'ok';
    } catch (e) {
      ok = false;
      checks.podman = (e as Error).message;
    }
    try {
      await this.o.store.quotas.addUsage(['readyz'], 0);
      checks.database = 'ok';
    } catch (e) {
      ok = false;
      checks.database = (e as Error).message;
    }
    try {
      const s = await statfs(this.o.workDir.replace(/\/work$/, ''));
      const free = s.bavail * s.bsize;
      const min = this.o.minFreeDiskBytes ?? 1024 ** 3;
      checks.disk = free >= min ? `ok (${Math.round(free / 1024 ** 2)} MiB free)` : `${Math.round(free / 1024 ** 2)} MiB free, below ${Math.round(min / 1024 ** 2)} MiB`;
      if (free < min) ok = false;
    } catch (e) {
      ok = false;
      checks.disk = (e as Error).message;
    }
    return { ok, checks };
  }

  /** The webhook listener's routes: POST /webhook, GET /jobs/KEY?sig=… (the job's page), GET /logs/KEY?sig=… (its log as text), GET /healthz (counts only, no names). */
  private route(req: IncomingMessage, res: ServerResponse, intake: (req: IncomingMessage, res: ServerResponse) => Promise<void>): void {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://x');
    } catch {
      return void res.writeHead(400).end('malformed request target\n');
    }
    if (req.method === 'POST' && url.pathname === '/webhook') {
      return void intake(req, res).catch((e: unknown) => {
        this.o.logger.error({ err: e }, 'intake failed');
        if (!res.headersSent) res.writeHead(500).end();
        else res.destroy();
      });
    }
    const failed = (e: unknown) => {
      this.o.logger.warn({ err: e }, 'request failed');
      if (!res.headersSent) res.writeHead(503).end('the database is unreachable; try again\n');
      else res.destroy();
    };
    if (req.method === 'GET' && url.pathname.startsWith('/logs/')) return void this.serveLog(url, res).catch(failed);
    if (req.method === 'GET' && url.pathname.startsWith('/jobs/')) return void jobPageRoute({ store: this.o.store, logKey: this.o.logKey, live: this.live }, req, res, url).catch(failed);
    if (req.method === 'GET' && url.pathname === '/healthz') return void this.o.store.counts().then((c) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(c)), failed);
    res.writeHead(404).end();
  }

  private async serveLog(url: URL, res: ServerResponse): Promise<void> {
    let key: string;
    try {
      key = decodeURIComponent(url.pathname.slice('/logs/'.length));
    } catch {
      return void res.writeHead(404).end('not found\n');
    }
    if (!checkLogSignature(this.o.logKey, key, url.searchParams.get('sig'))) return void res.writeHead(404).end('not found\n');
    const row = await this.o.store.get(key);
    if (!row) return void res.writeHead(404).end('not found\n');
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' }).end(row.log ?? `(job ${row.state}; no log yet)\n`);
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
      const plan = d.event === 'check_run' ? await this.planRerun(d.guid, payload) : planDelivery(d.guid, d.event, payload, this.o.labels, this.o.modes, this.o.priorities);
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
    if (this.stopped || this.running >= host || this.engineDown) return;
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

  /** check_run rerequested / requested_action: the job behind the check run (its external_id) runs again. */
  private async planRerun(guid: string, payload: Record<string, unknown>): Promise<{ jobs: PlannedJob[]; reason: string }> {
    const action = String(payload.action ?? '');
    if (action !== 'rerequested' && action !== 'requested_action') return { jobs: [], reason: `check_run ${action} runs nothing` };
    const externalId = String(((payload.check_run ?? {}) as Record<string, unknown>).external_id ?? '');
    const original = await this.o.store.get(externalId.replace(/#rerun\/.*$/, ''));
    if (!original) return { jobs: [], reason: `check run ${externalId} is not one of this runner's jobs` };
    // A replayed re-run request (a fresh delivery id) while a re-run of the same job is still under way starts nothing.
    const busy = ['accepted', 'queued', 'running'].includes(original.state) ? original : await this.o.store.activeWithPrefix(`${original.key}#rerun/`);
    if (busy) return { jobs: [], reason: `a re-run of ${original.key} is already ${busy.state} (${busy.key})` };
    // A re-run can be asked for by anyone who can see the check run: it runs as untrusted (no secrets).
    const spec = original.spec;
    const untrusted: JobSpec = spec.mode === 'app' ? { ...spec, fromFork: true } : { ...spec, untrusted: true };
    return {
      jobs: [{ key: `${original.key}#rerun/${guid}`, deliveryGuid: original.deliveryGuid, repository: original.repository, installationId: original.installationId, headSha: original.headSha, spec: untrusted }],
      reason: `re-run of ${original.key} (untrusted: no secrets)`,
    };
  }

  /** accepted → queued, with the check run created as `queued`. */
  private async accept(row: ServerJob, attempt: number): Promise<void> {
    const spec = row.spec;
    try {
      const name = `stockade: ${spec.jobName}`;
      // A job accepted by an earlier process may have had its check run created just
      // before a crash, without the id being saved: find it rather than make a second.
      // So may a host that accepted it before this one (attempt > 1), or a create that timed out after GitHub made it.
      const earlier = row.createdAt < this.startedAt || attempt > 1 || row.githubAttempts > 0 ? await this.o.github.findCheckRun(row.installationId, spec.owner, spec.repo, row.headSha, name, row.key) : undefined;
      // What the sandbox will refuse is refused here, before the job takes a slot: it completes at once with the errors.
      const payload = async () => JSON.parse((await this.o.store.getDelivery(row.deliveryGuid))?.payload ?? '{}') as Record<string, unknown>;
      // In runner mode GitHub's runner reads the workflow (actions, containers); the hook judges each step.
      const viaRunner = !!this.o.jit && spec.mode === 'workflow_job';
      const refused = earlier === undefined && !viaRunner ? await refusedBeforeQueue(this.o.github, row, spec, this.prechecked(), await payload(), this.o.logger) : undefined;
      if (refused) {
        await this.o.store.transition(row.key, 'failed', { result: refused });
        return;
      }
      const id = earlier ?? await this.o.github.createCheckRun(row.installationId, spec.owner, spec.repo, {
        name,
        head_sha: row.headSha,
        status: 'queued',
        external_id: row.key,
        details_url: jobPageUrl(this.o.publicUrl, this.o.logKey, row.key),
      });
      // Saved whatever the state: a job cancelled while the check run was being created must complete this one.
      await this.o.store.setCheckRun(row.key, id);
      await this.o.store.transition(row.key, 'queued');
    } catch (e) {
      await this.checkRuns.writeFailed(row, e, 'check run could not be created', row.createdAt, async () => {
        // Terminal: the job never ran and GitHub will not take a check run for it.
        await this.o.store.transition(row.key, 'failed', { result: failedReport(row, `GitHub refused the check run: ${(e as Error).message}`) });
      });
    }
  }

  private run(row: ServerJob): Promise<void> {
    return runAdmittedJob({ o: this.o, live: this.live, metrics: this.metrics, jobAborts: this.jobAborts, serverSignal: this.abort.signal, leases: this.leases, handOff: this.handOff }, row);
  }


  /** Fetches deliveries GitHub made that this server never stored (it was down), and stores them. */
  async reconcile(): Promise<number> {
    let found = 0;
    try {
      for (const d of await this.o.github.listDeliveries(100)) {
        if (!EVENTS.has(d.event) || (await this.o.store.hasDelivery(d.guid))) continue;
        const full = await this.o.github.getDelivery(d.id);
        if (await this.o.store.addDelivery(full.guid, full.event, JSON.stringify(full.payload))) found++;
      }
    } catch (e) {
      this.o.logger.warn({ err: e }, 'reconciliation failed; will retry');
    }
    if (found) {
      this.o.logger.info({ found }, 'reconciliation found missed deliveries');
      this.kick();
    }
    return found;
  }
}
