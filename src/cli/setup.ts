import { DEFAULT_CONFIG_FILE, installSystemd } from './systemd';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { StockadeError } from '../common';
import { cgroupV1Subtrees, detectCgroupHost, PodmanEngine } from '../sandbox';
import { ensureBaseImage } from './base-image';
import { ensureRunnerMode } from './setup-runner-mode';
import { asRunner, exec } from './exec';
import { resolveHostConfig, type HostConfig } from '../host';

// e2fsprogs (mkfs.ext4) and util-linux (losetup, nsenter) make each job's own disk.
export const PACKAGES = ['podman', 'runc', 'uidmap', 'slirp4netns', 'fuse-overlayfs', 'debootstrap', 'catatonit', 'iproute2', 'e2fsprogs', 'util-linux'];
const COMMANDS = ['podman', 'runc', 'newuidmap', 'slirp4netns', 'fuse-overlayfs', 'debootstrap', 'mkfs.ext4', 'losetup', 'nsenter'];

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

function writeIfChanged(path: string, content: string, uid: number, gid: number): boolean {
  if (existsSync(path) && readFileSync(path, 'utf8') === content) return false;
  writeFileSync(path, content);
  chownSync(path, uid, gid);
  return true;
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
      '# Steps see only their job\'s own names: none of the host\'s /etc/hosts entries, no host.containers.internal.',
      'base_hosts_file = "none"',
      'host_containers_internal_ip = "none"',
      '',
    ].join('\n'),
    storage: ['# Written by stockade setup.', '[storage]', 'driver = "overlay"', ''].join('\n'),
  };
}

/** Writes the runner's files; true when Podman's configuration changed (a running service must be restarted to read it). */
function ensureRunnerFiles(h: HostConfig, mode: 'v1' | 'v2'): boolean {
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
  const changed = writeIfChanged(join(conf, 'containers.conf'), c.containers, uid, gid);
  const storageChanged = writeIfChanged(join(conf, 'storage.conf'), c.storage, uid, gid);
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
  return changed || storageChanged;
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

/** Where setup records the PID of the API service it started (the only process it ever stops). */
const servicePidFile = (h: HostConfig) => join(h.runtimeDir, 'stockade-podman-service.pid');

/** Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, session, …]. */
function procStat(pid: number): string[] | undefined {
  try {
    const t = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return t.slice(t.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/**
 * Stops the API service this setup started, so it rereads its configuration: the recorded PID is
 * runuser's; the service is the session its child started with setsid (podman re-executes itself
 * into the user namespace inside that session). Only processes of that session, owned by the
 * runner user, are signalled, by PID.
 */
async function stopOwnService(h: HostConfig, log: Log): Promise<void> {
  let pid: number;
  try {
    pid = Number(readFileSync(servicePidFile(h), 'utf8').split('\n')[0]!.trim());
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 1) return;
  const sessions = new Set<number>();
  const members: number[] = [];
  const all = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number);
  for (const p of all) if (procStat(p)?.[1] === String(pid)) sessions.add(Number(procStat(p)![3]));
  for (const p of all) {
    const st = procStat(p);
    if (!st || !sessions.has(Number(st[3]))) continue;
    if (statSync(`/proc/${p}`).uid !== h.runnerUid) continue;
    if (!readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('system\0service')) continue;
    members.push(p);
  }
  if (!members.length) return;
  log(`restarting the Podman API service (pids ${members.join(', ')}) to read its new configuration`);
  for (const p of members) process.kill(p, 'SIGTERM');
  for (let i = 0; i < 100 && members.some((p) => procStat(p) && procStat(p)![0] !== 'Z'); i++) await sleep(100);
}

/** The command line of the API service; a service started with another one (an older setup) is restarted. */
const serviceArgv = (h: HostConfig) => ['setsid', 'catatonit', '--', 'podman', 'system', 'service', '--time', '0', `unix://${h.socketPath}`];

/** Where the API service's own output goes: the first thing to read when it does not answer. */
const serviceLogFile = (h: HostConfig) => join(h.runtimeDir, 'stockade-podman-service.log');

/** Starts the service and waits for it; 'exited' when it ended first, with its output. */
async function startService(h: HostConfig, engine: PodmanEngine, waitMs: number): Promise<'up' | { exited: boolean; output: string }> {
  const { spawn } = await import('node:child_process');
  const { openSync, closeSync } = await import('node:fs');
  const logFd = openSync(serviceLogFile(h), 'w', 0o644);
  // Under catatonit, which is a child subreaper when it is not PID 1: processes Podman orphans (conmon's
  // double fork, exited helpers) are reaped by it, not left as zombies of a PID 1 that never reaps.
  const [cmd, args] = asRunner(h, serviceArgv(h));
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', logFd, logFd], cwd: '/' });
  closeSync(logFd);
  let exited = false;
  child.on('exit', () => (exited = true));
  child.on('error', () => (exited = true));
  child.unref();
  if (child.pid) writeFileSync(servicePidFile(h), `${child.pid}\n${serviceArgv(h).join(' ')}\n`, { mode: 0o644 });
  for (let waited = 0; waited < waitMs && !exited; waited += 100) {
    await sleep(100);
    if (await engine.ping().then(() => true, () => false)) return 'up';
  }
  const output = existsSync(serviceLogFile(h)) ? readFileSync(serviceLogFile(h), 'utf8').slice(-2000) : '';
  return { exited, output };
}

async function ensureService(h: HostConfig, log: Log, configChanged = false): Promise<void> {
  const engine = new PodmanEngine(h.socketPath);
  const recorded = existsSync(servicePidFile(h)) ? readFileSync(servicePidFile(h), 'utf8').split('\n')[1] ?? '' : '';
  if (configChanged || (recorded && recorded !== serviceArgv(h).join(' '))) await stopOwnService(h, log);
  if (await engine.ping().then(() => true, () => false)) return;
  log(`starting rootless Podman API service at ${h.socketPath}`);
  let r = await startService(h, engine, 60_000);
  const migrations: string[] = [];
  for (let attempt = 0; attempt < 2 && r !== 'up' && r.exited && /podman system migrate/.test(r.output); attempt++) {
    // The machine stopped with containers recorded as running (the netns keeper does run between jobs):
    // their processes are gone, so Podman cannot join their user namespace. No service answers, so no
    // job is running; `podman system migrate` marks them stopped and starts a fresh pause process. It
    // can report "container not running" for such a container and still have done its work: the
    // service's next start decides.
    log('the runner user\'s Podman state names processes that no longer exist (the machine restarted): podman system migrate');
    const [cmd, args] = asRunner(h, ['podman', 'system', 'migrate']);
    const m = await exec(cmd, args, { cwd: '/' });
    if (m.code !== 0) migrations.push(`podman system migrate exited ${m.code}: ${m.stderr.trim().slice(-500)}`);
    r = await startService(h, engine, 60_000);
  }
  if (r === 'up') return;
  throw new StockadeError(
    'HOST_NOT_READY',
    `Podman API service ${r.exited ? 'exited' : 'did not answer within 60 s'} at ${h.socketPath}; its output (${serviceLogFile(h)}):\n${r.output.trim() || '(none)'}${migrations.map((m) => `\n${m}`).join('')}`,
  );
}

/**
 * Starts the runner user's Podman API service again when it does not answer (the server's watchdog,
 * outside systemd; under systemd the unit restarts it). Root only.
 */
export async function startPodmanService(h: HostConfig, log: Log): Promise<void> {
  await ensureService(h, log);
}

/** Idempotent host set-up; a second run only checks. Root only. */
export async function setup(env: NodeJS.ProcessEnv, log: Log, opts: { images: boolean; runner?: boolean; runnerTarball?: string; systemd?: boolean; configFile?: string }): Promise<HostConfig> {
  if (process.getuid?.() !== 0) throw new StockadeError('USAGE', 'stockade setup must run as root', { hint: 'sudo stockade setup' });
  await ensurePackages(log);
  await ensureUser(env.STOCKADE_USER ?? 'stockade', log);
  const h = resolveHostConfig(env);
  const mode = detectCgroupHost().mode;
  const configChanged = ensureRunnerFiles(h, mode);
  ensureCgroupSubtree(h);
  await ensureService(h, log, configChanged);
  if (opts.images) {
    const engine = new PodmanEngine(h.socketPath);
    await ensureBaseImage(h, log, (ref) => engine.imageExists(ref));
  }
  if (opts.runner) await ensureRunnerMode(h, log, opts.runnerTarball);
  if (opts.systemd) {
    const done = await installSystemd(h, { configFile: opts.configFile ?? DEFAULT_CONFIG_FILE, node: process.execPath, cli: join(h.packageRoot, 'dist/cli.js'), runnerMode: !!opts.runner }, log, () => stopOwnService(h, log));
    for (const d of done) log(d);
  }
  return h;
}
