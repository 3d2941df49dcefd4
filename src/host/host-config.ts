import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { StockadeError } from '../common';

export interface HostConfig {
  /** Unprivileged user that owns the rootless Podman service. @default 'stockade' */
  runnerUser: string;
  runnerUid: number;
  runnerGid: number;
  runnerHome: string;
  /** @default /run/user/<uid>/podman.sock */
  socketPath: string;
  runtimeDir: string;
  /** @default /var/lib/stockade */
  stateDir: string;
  /** Where seccomp/ and runner-images/ live (the package root). */
  packageRoot: string;
}

export function findPackageRoot(start: string = __dirname): string {
  for (let dir = start; dir !== dirname(dir); dir = dirname(dir)) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj) && (JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === 'stockade') return dir;
  }
  throw new StockadeError('INTERNAL', `cannot find Stockade's package root above ${start}`);
}

export function lookupUser(name: string, passwd: string = readFileSync('/etc/passwd', 'utf8')): { uid: number; gid: number; home: string } | undefined {
  const line = passwd.split('\n').find((l) => l.startsWith(`${name}:`));
  if (!line) return undefined;
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]), home: f[5] ?? `/home/${name}` };
}

export function resolveHostConfig(env: NodeJS.ProcessEnv, requireUser = true): HostConfig {
  const runnerUser = env.STOCKADE_USER ?? 'stockade';
  const u = lookupUser(runnerUser);
  if (!u && requireUser) {
    throw new StockadeError('HOST_NOT_READY', `runner user '${runnerUser}' does not exist`, { hint: 'run `stockade setup` as root' });
  }
  const uid = u?.uid ?? -1;
  const runtimeDir = `/run/user/${uid}`;
  return {
    runnerUser,
    runnerUid: uid,
    runnerGid: u?.gid ?? -1,
    runnerHome: u?.home ?? `/home/${runnerUser}`,
    socketPath: env.STOCKADE_PODMAN_SOCKET ?? `${runtimeDir}/podman.sock`,
    runtimeDir,
    stateDir: env.STOCKADE_STATE_DIR ?? '/var/lib/stockade',
    packageRoot: findPackageRoot(),
  };
}
