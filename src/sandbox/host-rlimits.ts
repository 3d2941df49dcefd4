import { readFileSync } from 'node:fs';
import { parseLimitLine } from './process-rlimits';
import type { HostRlimits } from './to-create-options';

/** Hard RLIMIT_NOFILE / RLIMIT_NPROC of a process (the engine inherits the runner's host limits). */
export function readHostRlimits(limitsText: string = readFileSync('/proc/self/limits', 'utf8')): HostRlimits {
  const hard = (label: string, fallback: number) => {
    const v = parseLimitLine(limitsText, label)?.hard;
    return v === undefined || v === 'unlimited' ? fallback : Number(v);
  };
  return { nofileHard: hard('Max open files', 1_048_576), nprocHard: hard('Max processes', 4_194_304) };
}
