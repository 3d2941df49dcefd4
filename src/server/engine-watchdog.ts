import type { Logger } from '../common';
import type { Sandbox } from '../sandbox';

/**
 * The Podman API service's watchdog: when it stops answering, no more jobs are claimed (they wait
 * queued), it is started again (restartEngine), and once it answers, what the interrupted jobs
 * left (containers, volumes, cgroups) is reaped: the running steps already ended as sandbox
 * failures saying why (run-step-container.ts).
 */
export class EngineWatchdog {
  /** The service did not answer on the last check: nothing is claimed until it does. */
  down = false;
  private checking = false;
  /** Jobs that were running when the engine went away: until they have ended, what they left is reaped on each check. */
  private outageJobs?: Set<string>;

  constructor(private readonly o: { sandbox: Sandbox; logger: Logger; restartEngine?: () => Promise<void>; recovered: () => void }) {}

  async check(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    const log = this.o.logger;
    try {
      const up = await this.o.sandbox.deps.engine.ping().then(() => true, () => false);
      if (!up) {
        if (!this.down) log.error({ socket: 'podman' }, 'the Podman API service does not answer: no job is started until it does');
        this.down = true;
        this.outageJobs ??= new Set(this.o.sandbox.activeJobs);
        if (this.o.restartEngine) await this.o.restartEngine().catch((e: unknown) => log.error({ err: e }, 'the Podman API service could not be started again; will retry'));
        return;
      }
      if (this.down) log.warn('the Podman API service answers again');
      this.down = false;
      if (!this.outageJobs) return;
      const r = await this.o.sandbox.reapFinished();
      const removed = r.containers + r.volumes + r.networks + r.cgroups + r.disks;
      if (![...this.outageJobs].some((k) => this.o.sandbox.activeJobs.has(k)) && removed === 0) this.outageJobs = undefined;
      this.o.recovered();
    } catch (e) {
      log.warn({ err: e }, 'engine check failed');
    } finally {
      this.checking = false;
    }
  }
}
