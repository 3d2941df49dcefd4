import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CgroupHost {
  /** 'v1' covers hybrid hosts: the limit controllers live in v1 hierarchies. */
  mode: 'v1' | 'v2';
  root: string;
  /** v1: controller → { mount directory, the cgroup this process is in }. v2: key '' only. */
  own: Record<string, { mount: string; path: string }>;
}

/** Reads which cgroup this process runs in, controller by controller. */
export function detectCgroupHost(selfCgroup: string = readFileSync('/proc/self/cgroup', 'utf8'), root = '/sys/fs/cgroup'): CgroupHost {
  const own: CgroupHost['own'] = {};
  let unified: string | undefined;
  for (const line of selfCgroup.trim().split('\n')) {
    const [, controllers = '', path = '/'] = line.split(':');
    if (controllers === '') {
      unified = path;
      continue;
    }
    for (const c of controllers.split(',')) {
      const joined = join(root, controllers);
      own[c] = { mount: existsSync(joined) ? joined : join(root, c), path };
    }
  }
  if (own.memory && own.pids) return { mode: 'v1', root, own };
  return { mode: 'v2', root, own: { '': { mount: root, path: unified ?? '/' } } };
}
