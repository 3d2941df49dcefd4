import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { lookupUser } from '../host';
import { PodmanEngine } from '../sandbox';

/** Podman 4.0 is the oldest with the libpod endpoints and netavark the sandbox uses. */
export const MIN_PODMAN = [4, 0] as const;

export interface ActionHost {
  socketPath: string;
  stateDir: string;
}

/** `podman --version` → [major, minor]; throws the exact reason when missing or too old. */
export function checkPodman(): [number, number] {
  const r = spawnSync('podman', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`Podman is not installed on this runner (podman --version: ${r.error?.message ?? r.stderr.trim()}); install podman ${MIN_PODMAN.join('.')} or later, or prepare the machine with \`stockade setup\``);
  const m = /(\d+)\.(\d+)(?:\.\d+)?/.exec(r.stdout);
  if (!m) throw new Error(`cannot read Podman's version from '${r.stdout.trim()}'`);
  const v: [number, number] = [Number(m[1]), Number(m[2])];
  if (v[0] < MIN_PODMAN[0] || (v[0] === MIN_PODMAN[0] && v[1] < MIN_PODMAN[1])) throw new Error(`Podman ${v.join('.')} is too old: the sandbox needs ${MIN_PODMAN.join('.')} or later`);
  return v;
}

async function answers(socketPath: string): Promise<boolean> {
  if (!existsSync(socketPath)) return false;
  return new PodmanEngine(socketPath).ping().then(
    () => true,
    () => false,
  );
}

/**
 * Where the sandbox's Podman API is: STOCKADE_PODMAN_SOCKET; else a machine
 * prepared by `stockade setup` (its runner user's service); else (GitHub-hosted
 * runners) a rootless service of the current user, started here if not running.
 */
export async function actionHost(env: NodeJS.ProcessEnv): Promise<ActionHost> {
  const stateDir = env.STOCKADE_STATE_DIR ?? (env.RUNNER_TEMP ? join(env.RUNNER_TEMP, 'stockade') : join(tmpdir(), 'stockade'));
  if (env.STOCKADE_PODMAN_SOCKET) {
    if (!(await answers(env.STOCKADE_PODMAN_SOCKET))) throw new Error(`STOCKADE_PODMAN_SOCKET ${env.STOCKADE_PODMAN_SOCKET} does not answer`);
    return { socketPath: env.STOCKADE_PODMAN_SOCKET, stateDir: env.STOCKADE_STATE_DIR ?? '/var/lib/stockade' };
  }
  const prepared = lookupUser(env.STOCKADE_USER ?? 'stockade');
  if (prepared && (await answers(`/run/user/${prepared.uid}/podman.sock`))) return { socketPath: `/run/user/${prepared.uid}/podman.sock`, stateDir: env.STOCKADE_STATE_DIR ?? '/var/lib/stockade' };
  checkPodman();
  const runtimeDir = env.XDG_RUNTIME_DIR ?? `/run/user/${process.getuid?.() ?? 0}`;
  const socketPath = join(runtimeDir, 'podman', 'stockade.sock');
  if (await answers(socketPath)) return { socketPath, stateDir };
  mkdirSync(join(runtimeDir, 'podman'), { recursive: true });
  const child = spawn('podman', ['system', 'service', '--time', '0', `unix://${socketPath}`], { detached: true, stdio: 'ignore' });
  child.unref();
  for (let i = 0; i < 100; i++) {
    if (await answers(socketPath)) return { socketPath, stateDir };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the Podman API service did not answer on ${socketPath} within 10 s`);
}
