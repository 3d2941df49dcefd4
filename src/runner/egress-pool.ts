import { randomBytes } from 'node:crypto';
import { LABEL_JOB, managedLabels, type Sandbox } from '../sandbox';
import { startForwarder, type Forwarder } from './job-results';
import { sidecarFingerprint, startWaitingSidecar, type SidecarShape, type WaitingSidecar } from './egress-sidecar';

/**
 * Job networks with their egress sidecar made ahead (issue 17, target 2): a long-running host
 * (`stockade serve`, the hook broker) keeps `size` of them ready, each waiting for the allowlist of
 * the job that takes it. Each serves one job and is removed with that job's network; none is ever
 * handed to a second job. Made in the shape of the last job with egress (image, limits, Node.js,
 * sidecar bundle), so the first such job after a start makes its own; an unused one goes after
 * `idleMs`, and all of them at close(). Their objects are labelled like a job's (owner, a job key of
 * their own kept in the sandbox's active jobs), so a crashed host's are reaped like a job's.
 */
export interface PreparedNetwork {
  key: string;
  labels: Record<string, string>;
  network: string;
  sidecar: WaitingSidecar;
  /** Its results forwarder, ready, when the shape has one (the job's results service takes it). */
  forwarder?: Forwarder;
  /** Removes the forwarder, the sidecar, its control volume and the network. */
  remove(): Promise<void>;
}

interface Slot {
  fingerprint: string;
  ready?: PreparedNetwork;
  making?: Promise<void>;
  idle?: NodeJS.Timeout;
}

/** How long an unused prepared network is kept. */
export const PREPARED_IDLE_MS = 10 * 60_000;

export class EgressPool {
  private readonly slots = new Set<Slot>();
  private closed = false;

  constructor(private readonly sandbox: Sandbox, readonly size: number, private readonly idleMs = PREPARED_IDLE_MS) {}

  /** A prepared network of this shape, now the caller's (its remove() is the caller's), or undefined. */
  take(shape: SidecarShape): PreparedNetwork | undefined {
    const fp = sidecarFingerprint(shape);
    for (const s of this.slots) {
      if (s.fingerprint !== fp || !s.ready || s.ready.sidecar.container.ended()) continue;
      this.slots.delete(s);
      clearTimeout(s.idle);
      return s.ready;
    }
    return undefined;
  }

  /** Makes networks of this shape until `size` are ready or on their way; those of another shape go. */
  refill(shape: SidecarShape): void {
    if (this.closed) return;
    const fp = sidecarFingerprint(shape);
    for (const s of this.slots) if (s.fingerprint !== fp) this.drop(s);
    for (let n = this.slots.size; n < this.size; n++) {
      const slot: Slot = { fingerprint: fp };
      this.slots.add(slot);
      slot.making = this.make(shape)
        .then((p) => {
          if (this.closed || !this.slots.has(slot)) return void this.removals.push(p.remove());
          slot.ready = p;
          slot.idle = setTimeout(() => this.drop(slot), this.idleMs);
          slot.idle.unref();
        })
        .catch((e: unknown) => {
          this.slots.delete(slot);
          shape.logger.warn({ err: e }, 'a job network could not be prepared ahead; the next job with egress makes its own');
        })
        .finally(() => (slot.making = undefined));
    }
  }

  /** How many are ready now (metrics, tests). */
  readyCount(): number {
    return [...this.slots].filter((s) => s.ready).length;
  }

  /** Removes every prepared network, waiting for those being made. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.slots];
    for (const s of all) this.drop(s);
    await Promise.allSettled(all.map((s) => s.making));
    await Promise.allSettled(this.removals.splice(0));
  }

  private readonly removals: Promise<void>[] = [];

  private drop(s: Slot): void {
    this.slots.delete(s);
    clearTimeout(s.idle);
    // One still being made is removed once made (refill's then sees it gone).
    if (s.ready) this.removals.push(s.ready.remove());
  }

  private async make(shape: SidecarShape): Promise<PreparedNetwork> {
    const sandbox = this.sandbox;
    const engine = sandbox.deps.engine;
    const key = `prepared-${randomBytes(6).toString('hex')}`;
    const labels = managedLabels(sandbox.ownerTag, { [LABEL_JOB]: key });
    const network = `stockade-${key}`;
    sandbox.activeJobs.add(key);
    let made = false;
    let sidecar: WaitingSidecar | undefined;
    let forwarder: Forwarder | undefined;
    const remove = async () => {
      try {
        await Promise.allSettled([sidecar?.remove(), forwarder?.stop()]);
        if (made) await engine.removeNetwork(network).catch((e: unknown) => shape.logger.error({ err: e, network }, 'network remove failed'));
      } finally {
        sandbox.activeJobs.delete(key);
      }
    };
    try {
      await sandbox.keepNetnsAlive(shape.image);
      await engine.createNetwork(network, labels, { internal: true });
      made = true;
      // Stopped by its wall-time limit if nothing takes or removes it; a job that takes it sets its own deadline.
      const until = Date.now() + this.idleMs + 60_000;
      const [s, f] = await Promise.allSettled([startWaitingSidecar(shape, network, labels, until), shape.forwarder ? startForwarder(shape.forwarder, key, labels, { network }, until) : undefined]);
      if (s.status === 'fulfilled') sidecar = s.value;
      if (f.status === 'fulfilled') forwarder = f.value;
      if (s.status === 'rejected') throw s.reason;
      if (f.status === 'rejected') throw f.reason;
      return { key, labels, network, sidecar: s.value, forwarder, remove };
    } catch (e) {
      await remove();
      throw e;
    }
  }
}

const pools = new WeakMap<Sandbox, EgressPool>();

/** Turns on networks made ahead for this sandbox's jobs with egress (long-running hosts only). */
export function enableEgressPool(sandbox: Sandbox, size = 1): EgressPool {
  let p = pools.get(sandbox);
  if (!p) pools.set(sandbox, (p = new EgressPool(sandbox, size)));
  return p;
}

export function egressPoolOf(sandbox: Sandbox): EgressPool | undefined {
  return pools.get(sandbox);
}
