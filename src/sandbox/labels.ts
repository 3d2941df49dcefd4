import { readFileSync } from 'node:fs';

/** Every container, volume and network Stockade creates carries these labels. */
export const LABEL_MANAGED = 'io.stockade.managed';
/** `<pid>.<starttime>` of the runner process that created the object: the reaper removes objects whose owner is gone. */
export const LABEL_OWNER = 'io.stockade.owner';
export const LABEL_JOB = 'io.stockade.job';
export const LABEL_STEP = 'io.stockade.step';

/** Identity of a live process that survives PID reuse: pid plus its start time in clock ticks. */
export function processTag(pid: number = process.pid): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return `${pid}.${fields[19]}`;
  } catch {
    return undefined;
  }
}

export function isOwnerAlive(tag: string): boolean {
  const pid = Number(tag.split('.')[0]);
  return Number.isInteger(pid) && pid > 0 && processTag(pid) === tag;
}

export function managedLabels(owner: string, extra: Record<string, string> = {}): Record<string, string> {
  return { [LABEL_MANAGED]: 'true', [LABEL_OWNER]: owner, ...extra };
}

/** The one routed network, shared by the egress sidecars of all jobs (steps never join it). */
export const EGRESS_NETWORK = 'stockade-egress';
export const LABEL_EGRESS = 'io.stockade.egress';
