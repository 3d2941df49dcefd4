import { coerce, gte } from 'semver';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cgroupV1Subtrees, detectCgroupHost, PodmanEngine } from '../sandbox';
import { baseImageRef } from './base-image';
import { tryExec } from './exec';
import { firstSubuid } from './runner-mode-parts';
import { ACTIONS_USER, INSTALLED_HOOK, RUNNER_INSTALL, socketAnswers } from './setup-runner-mode';
import { DEFAULT_HOOK_SOCKET } from '../hook';
import { resolveHostConfig } from '../host';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  fix?: string;
  /** Warnings do not make doctor fail. */
  warnOnly?: boolean;
}

/** `v` (a tool's own version string, loosely: `5.10`, `1.1.5+dfsg`) is at least `min`. */
function versionAtLeast(v: string, min: string): boolean {
  const a = coerce(v);
  return !!a && gte(a, coerce(min)!);
}

/** Every requirement of the host, with ok / missing and the fix. */
export async function doctorChecks(env: NodeJS.ProcessEnv): Promise<Check[]> {
  const checks: Check[] = [];
  const fixSetup = 'stockade setup (as root)';
  const podman = await tryExec('podman', ['--version']);
  checks.push({ name: 'podman', ok: podman.code === 0, detail: podman.stdout.trim() || 'not installed', fix: fixSetup });
  const runc = await tryExec('runc', ['--version']);
  const runcVersion = /runc version (\d+\.\d+\.\d+)/.exec(runc.stdout)?.[1] ?? '';
  const deb = await tryExec('dpkg-query', ['-W', '-f', '${Version}', 'runc']);
  checks.push({ name: 'runc', ok: runc.code === 0, detail: runc.code === 0 ? `${runcVersion} (package ${deb.stdout || '?'})` : 'not installed', fix: fixSetup });
  if (runcVersion) {
    checks.push({
      name: 'runc escape fixes',
      ok: versionAtLeast(runcVersion, '1.2.8'),
      warnOnly: true,
      detail: versionAtLeast(runcVersion, '1.2.8')
        ? 'upstream version includes the November 2025 fixes (CVE-2025-31133, -52565, -52881) and CVE-2024-21626'
        : `upstream ${runcVersion} predates the November 2025 fixes (CVE-2025-31133, -52565, -52881; fixed in 1.2.8/1.3.3) and, unless the distribution backported it, CVE-2024-21626 (1.1.12); check the package changelog`,
      fix: 'apt-get install --only-upgrade runc (Debian security updates backport these fixes)',
    });
  }
  const kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  checks.push({ name: 'kernel', ok: versionAtLeast(kernel.split('-')[0]!, '5.10'), detail: kernel, warnOnly: true, fix: 'keep the kernel on a supported stable series with current page-cache fixes' });
  const h = resolveHostConfig(env, false);
  checks.push({ name: 'runner user', ok: h.runnerUid >= 0, detail: h.runnerUid >= 0 ? `${h.runnerUser} (uid ${h.runnerUid})` : `${h.runnerUser} missing`, fix: fixSetup });
  const sub = existsSync('/etc/subuid') && readFileSync('/etc/subuid', 'utf8').includes(`${h.runnerUser}:`);
  checks.push({ name: 'subordinate ids', ok: sub, detail: sub ? 'present' : 'missing in /etc/subuid', fix: fixSetup });
  checks.push({ name: 'job disks', ok: existsSync('/dev/loop-control') && ['/usr/sbin/mkfs.ext4', '/sbin/mkfs.ext4'].some((p) => existsSync(p)), detail: 'loop devices and mkfs.ext4 for each job\'s own disk (--disk)', fix: 'load the loop module (modprobe loop) and install e2fsprogs, or run with --disk off' });
  checks.push({ name: 'runtime dir', ok: existsSync(h.runtimeDir) && statSync(h.runtimeDir).uid === h.runnerUid, detail: h.runtimeDir, fix: fixSetup });
  let tunOk = false;
  try {
    const st = statSync('/dev/net/tun');
    tunOk = (st.mode & 0o006) === 0o006 || (st.gid === h.runnerGid && (st.mode & 0o060) === 0o060);
  } catch {
    tunOk = false;
  }
  checks.push({ name: '/dev/net/tun', ok: tunOk, detail: tunOk ? 'usable by the runner user' : 'not usable by the runner user (rootless networking for image builds fails)', fix: fixSetup });
  const cg = detectCgroupHost();
  let cgOk = true;
  let cgDetail = 'cgroup v2: Podman applies limits (delegation required)';
  if (cg.mode === 'v1') {
    const dirs = Object.values(cgroupV1Subtrees(cg));
    try {
      dirs.forEach((d) => accessSync(d, constants.W_OK));
      cgDetail = `cgroup v1/hybrid: step cgroups under ${dirs.join(', ')}`;
    } catch {
      // Root makes the subtree under whatever cgroup it was started in (a login shell, a systemd unit)
      // when a step needs it: what matters is that this process's own cgroups take a child.
      const parents = dirs.map((d) => dirname(d));
      const probe = parents.map((p) => join(p, `stockade-doctor-${process.pid}`));
      let made = 0;
      try {
        if (process.getuid?.() !== 0) throw new Error('not root');
        for (const p of probe) {
          mkdirSync(p);
          made++;
        }
        cgDetail = `cgroup v1/hybrid: step cgroups made as needed under this process's own cgroups (${parents.join(', ')})`;
      } catch {
        cgOk = false;
        cgDetail = `cgroup v1/hybrid: subtree missing or not writable: ${dirs.join(', ')}`;
      } finally {
        for (const p of probe.slice(0, made)) rmdirSync(p);
      }
    }
  }
  checks.push({ name: 'cgroup limits', ok: cgOk, detail: cgDetail, fix: fixSetup });
  const engine = new PodmanEngine(h.socketPath);
  const up = await engine.ping().then(() => true, () => false);
  checks.push({ name: 'podman API socket', ok: up, detail: h.socketPath, fix: fixSetup });
  if (up && h.runnerUid >= 0) {
    const ref = baseImageRef(h);
    checks.push({ name: 'base image', ok: await engine.imageExists(ref), detail: ref, fix: 'stockade setup (builds it)' });
  }
  const profile = join(h.packageRoot, 'seccomp/stockade.json');
  checks.push({ name: 'seccomp profile', ok: existsSync(profile), detail: profile, fix: 'reinstall stockade' });
  // Runner mode (GitHub's official runner with Stockade as its container hook): optional, so warnings.
  const fixRunner = 'stockade setup --runner (as root)';
  const built = join(h.packageRoot, 'dist/hook.js');
  const hookOk = existsSync(INSTALLED_HOOK) && existsSync(built) && readFileSync(INSTALLED_HOOK, 'utf8') === readFileSync(built, 'utf8');
  checks.push({ name: 'runner mode: hook', ok: hookOk, warnOnly: true, detail: hookOk ? `${INSTALLED_HOOK} (ACTIONS_RUNNER_CONTAINER_HOOKS)` : `${INSTALLED_HOOK} missing or older than ${built}`, fix: fixRunner });
  const want = existsSync('/etc/subuid') ? firstSubuid(h.runnerUser, readFileSync('/etc/subuid', 'utf8')) : undefined;
  const got = await tryExec('id', ['-u', ACTIONS_USER]);
  const userOk = got.code === 0 && Number(got.stdout.trim()) === want;
  checks.push({ name: 'runner mode: runner user', ok: userOk, warnOnly: true, detail: userOk ? `${ACTIONS_USER} (uid ${want}, the uid a step's root is under keep-id)` : `${ACTIONS_USER} ${got.code === 0 ? `has uid ${got.stdout.trim()}, not ${want}` : 'missing'}`, fix: fixRunner });
  const listener = join(RUNNER_INSTALL, 'bin/Runner.Listener');
  const version = existsSync(listener) ? await tryExec(listener, ['--version']) : undefined;
  const v = /^\d+\.\d+\.\d+/.exec(version?.stdout.trim() ?? '')?.[0];
  // Container hooks: runner 2.300 and later; the JIT configuration: 2.304 and later.
  checks.push({ name: 'runner mode: official runner', ok: !!v && versionAtLeast(v, '2.304.0'), warnOnly: true, detail: v ? `${RUNNER_INSTALL} ${v}${versionAtLeast(v, '2.304.0') ? '' : ' (older than 2.304.0: no JIT runners)'}` : `not installed at ${RUNNER_INSTALL} (needed by serve --mode runner; a runner started by hand can live anywhere)`, fix: 'stockade setup --runner actions-runner-linux-x64-<version>.tar.gz' });
  const brokerUp = await socketAnswers(DEFAULT_HOOK_SOCKET);
  checks.push({ name: 'runner mode: hook broker', ok: brokerUp, warnOnly: true, detail: `${DEFAULT_HOOK_SOCKET} ${brokerUp ? 'answers' : 'does not answer'}`, fix: fixRunner });
  return checks;
}

export function formatChecks(checks: Check[]): string {
  return checks.map((c) => `${c.ok ? 'ok     ' : c.warnOnly ? 'warning' : 'missing'}  ${c.name}: ${c.detail}${c.ok ? '' : `\n         fix: ${c.fix ?? '-'}`}`).join('\n');
}
