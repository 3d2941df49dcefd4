import type { Logger } from '../common';

/** Something made ahead for one job: taken whole, or removed. */
export interface Prepared {
  /** Whether it broke meanwhile (its process ended): never handed out then. */
  ended(): boolean;
  remove(): Promise<void>;
}

interface Slot<T> {
  fingerprint: string;
  ready?: T;
  making?: Promise<void>;
  idle?: NodeJS.Timeout;
}

/**
 * Up to `size` things of one shape (a fingerprint) made ahead: take() hands one out whole (it is
 * then the taker's to remove); refill() makes more of the latest shape and drops those of any other;
 * one unused for `idleMs` is removed, and all at close().
 */
export class PreparedPool<T extends Prepared> {
  private readonly slots = new Set<Slot<T>>();
  private readonly removals: Promise<void>[] = [];
  private closed = false;

  constructor(readonly size: number, private readonly idleMs: number) {}

  take(fingerprint: string): T | undefined {
    for (const s of [...this.slots]) {
      if (s.ready?.ended()) {
        // Broken meanwhile (the engine restarted, its process died): removed, and made again by the next refill.
        this.drop(s);
        continue;
      }
      if (s.fingerprint !== fingerprint || !s.ready) continue;
      this.slots.delete(s);
      clearTimeout(s.idle);
      return s.ready;
    }
    return undefined;
  }

  refill(fingerprint: string, make: () => Promise<T>, logger: Logger): void {
    if (this.closed) return;
    for (const s of this.slots) if (s.fingerprint !== fingerprint) this.drop(s);
    for (let n = this.slots.size; n < this.size; n++) {
      const slot: Slot<T> = { fingerprint };
      this.slots.add(slot);
      slot.making = make()
        .then((p) => {
          // Dropped (or the pool closed) while it was being made: it goes at once.
          if (this.closed || !this.slots.has(slot)) return void this.removals.push(p.remove());
          slot.ready = p;
          slot.idle = setTimeout(() => this.drop(slot), this.idleMs);
          slot.idle.unref();
        })
        .catch((e: unknown) => {
          this.slots.delete(slot);
          logger.warn({ err: e }, 'a job helper could not be made ahead; the next job makes its own');
        })
        .finally(() => (slot.making = undefined));
    }
  }

  readyCount(): number {
    return [...this.slots].filter((s) => s.ready).length;
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.slots];
    for (const s of all) this.drop(s);
    await Promise.allSettled(all.map((s) => s.making));
    await Promise.allSettled(this.removals.splice(0));
  }

  private drop(s: Slot<T>): void {
    this.slots.delete(s);
    clearTimeout(s.idle);
    if (s.ready) this.removals.push(s.ready.remove());
  }
}
