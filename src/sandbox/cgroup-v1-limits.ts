import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { StockadeError } from '../common';
import type { CgroupHost } from './cgroup-host';
import type { AppliedLimits, LimitEnforcer, StepUsage } from './limit-enforcer';
import type { ResourceLimits } from './step-spec';

const CONTROLLERS = ['memory', 'pids', 'cpu', 'cpuacct'] as const;
type Controller = (typeof CONTROLLERS)[number];
export const CGROUP_SUBTREE = 'stockade';
const CFS_PERIOD_US = 100_000;

/**
 * The per-controller directories `<this process's cgroup>/stockade` under which step
 * cgroups are made (setup creates them and hands them to the runner user).
 */
export function cgroupV1Subtrees(host: CgroupHost): Record<Controller, string> {
  const base = (c: Controller) => {
    const own = host.own[c];
    if (!own) throw new StockadeError('HOST_NOT_READY', `cgroup v1 controller '${c}' is not mounted`, { hint: 'stockade doctor lists what the host lacks' });
    return join(own.mount, own.path, CGROUP_SUBTREE);
  };
  return Object.fromEntries(CONTROLLERS.map((c) => [c, base(c)])) as Record<Controller, string>;
}

/**
 * Limits for rootless Podman on cgroup v1, where Podman ignores its own limit flags:
 * per step, a child cgroup under `<this process's cgroup>/stockade` in each
 * controller, limits written, the container's init PID moved in before it execs,
 * everything read back. Children of that process inherit the cgroup.
 */
export class CgroupV1Limits implements LimitEnforcer {
  readonly mode = 'v1' as const;
  private readonly bases: Record<Controller, string>;

  constructor(host: CgroupHost, private readonly ownerTag: string) {
    this.bases = cgroupV1Subtrees(host);
  }

  async apply(stepName: string, pid: number, limits: ResourceLimits): Promise<AppliedLimits> {
    const leaf = `${this.ownerTag}_${stepName}`;
    const dirs = Object.fromEntries(CONTROLLERS.map((c) => [c, join(this.bases[c], leaf)])) as Record<Controller, string>;
    const applied = this.handle(dirs);
    try {
      for (const c of CONTROLLERS) mkdirSync(dirs[c], { recursive: true });
      const mem = String(limits.memoryBytes);
      writeFileSync(join(dirs.memory, 'memory.limit_in_bytes'), mem);
      if (existsSync(join(dirs.memory, 'memory.memsw.limit_in_bytes'))) writeFileSync(join(dirs.memory, 'memory.memsw.limit_in_bytes'), mem);
      writeFileSync(join(dirs.pids, 'pids.max'), String(limits.pids));
      writeFileSync(join(dirs.cpu, 'cpu.cfs_period_us'), String(CFS_PERIOD_US));
      writeFileSync(join(dirs.cpu, 'cpu.cfs_quota_us'), String(Math.max(1000, Math.round(limits.cpus * CFS_PERIOD_US))));
      for (const c of CONTROLLERS) writeFileSync(join(dirs[c], 'cgroup.procs'), String(pid));
      this.verify(dirs, pid, limits);
      return applied;
    } catch (e) {
      await applied.remove().catch(() => undefined);
      if (e instanceof StockadeError) throw e;
      throw new StockadeError('LIMITS_NOT_ENFORCED', `could not apply limits to step ${stepName}: ${(e as Error).message}`, {
        hint: 'run `stockade setup` as root to prepare the cgroup subtree, or run the runner as root',
        cause: e,
      });
    }
  }

  private verify(dirs: Record<Controller, string>, pid: number, limits: ResourceLimits): void {
    const fail = (what: string) => {
      throw new StockadeError('LIMITS_NOT_ENFORCED', `limit not in force for pid ${pid}: ${what}; the step is refused`);
    };
    const membership = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
    for (const c of CONTROLLERS) {
      const leafPath = dirs[c].split(`/${CGROUP_SUBTREE}/`)[1]!;
      const line = membership.split('\n').find((l) => l.split(':')[1]?.split(',').includes(c));
      if (!line?.endsWith(`/${CGROUP_SUBTREE}/${leafPath}`)) fail(`process is not in the step's ${c} cgroup (${line ?? 'none'})`);
    }
    const read = (dir: string, f: string) => readFileSync(join(dir, f), 'utf8').trim();
    const mem = Number(read(dirs.memory, 'memory.limit_in_bytes'));
    if (!(mem <= limits.memoryBytes && mem > limits.memoryBytes - 65536)) fail(`memory.limit_in_bytes is ${mem}`);
    if (read(dirs.pids, 'pids.max') !== String(limits.pids)) fail(`pids.max is ${read(dirs.pids, 'pids.max')}`);
    if (Number(read(dirs.cpu, 'cpu.cfs_quota_us')) <= 0) fail('cpu.cfs_quota_us is unlimited');
  }

  private handle(dirs: Record<Controller, string>): AppliedLimits {
    const readNum = (dir: string, file: string, key?: string): number => {
      try {
        const text = readFileSync(join(dir, file), 'utf8');
        if (!key) return Number(text.trim());
        const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(text);
        return m ? Number(m[1]) : 0;
      } catch {
        return 0;
      }
    };
    return {
      paths: Object.values(dirs),
      usage: (): StepUsage => ({
        peakMemoryBytes: readNum(dirs.memory, 'memory.max_usage_in_bytes'),
        cpuSeconds: readNum(dirs.cpuacct, 'cpuacct.usage') / 1e9,
        oomKills: readNum(dirs.memory, 'memory.oom_control', 'oom_kill'),
        pidsLimitHits: readNum(dirs.pids, 'pids.events', 'max'),
      }),
      remove: async () => {
        await removeDirs(Object.values(dirs));
        this.dropOwnSubtree();
      },
    };
  }

  /**
   * A root runner started from another cgroup than setup's (a login shell, a systemd unit) makes the
   * subtree itself, under its own cgroup (apply's mkdir). Such a subtree (owned by root, not by the
   * runner user as setup's is) goes again once it is empty, so a session's scope or a unit's cgroup
   * can be removed by systemd after this process ends. A subtree still holding another step stays.
   */
  private dropOwnSubtree(): void {
    for (const base of Object.values(this.bases)) {
      try {
        if (statSync(base).uid !== 0) continue;
        rmdirSync(base);
      } catch {
        // Not empty (another step of this or another runner), or gone already.
      }
    }
  }

  async reap(isAlive: (owner: string, name?: string) => boolean): Promise<string[]> {
    const stale: string[] = [];
    for (const base of Object.values(this.bases)) {
      let entries: string[] = [];
      try {
        entries = readdirSync(base, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
      } catch {
        continue;
      }
      for (const name of entries) {
        const owner = name.split('_')[0]!;
        if (!isAlive(owner, name)) stale.push(join(base, name));
      }
    }
    await removeDirs(stale);
    return stale;
  }
}

/** rmdir each cgroup; a cgroup whose last process is still exiting is busy for a moment, so retry briefly. */
async function removeDirs(dirs: string[]): Promise<void> {
  const errors: string[] = [];
  for (const dir of dirs) {
    for (let attempt = 0; ; attempt++) {
      try {
        rmdirSync(dir);
        break;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        if (code === 'EBUSY' && attempt < 50) {
          await sleep(20);
          continue;
        }
        errors.push(`${dir}: ${code}`);
        break;
      }
    }
  }
  if (errors.length) throw new StockadeError('INTERNAL', `could not remove step cgroups: ${errors.join(', ')}`);
}
