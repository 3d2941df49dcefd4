import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { StockadeError } from '../common';
import { cgroupV1Subtrees, detectCgroupHost, PodmanEngine } from '../sandbox';
import { ensureBaseImage } from './base-image';
import { asRunner, exec } from './exec';
import { resolveHostConfig, type HostConfig } from '../host';

export const PACKAGES = ['podman', 'runc', 'uidmap', 'slirp4netns', 'fuse-overlayfs', 'debootstrap', 'catatonit', 'iproute2'];
const COMMANDS = ['podman', 'runc', 'newuidmap', 'slirp4netns', 'fuse-overlayfs', 'debootstrap'];

type Log = (m: string) => void;

async function ensurePackages(log: Log): Promise<void> {
  const missing = (await Promise.all(COMMANDS.map(async (c) => ((await exec('sh', ['-c', `command -v ${c}`])).code === 0 ? null : c)))).filter(Boolean);
  if (!missing.length && existsSync('/usr/libexec/podman/catatonit')) return;
  log(`installing ${PACKAGES.join(' ')} (missing: ${missing.join(', ') || 'catatonit'})`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const upd = await exec('apt-get', ['update', '-qq'], { env });
  if (upd.code !== 0) throw new StockadeError('HOST_NOT_READY', `apt-get update failed: ${upd.stderr.slice(-1000)}`);
  const inst = await exec('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...PACKAGES], { env });
  if (inst.code !== 0) throw new StockadeError('HOST_NOT_READY', `apt-get install failed: ${inst.stderr.slice(-1000)}`);
}

async function ensureUser(name: string, log: Log): Promise<void> {
  if ((await exec('id', ['-u', name])).code === 0) return;
  log(`creating runner user ${name}`);
  const r = await exec('useradd', ['--create-home', '--shell', '/usr/sbin/nologin', name]);
  if (r.code !== 0) throw new StockadeError('HOST_NOT_READY', `useradd failed: ${r.stderr}`);
}

function writeIfChanged(path: string, content: string, uid: number, gid: number): void {
  if (existsSync(path) && readFileSync(path, 'utf8') === content) return;
  writeFileSync(path, content);
  chownSync(path, uid, gid);
}

/** containers.conf and storage.conf that fit this host: runc on v1/hybrid cgroups (crun fails there), overlay storage. */
export function podmanConfig(cgroupMode: 'v1' | 'v2'): { containers: string; storage: string } {
  return {
    containers: [
      '# Written by stockade setup.',
      '[engine]',
      `runtime = "${cgroupMode === 'v1' ? 'runc' : 'crun'}"`,
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      '',
      '[containers]',
      'log_driver = "k8s-file"',
      'log_size_max = 1048576',
      '',
    ].join('\n'),
    storage: ['# Written by stockade setup.', '[storage]', 'driver = "overlay"', ''].join('\n'),
  };
}

function ensureRunnerFiles(h: HostConfig, mode: 'v1' | 'v2'): void {
  const { runnerUid: uid, runnerGid: gid } = h;
  const subids = (f: string) => readFileSync(f, 'utf8').split('\n').some((l) => l.startsWith(`${h.runnerUser}:`));
  if (!subids('/etc/subuid') || !subids('/etc/subgid')) {
    throw new StockadeError('HOST_NOT_READY', `${h.runnerUser} has no subordinate ids in /etc/subuid or /etc/subgid`, { hint: `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${h.runnerUser}` });
  }
  mkdirSync(h.runtimeDir, { recursive: true, mode: 0o700 });
  chownSync(h.runtimeDir, uid, gid);
  chmodSync(h.runtimeDir, 0o700);
  const conf = join(h.runnerHome, '.config/containers');
  for (const d of [join(h.runnerHome, '.config'), conf]) {
    mkdirSync(d, { recursive: true });
    chownSync(d, uid, gid);
  }
  const c = podmanConfig(mode);
  writeIfChanged(join(conf, 'containers.conf'), c.containers, uid, gid);
  writeIfChanged(join(conf, 'storage.conf'), c.storage, uid, gid);
  // Rootless networking (slirp4netns, used by image builds) needs /dev/net/tun; it is 0600 root here.
  if (existsSync('/dev/net/tun')) {
    const st = statSync('/dev/net/tun');
    if (st.gid !== gid || (st.mode & 0o060) !== 0o060) {
      chownSync('/dev/net/tun', 0, gid);
      chmodSync('/dev/net/tun', 0o660);
    }
  }
  mkdirSync(h.stateDir, { recursive: true, mode: 0o755 });
  chmodSync(h.stateDir, 0o755);
}

/** Creates the cgroup subtree under this process's own cgroup, per controller, owned by the runner user. */
function ensureCgroupSubtree(h: HostConfig): string[] {
  const cg = detectCgroupHost();
  if (cg.mode !== 'v1') return [];
  const dirs = Object.values(cgroupV1Subtrees(cg));
  for (const d of dirs) {
    mkdirSync(d, { recursive: true });
    for (const f of ['', 'cgroup.procs', 'tasks']) {
      const p = f ? join(d, f) : d;
      if (existsSync(p)) chownSync(p, h.runnerUid, h.runnerGid);
    }
  }
  return dirs;
}

async function ensureService(h: HostConfig, log: Log): Promise<void> {
  const engine = new PodmanEngine(h.socketPath);
  if (await engine.ping().then(() => true, () => false)) return;
  log(`starting rootless Podman API service at ${h.socketPath}`);
  const [cmd, args] = asRunner(h, ['setsid', 'podman', 'system', 'service', '--time', '0', `unix://${h.socketPath}`]);
  const { spawn } = await import('node:child_process');
  const child = spawn(cmd, args, { detached: true, stdio: 'ignore', cwd: '/' });
  child.unref();
  for (let i = 0; i < 100; i++) {
    await sleep(100);
    if (await engine.ping().then(() => true, () => false)) return;
  }
  throw new StockadeError('HOST_NOT_READY', `Podman API service did not answer at ${h.socketPath} within 10 s`);
}

/** Idempotent host set-up; a second run only checks. Root only. */
export async function setup(env: NodeJS.ProcessEnv, log: Log, opts: { images: boolean }): Promise<HostConfig> {
  if (process.getuid?.() !== 0) throw new StockadeError('USAGE', 'stockade setup must run as root', { hint: 'sudo stockade setup' });
  await ensurePackages(log);
  await ensureUser(env.STOCKADE_USER ?? 'stockade', log);
  const h = resolveHostConfig(env);
  const mode = detectCgroupHost().mode;
  ensureRunnerFiles(h, mode);
  ensureCgroupSubtree(h);
  await ensureService(h, log);
  if (opts.images) {
    const engine = new PodmanEngine(h.socketPath);
    await ensureBaseImage(h, log, (ref) => engine.imageExists(ref));
  }
  return h;
}
