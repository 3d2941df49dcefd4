import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { StockadeError, sha256Hex } from '../common';
import { DEFAULT_HOOK_SOCKET } from '../hook';
import type { HostConfig } from '../host';
import { exec } from './exec';
import { firstSubuid } from './runner-mode-parts';

/** The official runner's user and the group that may reach the hook broker. */
export const ACTIONS_USER = 'github-runner';
export const HOOK_GROUP = 'stockade-hook';
/** Where setup installs the hook the runner runs (ACTIONS_RUNNER_CONTAINER_HOOKS). */
export const INSTALLED_HOOK = '/opt/stockade/hook.js';

type Log = (m: string) => void;

/**
 * Runner mode on this host: the official runner runs as `github-runner`, whose uid and gid are the
 * Podman user's first subordinate ids, so a step container's root (Podman's keep-id mapping) is the
 * runner's user on the host: what a step writes in the runner's work directory belongs to the runner,
 * and the runner's files are the step's, with no ACL or chown between them. That user owns neither
 * Podman's storage nor the server's state; it may reach only the hook broker's socket (its group).
 */
/** Where `setup --runner TARBALL` installs the official runner. */
export const RUNNER_INSTALL = `/home/${ACTIONS_USER}/actions-runner`;

export async function ensureRunnerMode(h: HostConfig, log: Log, tarball?: string): Promise<{ uid: number }> {
  const uid = firstSubuid(h.runnerUser, readFileSync('/etc/subuid', 'utf8'));
  const gid = firstSubuid(h.runnerUser, readFileSync('/etc/subgid', 'utf8'));
  if (uid === undefined || gid === undefined) throw new StockadeError('HOST_NOT_READY', `${h.runnerUser} has no subordinate ids`);
  if ((await exec('getent', ['group', HOOK_GROUP])).code !== 0) {
    log(`creating group ${HOOK_GROUP} (may connect to the hook broker)`);
    const r = await exec('groupadd', ['--system', HOOK_GROUP]);
    if (r.code !== 0) throw new StockadeError('HOST_NOT_READY', `groupadd ${HOOK_GROUP} failed: ${r.stderr}`);
  }
  const existing = await exec('id', ['-u', ACTIONS_USER]);
  if (existing.code === 0) {
    if (Number(existing.stdout.trim()) !== uid) {
      throw new StockadeError('HOST_NOT_READY', `user ${ACTIONS_USER} has uid ${existing.stdout.trim()}, not ${uid} (the first subordinate uid of ${h.runnerUser})`, { hint: `userdel ${ACTIONS_USER} and run stockade setup --runner again` });
    }
  } else {
    const taken = await exec('getent', ['passwd', String(uid)]);
    if (taken.code === 0) throw new StockadeError('HOST_NOT_READY', `uid ${uid} (the first subordinate uid of ${h.runnerUser}) already belongs to ${taken.stdout.split(':')[0]}`);
    log(`creating user ${ACTIONS_USER} (uid ${uid}, gid ${gid}) for GitHub's runner`);
    if ((await exec('getent', ['group', String(gid)])).code !== 0) {
      const g = await exec('groupadd', ['-g', String(gid), ACTIONS_USER]);
      if (g.code !== 0) throw new StockadeError('HOST_NOT_READY', `groupadd ${ACTIONS_USER} failed: ${g.stderr}`);
    }
    const r = await exec('useradd', ['-u', String(uid), '-g', String(gid), '-G', HOOK_GROUP, '-K', 'SUB_UID_COUNT=0', '-K', 'SUB_GID_COUNT=0', '--create-home', '--shell', '/bin/bash', ACTIONS_USER]);
    if (r.code !== 0) throw new StockadeError('HOST_NOT_READY', `useradd ${ACTIONS_USER} failed: ${r.stderr}`);
  }
  const groups = await exec('id', ['-nG', ACTIONS_USER]);
  if (!groups.stdout.split(/\s+/).includes(HOOK_GROUP)) await exec('usermod', ['-aG', HOOK_GROUP, ACTIONS_USER]);
  mkdirSync('/opt/stockade', { recursive: true, mode: 0o755 });
  chmodSync('/opt/stockade', 0o755);
  const built = join(h.packageRoot, 'dist/hook.js');
  if (!existsSync(built)) throw new StockadeError('HOST_NOT_READY', `${built} is missing`, { hint: 'npm run build' });
  if (!existsSync(INSTALLED_HOOK) || readFileSync(INSTALLED_HOOK, 'utf8') !== readFileSync(built, 'utf8')) {
    copyFileSync(built, INSTALLED_HOOK);
    chmodSync(INSTALLED_HOOK, 0o755);
    log(`installed the container hook at ${INSTALLED_HOOK}`);
  }
  if (tarball) await installRunner(tarball, uid, gid, log);
  await ensureBroker(h, log);
  return { uid };
}

/**
 * Installs the official runner from a tarball the operator downloaded (actions-runner-linux-x64-*.tar.gz;
 * nothing is downloaded here): read by root, extracted by tar running as the runner's user into its
 * own directory, so nothing in the archive can land outside it or belong to anyone else.
 */
async function installRunner(tarball: string, uid: number, gid: number, log: Log): Promise<void> {
  const { lstatSync, createReadStream } = await import('node:fs');
  let st;
  try {
    st = lstatSync(tarball);
  } catch {
    throw new StockadeError('USAGE', `--runner ${tarball}: no such file`, { hint: 'download actions-runner-linux-x64-<version>.tar.gz from github.com/actions/runner/releases' });
  }
  if (!st.isFile()) throw new StockadeError('USAGE', `--runner ${tarball}: not a regular file`);
  // Extracted beside the install and swapped in whole: a bad archive leaves the installed runner as it was.
  const fresh = `${RUNNER_INSTALL}.new-${process.pid}`;
  const { chownSync, renameSync, rmSync } = await import('node:fs');
  rmSync(fresh, { recursive: true, force: true });
  mkdirSync(fresh, { recursive: true, mode: 0o755 });
  chownSync(fresh, uid, gid);
  log(`installing GitHub's runner from ${tarball} into ${RUNNER_INSTALL} (as ${ACTIONS_USER})`);
  const r = await exec('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--init-groups', '--', 'tar', '-xzf', '-', '-C', fresh, '--no-same-owner', '--no-same-permissions'], { input: createReadStream(tarball), cwd: fresh });
  if (r.code !== 0 || !existsSync(join(fresh, 'run.sh'))) {
    rmSync(fresh, { recursive: true, force: true });
    if (r.code !== 0) throw new StockadeError('HOST_NOT_READY', `extracting ${tarball} failed: ${r.stderr.slice(-1000)}`);
    throw new StockadeError('HOST_NOT_READY', `${tarball} holds no run.sh: it is not GitHub's runner`);
  }
  if (existsSync(RUNNER_INSTALL)) renameSync(RUNNER_INSTALL, `${RUNNER_INSTALL}.old-${process.pid}`);
  renameSync(fresh, RUNNER_INSTALL);
  rmSync(`${RUNNER_INSTALL}.old-${process.pid}`, { recursive: true, force: true });
}

/** True when something accepts connections on the socket. */
export function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

const BROKER_PIDFILE = '/run/stockade/hook-broker.pid';

/** The broker setup started, if it still runs: its PID and the hash of the code it runs. */
function ownBroker(): { pid: number; code: string } | undefined {
  try {
    const [pid, code] = readFileSync(BROKER_PIDFILE, 'utf8').split('\n');
    const n = Number(pid);
    if (!Number.isInteger(n) || n <= 1) return undefined;
    if (!readFileSync(`/proc/${n}/cmdline`, 'utf8').includes('hook-broker')) return undefined;
    return { pid: n, code: code ?? '' };
  } catch {
    return undefined;
  }
}

async function ensureBroker(h: HostConfig, log: Log): Promise<void> {
  const cli = join(h.packageRoot, 'dist/cli.js');
  const code = sha256Hex(readFileSync(cli));
  const running = ownBroker();
  if (running && running.code !== code) {
    // A broker of older code: stopped (by its PID, which setup recorded) and started again. Its jobs'
    // containers are reaped by the new one.
    log(`restarting the hook broker (pid ${running.pid}): its code changed`);
    process.kill(running.pid, 'SIGTERM');
    for (let i = 0; i < 100 && existsSync(`/proc/${running.pid}`); i++) await sleep(100);
  }
  if (await socketAnswers(DEFAULT_HOOK_SOCKET)) return;
  log(`starting the hook broker at ${DEFAULT_HOOK_SOCKET}`);
  const { spawn } = await import('node:child_process');
  const { openSync, closeSync } = await import('node:fs');
  mkdirSync('/run/stockade', { recursive: true, mode: 0o750 });
  const logFile = '/run/stockade/hook-broker.log';
  const fd = openSync(logFile, 'a', 0o640);
  const child = spawn(process.execPath, [cli, 'hook-broker', '--group', HOOK_GROUP], { detached: true, stdio: ['ignore', fd, fd], cwd: '/' });
  closeSync(fd);
  child.unref();
  if (child.pid) writeFileSync(BROKER_PIDFILE, `${child.pid}\n${code}\n`, { mode: 0o644 });
  for (let i = 0; i < 300; i++) {
    await sleep(100);
    if (await socketAnswers(DEFAULT_HOOK_SOCKET)) return;
  }
  throw new StockadeError('HOST_NOT_READY', `the hook broker did not answer at ${DEFAULT_HOOK_SOCKET} within 30 s; see ${logFile}`);
}
