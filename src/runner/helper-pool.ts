import { randomBytes } from 'node:crypto';
import { LABEL_JOB, managedLabels, volumeOwner, type ResourceLimits, type Sandbox } from '../sandbox';
import type { Logger } from '../common';
import { forwarderFingerprint, startForwarder, type Forwarder, type ForwarderShape } from './job-results';
import { sidecarFingerprint, startWaitingSidecar, type SidecarShape, type WaitingSidecar } from './egress-sidecar';
import { PreparedPool } from './prepared-pool';

/**
 * A job's helpers made ahead (issue 17, target 2): a long-running host (`stockade serve`, the hook
 * broker) keeps, in the shape of its last job of each kind,
 * - a job network with its egress sidecar, waiting for the allowlist of the job that takes it, and
 *   (app mode) the results forwarder on it, for jobs with egress;
 * - a results forwarder with loopback only, whose network namespace the steps join, for jobs without.
 * Each serves one job and is removed with that job's; none is handed to a second job. The first job
 * of a kind after a start makes its own. An unused one goes after `idleMs`, and all at close(). Their
 * objects are labelled like a job's (owner, a job key of their own kept in the sandbox's active
 * jobs), so a crashed host's are reaped like a job's.
 */
export interface PreparedNetwork {
  key: string;
  labels: Record<string, string>;
  network: string;
  sidecar: WaitingSidecar;
  /** Its results forwarder, ready, when the shape has one (the job's results service takes it). */
  forwarder?: Forwarder;
  ended(): boolean;
  /** Removes the forwarder, the sidecar, its control volume and the network. */
  remove(): Promise<void>;
}

/** How long an unused helper is kept. */
export const PREPARED_IDLE_MS = 10 * 60_000;

export class HelperPool {
  private readonly networks: PreparedPool<PreparedNetwork>;
  private readonly forwarders: PreparedPool<Forwarder & { remove(): Promise<void>; ended(): boolean }>;

  constructor(private readonly sandbox: Sandbox, size = 1, private readonly idleMs = PREPARED_IDLE_MS) {
    this.networks = new PreparedPool(size, idleMs);
    this.forwarders = new PreparedPool(size, idleMs);
  }

  /** A network made ahead in this shape, now the caller's, or undefined. */
  takeNetwork(shape: SidecarShape): PreparedNetwork | undefined {
    return this.networks.take(sidecarFingerprint(shape));
  }

  refillNetworks(shape: SidecarShape): void {
    this.networks.refill(sidecarFingerprint(shape), () => this.makeNetwork(shape), shape.logger);
  }

  /** A loopback-only forwarder made ahead in this shape, now the caller's, or undefined. */
  takeForwarder(shape: ForwarderShape): Forwarder | undefined {
    return this.forwarders.take(forwarderFingerprint(shape));
  }

  refillForwarders(shape: ForwarderShape): void {
    this.forwarders.refill(forwarderFingerprint(shape), () => this.makeForwarder(shape), shape.logger);
  }

  readyCount(): { networks: number; forwarders: number } {
    return { networks: this.networks.readyCount(), forwarders: this.forwarders.readyCount() };
  }

  async close(): Promise<void> {
    await Promise.all([this.networks.close(), this.forwarders.close()]);
  }

  /** A key of its own, kept among the sandbox's active jobs until `release`. */
  private own(): { key: string; labels: Record<string, string>; release(): void } {
    const key = `prepared-${randomBytes(6).toString('hex')}`;
    this.sandbox.activeJobs.add(key);
    return { key, labels: managedLabels(this.sandbox.ownerTag, { [LABEL_JOB]: key }), release: () => void this.sandbox.activeJobs.delete(key) };
  }

  private async makeForwarder(shape: ForwarderShape): Promise<Forwarder & { remove(): Promise<void>; ended(): boolean }> {
    const { key, labels, release } = this.own();
    try {
      const f = await startForwarder(shape, key, labels, undefined, this.until());
      // Whoever stops it (the pool, or the job's results service) ends the key's life too.
      const stop = () => f.stop().finally(release);
      return { ...f, stop, remove: stop, ended: () => f.container.ended() };
    } catch (e) {
      release();
      throw e;
    }
  }

  private async makeNetwork(shape: SidecarShape): Promise<PreparedNetwork> {
    const engine = this.sandbox.deps.engine;
    const { key, labels, release } = this.own();
    const network = `stockade-${key}`;
    let made = false;
    let sidecar: WaitingSidecar | undefined;
    let forwarder: Forwarder | undefined;
    const remove = async () => {
      try {
        await Promise.allSettled([sidecar?.remove(), forwarder?.stop()]);
        if (made) await engine.removeNetwork(network).catch((e: unknown) => shape.logger.error({ err: e, network }, 'network remove failed'));
      } finally {
        release();
      }
    };
    try {
      await this.sandbox.keepNetnsAlive(shape.image);
      await engine.createNetwork(network, labels, { internal: true });
      made = true;
      const until = this.until();
      const [s, f] = await Promise.allSettled([startWaitingSidecar(shape, network, labels, until), shape.forwarder ? startForwarder(shape.forwarder, key, labels, { network }, until) : undefined]);
      if (s.status === 'fulfilled') sidecar = s.value;
      if (f.status === 'fulfilled') forwarder = f.value;
      if (s.status === 'rejected') throw s.reason;
      if (f.status === 'rejected') throw f.reason;
      const ready = s.value;
      return { key, labels, network, sidecar: ready, forwarder, remove, ended: () => ready.container.ended() || !!forwarder?.container.ended() };
    } catch (e) {
      await remove();
      throw e;
    }
  }

  /** Stopped by its wall-time limit if nothing takes or removes it; a job that takes it sets its own deadline. */
  private until(): number {
    return Date.now() + this.idleMs + 60_000;
  }
}

/** How long after a job took a helper the next one is made: at once, it competes with that job's start for Podman. */
export const REFILL_AFTER_MS = 400;

/** A loopback-only forwarder made ahead for this sandbox's jobs, if one is ready; the next is made REFILL_AFTER_MS later. */
export function takeLoopbackForwarder(sandbox: Sandbox, shape: ForwarderShape): Forwarder | undefined {
  const pool = pools.get(sandbox);
  if (!pool) return undefined;
  setTimeout(() => pool.refillForwarders(shape), REFILL_AFTER_MS).unref();
  return pool.takeForwarder(shape);
}

/** What a host's jobs are made of, to make their helpers ahead before the first job arrives. */
export interface HelperDefaults {
  logger: Logger;
  image: string;
  limits: ResourceLimits;
  nodeBinary?: string;
  results?: ForwarderShape['settings'];
  /** dist/sidecar.js, when the host's jobs may have egress. */
  sidecarScript?: string;
}

/**
 * Makes the first helpers ahead in the shape the host's jobs will have (a server's settings), so the
 * first job after a start finds them too. The uid/gid the jobs' containers run as is read from a
 * fresh volume, as a job reads it from its own.
 */
export async function primeHelperPool(pool: HelperPool, sandbox: Sandbox, d: HelperDefaults): Promise<void> {
  const engine = sandbox.deps.engine;
  const probe = `stockade-probe-${randomBytes(6).toString('hex')}`;
  let owner: { uid: number; gid: number };
  try {
    owner = await volumeOwner((await engine.createVolume(probe, managedLabels(sandbox.ownerTag, { [LABEL_JOB]: probe }))).mountpoint);
  } finally {
    await engine.removeVolume(probe).catch(() => undefined);
  }
  const forwarder: ForwarderShape | undefined = d.results ? { sandbox, logger: d.logger, settings: d.results, image: d.image, nodeBinary: d.nodeBinary, owner } : undefined;
  if (forwarder) pool.refillForwarders(forwarder);
  if (d.sidecarScript) pool.refillNetworks({ sandbox, logger: d.logger, image: d.image, limits: d.limits, nodeBinary: d.nodeBinary, sidecarScript: d.sidecarScript, forwarder });
}

const pools = new WeakMap<Sandbox, HelperPool>();

/** Turns on helpers made ahead for this sandbox's jobs (long-running hosts only). */
export function enableHelperPool(sandbox: Sandbox, size = 1): HelperPool {
  let p = pools.get(sandbox);
  if (!p) pools.set(sandbox, (p = new HelperPool(sandbox, size)));
  return p;
}

export function helperPoolOf(sandbox: Sandbox): HelperPool | undefined {
  return pools.get(sandbox);
}

