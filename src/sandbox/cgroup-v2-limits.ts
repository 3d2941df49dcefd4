import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StockadeError } from '../common';
import type { CgroupHost } from './cgroup-host';
import type { AppliedLimits, LimitEnforcer } from './limit-enforcer';
import type { ResourceLimits } from './step-spec';

/**
 * cgroup v2 with delegation: Podman applies the limits from its create flags
 * (to-create-options.ts); this enforcer only proves them in force by reading the
 * container's own cgroup files, and reads usage from them. Podman removes the cgroup.
 */
export class CgroupV2Limits implements LimitEnforcer {
  readonly mode = 'v2' as const;

  constructor(private readonly host: CgroupHost) {}

  async apply(stepName: string, pid: number, limits: ResourceLimits): Promise<AppliedLimits> {
    const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'));
    const dir = join(this.host.root, line?.slice(3) ?? '/');
    const read = (f: string) => {
      try {
        return readFileSync(join(dir, f), 'utf8').trim();
      } catch {
        return '';
      }
    };
    const fail = (what: string) => {
      throw new StockadeError('LIMITS_NOT_ENFORCED', `step ${stepName}: ${what} in ${dir}; the step is refused`, {
        hint: 'enable cgroup v2 delegation of memory, pids and cpu to the runner user (systemd Delegate=yes)',
      });
    };
    const mem = Number(read('memory.max'));
    if (!(mem <= limits.memoryBytes && mem > limits.memoryBytes - 65536)) fail(`memory.max is '${read('memory.max')}'`);
    if (read('pids.max') !== String(limits.pids)) fail(`pids.max is '${read('pids.max')}'`);
    if (read('cpu.max').startsWith('max')) fail('cpu.max is unlimited');
    const num = (f: string, key: string) => Number(new RegExp(`^${key} (\\d+)$`, 'm').exec(read(f))?.[1] ?? 0);
    return {
      paths: [dir],
      usage: () => ({
        peakMemoryBytes: Number(read('memory.peak')) || 0,
        cpuSeconds: num('cpu.stat', 'usage_usec') / 1e6,
        oomKills: num('memory.events', 'oom_kill'),
        pidsLimitHits: num('pids.events', 'max'),
      }),
      remove: async () => undefined,
    };
  }

  async reap(): Promise<string[]> {
    return [];
  }
}
