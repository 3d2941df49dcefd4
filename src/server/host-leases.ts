import type { Logger } from '../common';
import type { HostLossPolicy } from '../store';
import { failedReport } from './check-runs';
import type { ServerMetrics } from './metrics';
import type { ServerStore } from './plan-delivery';

/** Why a running job's local execution was stopped by the fleet machinery rather than by a cancel. */
export type HandOff = 'lease-lost' | 'handback';

interface Held {
  attempt: number;
  /** By this host's own clock, the lease may have passed to another host after this. */
  validUntil: number;
  abort: (why: HandOff) => void;
}

export interface HostLeaseOptions {
  store: ServerStore;
  logger: Logger;
  metrics: ServerMetrics;
  hostId: string;
  capacity: number;
  leaseMs: number;
  hostLoss: HostLossPolicy;
  /** Runs of one job at most, with `requeue` (the first run counts). @default 2 */
  maxAttempts?: number;
  /** After taking jobs over: the dead host's containers are removed (the reaper removes only those whose owner process is gone). */
  reap: () => Promise<unknown>;
  running: () => number;
  draining: () => boolean;
  /** A running job of this host that another host was asked to cancel (admin API, GitHub cancelled the run). */
  cancel: (key: string) => void;
}

/**
 * This host's side of the fleet: the leases of its running jobs renewed every third of the lease
 * (a job whose lease is gone is stopped here and its result discarded), its heartbeat in the hosts
 * table, and the jobs of hosts that stopped renewing taken over (failed, or queued again by policy).
 * A job is acted on only while its lease is still valid by this host's own clock: a host that was
 * paused longer than the lease stops the job before it writes anything.
 */
export class HostLeases {
  private readonly held = new Map<string, Held>();
  private timer?: NodeJS.Timeout;
  private ticking = false;
  readonly startedAt = Date.now();
  /** The last pass that reached the database. */
  private lastReached = Date.now();
  /** After an outage longer than a lease: no take-over before this, so hosts that were only cut off renew first. */
  private noTakeOverUntil = 0;

  constructor(private readonly o: HostLeaseOptions) {}

  hold(key: string, attempt: number, abort: (why: HandOff) => void): void {
    this.held.set(key, { attempt, validUntil: Date.now() + this.o.leaseMs, abort });
  }

  release(key: string): void {
    this.held.delete(key);
  }

  /**
   * True while the lease on `key` is certainly still this host's by its own clock. False holds back
   * GitHub writes until a renewal succeeds again (the row still names this host and attempt: nobody
   * took over) or fails (the job is stopped).
   */
  holds(key: string): boolean {
    const h = this.held.get(key);
    return !!h && Date.now() < h.validUntil;
  }

  heldKeys(): string[] {
    return [...this.held.keys()];
  }

  start(): void {
    void this.tick();
    this.timer = setInterval(() => void this.tick(), Math.max(200, Math.min(5000, Math.floor(this.o.leaseMs / 3))));
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.o.store.leases.removeHost(this.o.hostId).catch(() => undefined);
  }

  private lose(key: string, why: string): void {
    const h = this.held.get(key);
    if (!h) return;
    this.held.delete(key);
    this.o.logger.warn({ job: key, host: this.o.hostId }, `lease lost: ${why}; the job is stopped here and nothing more of it is written`);
    h.abort('lease-lost');
  }

  /** One pass: the heartbeat, the renewals, then the take-over of expired jobs. A database error skips the pass. */
  async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    const { store, logger } = this.o;
    try {
      // Renewed by host and attempt, even past its end by this clock: the row still naming this claim
      // means no host took it over (a take-over changes the state), so the job may go on.
      const now = Date.now();
      const live = [...this.held];
      const lost = await store.leases.renew(this.o.hostId, this.o.leaseMs, live.map(([key, h]) => ({ key, attempt: h.attempt })));
      for (const [key, h] of live) if (!lost.includes(key) && this.held.get(key) === h) h.validUntil = now + this.o.leaseMs;
      for (const key of lost) this.lose(key, 'another host took the job over');
      if (this.held.size) for (const key of await store.leases.cancelRequested(this.o.hostId)) if (this.held.has(key)) this.o.cancel(key);
      await store.leases.heartbeat({ id: this.o.hostId, capacity: this.o.capacity, running: this.o.running(), draining: this.o.draining(), startedAt: this.startedAt });
      // Cut off from the database (or paused) longer than a lease: so was every other host, maybe, and
      // their leases lapsed only because they could not renew. One lease's wait lets them renew first.
      if (now - this.lastReached > this.o.leaseMs) {
        this.noTakeOverUntil = now + this.o.leaseMs;
        logger.warn({ unreachableMs: now - this.lastReached }, 'the database was out of reach for longer than a lease: no take-over for one lease');
      }
      this.lastReached = now;
      if (now < this.noTakeOverUntil) return;
      const taken = await store.leases.takeOverExpired(this.o.hostLoss, this.o.maxAttempts ?? 2, (row) => failedReport(row, `the runner host stopped (${row.leaseOwner ?? 'unknown host'} did not renew its lease); the job ${this.o.hostLoss === 'requeue' ? 'ran out of attempts' : 'is not run again'}`));
      for (const t of taken) {
        this.o.metrics.hostLoss.inc({ to: t.to });
        logger.warn({ job: t.key, host: t.owner, to: t.to }, t.to === 'queued' ? 'the runner host stopped; job queued again' : 'the runner host stopped; job reported failed');
      }
      if (taken.length) await this.o.reap().catch((e: unknown) => logger.warn({ err: e }, 'reaping after a take-over failed'));
      await store.leases.dropStaleHosts(Math.max(10 * this.o.leaseMs, 300_000));
    } catch (e) {
      logger.warn({ err: e }, 'lease pass failed; will retry');
    } finally {
      this.ticking = false;
    }
  }
}
