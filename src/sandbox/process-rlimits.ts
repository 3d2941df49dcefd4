import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { StockadeError } from '../common';

const run = promisify(execFile);

export interface StepRlimits {
  nofile: number;
  /** Core dump size; always 0 for steps. */
  core: number;
}

/** Soft and hard values of one line of /proc/<pid>/limits. */
export function parseLimitLine(limitsText: string, label: string): { soft: string; hard: string } | undefined {
  const line = limitsText.split('\n').find((l) => l.startsWith(label));
  const [soft, hard] = line?.slice(label.length).trim().split(/\s+/) ?? [];
  return soft && hard ? { soft, hard } : undefined;
}

/**
 * Sets the rlimits of a step's initialized (not yet started) container process and
 * reads them back. Podman 4.3's Docker-compatible create ignores `Ulimits` in rootless
 * mode (fixed upstream in 2025), so the limits are applied to the process itself,
 * which every process of the step inherits; a mismatch refuses the step.
 * prlimit runs with the process's own uid and gid: the kernel lets an owner lower its
 * own process's limits, and root here may lack CAP_SYS_RESOURCE (seen on these hosts).
 */
export async function applyProcessRlimits(pid: number, limits: StepRlimits): Promise<void> {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const id = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1]);
  const owner = { uid: id('Uid'), gid: id('Gid') };
  const asOwner = process.getuid?.() === owner.uid ? {} : owner;
  try {
    await run('prlimit', ['--pid', String(pid), `--nofile=${limits.nofile}:${limits.nofile}`, `--core=${limits.core}:${limits.core}`], asOwner);
  } catch (e) {
    throw new StockadeError('LIMITS_NOT_ENFORCED', `could not set rlimits of pid ${pid}: ${(e as Error).message}`, { cause: e });
  }
  const text = readFileSync(`/proc/${pid}/limits`, 'utf8');
  const check = (label: string, want: number) => {
    const got = parseLimitLine(text, label);
    if (got?.soft !== String(want) || got.hard !== String(want)) {
      throw new StockadeError('LIMITS_NOT_ENFORCED', `${label} of pid ${pid} is ${got?.soft}/${got?.hard}, not ${want}; the step is refused`);
    }
  };
  check('Max open files', limits.nofile);
  check('Max core file size', limits.core);
}
