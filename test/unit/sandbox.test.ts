import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { transient, isProcessRace } from '../../src/sandbox/podman-engine';
import { allowedWithoutCapabilities, type ProfileRule } from '../../src/sandbox/seccomp-profile';
import { parseNoRoutes } from '../../src/sandbox/netns-counters';
import { buildSeccompProfile, parseSeccompPolicy, allowedSyscalls, toCreateOptions, validateStepSpec, OutputLines, FrameDecoder, DEFAULT_LIMITS, managedLabels, type StepSpec, type OutputLine } from '../../src/sandbox';
import { resolveWorkingDirectory } from '../../src/runner/step-env';

const root = process.cwd();

test('the committed seccomp profile is generated from policy.yml', () => {
  const built = JSON.stringify(buildSeccompProfile(parseSeccompPolicy(readFileSync(join(root, 'seccomp/policy.yml'), 'utf8'))), null, 2) + '\n';
  assert.equal(readFileSync(join(root, 'seccomp/stockade.json'), 'utf8'), built, 'run npm run seccomp:gen');
});

test('the profile denies what the issue requires and allows no namespace syscall', () => {
  const p = buildSeccompProfile(parseSeccompPolicy(readFileSync(join(root, 'seccomp/policy.yml'), 'utf8')));
  const allowed = new Set(allowedSyscalls(p));
  for (const n of ['mount', 'fsopen', 'unshare', 'setns', 'keyctl', 'bpf', 'perf_event_open', 'kexec_load', 'init_module', 'open_by_handle_at', 'userfaultfd', 'io_uring_setup', 'reboot', 'swapon', 'clock_settime', 'pidfd_getfd', 'clone3']) {
    assert.ok(!allowed.has(n), `${n} must not be allowed`);
  }
  assert.equal(p.defaultErrnoRet, 38);
  assert.deepEqual(p.architectures, ['SCMP_ARCH_X86_64']);
  const clone3 = p.syscalls.find((r) => r.names.includes('clone3'));
  assert.equal(clone3?.errnoRet, 38);
  assert.ok(allowed.has('ptrace') && allowed.has('clone'));
});

function spec(over: Partial<StepSpec> = {}): StepSpec {
  const dir = mkdtempSync(join(tmpdir(), 'stk-'));
  writeFileSync(join(dir, 'p.json'), '{}');
  return {
    name: 'stockade-test-s0',
    image: 'img',
    argv: ['bash', '/x.sh'],
    env: { A: '1' },
    workdir: '/github/workspace',
    mounts: [{ volume: 'stockade-x-workspace', target: '/github/workspace' }],
    limits: DEFAULT_LIMITS,
    network: { mode: 'none' },
    security: { seccompProfilePath: join(dir, 'p.json'), readOnlyRoot: true },
    labels: managedLabels('1.2'),
    ...over,
  };
}

test('the create body drops every capability, sets no-new-privileges, our seccomp profile, read-only root, no network', () => {
  const s = spec();
  const o = toCreateOptions(s, 'v1', { nofileHard: 20000, nprocHard: 90000 });
  const hc = o.HostConfig;
  assert.deepEqual(hc.CapDrop, ['ALL']);
  assert.deepEqual(hc.SecurityOpt, ['no-new-privileges', `seccomp=${s.security.seccompProfilePath}`]);
  assert.equal(hc.ReadonlyRootfs, true);
  assert.equal(hc.NetworkMode, 'none');
  assert.equal(hc.Privileged, false);
  assert.equal(o.Tty, false);
  assert.deepEqual((hc.Ulimits as Array<{ Name: string; Hard: number }>).find((u) => u.Name === 'core')?.Hard, 0);
  assert.equal((hc.Ulimits as Array<{ Name: string; Hard: number }>).find((u) => u.Name === 'nofile')?.Hard, 16384);
  assert.equal(hc.Memory, undefined, 'v1: limits go to our cgroups');
  assert.equal(toCreateOptions(s, 'v2', { nofileHard: 20000, nprocHard: 90000 }).HostConfig.PidsLimit, DEFAULT_LIMITS.pids);
});

test('specs that weaken the sandbox are rejected before anything starts', () => {
  assert.doesNotThrow(() => validateStepSpec(spec()));
  assert.throws(() => validateStepSpec(spec({ mounts: [{ volume: '/etc', target: '/x' }] })), /host paths/);
  assert.throws(() => validateStepSpec(spec({ mounts: [{ volume: 'v', target: '/proc/x' }] })), /system path/);
  assert.throws(() => validateStepSpec(spec({ limits: { ...DEFAULT_LIMITS, pids: 0 } })), /pids/);
  assert.throws(() => validateStepSpec(spec({ security: { seccompProfilePath: '/nonexistent', readOnlyRoot: true } })), /seccomp/);
  assert.throws(() => validateStepSpec(spec({ labels: {} })), /labels/);
});

test('output is split into bounded lines and cut at the byte limit', () => {
  const lines: OutputLine[] = [];
  const o = new OutputLines({ maxBytes: 100, maxLineBytes: 10 }, (l) => lines.push(l));
  let overflow = 0;
  o.onOverflow = () => overflow++;
  o.push('stdout', Buffer.from('short\nthis line is far too long\npart'));
  o.push('stdout', Buffer.from('ial\n'));
  assert.deepEqual(lines.map((l) => l.text.split(' …')[0]), ['short', 'this line ', 'partial']);
  o.push('stderr', Buffer.alloc(200, 97));
  assert.equal(overflow, 1);
  assert.match(lines.at(-1)!.text, /output limit of 100 bytes/);
});

test('docker stream frames are decoded across chunk boundaries', () => {
  const got: string[] = [];
  const d = new FrameDecoder((s, p) => got.push(`${s}:${p.toString()}`));
  const frame = (t: number, s: string) => Buffer.concat([Buffer.from([t, 0, 0, 0, 0, 0, 0, s.length]), Buffer.from(s)]);
  const all = Buffer.concat([frame(1, 'out'), frame(2, 'err')]);
  d.push(all.subarray(0, 5));
  d.push(all.subarray(5, 13));
  d.push(all.subarray(13));
  assert.deepEqual(got, ['stdout:out', 'stderr:err']);
});

test('working-directory may not leave the job volumes: no climbing out, no /proc, /dev or image directories', () => {
  assert.deepEqual(resolveWorkingDirectory('sub/dir'), { path: '/github/workspace/sub/dir' });
  assert.ok('error' in resolveWorkingDirectory('../../..'));
  for (const bad of ['/opt', '/proc/self/cwd', '/proc/1/root', '/dev/shm', '/etc', '/github/workspace/../../proc', '/', '/github/workspacex']) assert.ok('error' in resolveWorkingDirectory(bad), bad);
  for (const ok of ['/github/workspace', '/github/workspace/a', '/__w/_temp/tools', '/github/home', '/__t/node']) assert.ok('path' in resolveWorkingDirectory(ok), ok);
});

test('Podman 4.3 "read /proc/N/cgroup: no such process" answers are retried; other errors are not', async () => {
  const race = Object.assign(new Error('(HTTP code 500) server error - read /proc/16273/cgroup: no such process'), { statusCode: 500 });
  let calls = 0;
  assert.equal(await transient(async () => (++calls < 3 ? Promise.reject(race) : 'listed')), 'listed');
  assert.equal(calls, 3);
  const other = Object.assign(new Error('(HTTP code 500) server error - no such image'), { statusCode: 500 });
  calls = 0;
  await assert.rejects(transient(async () => (calls++, Promise.reject(other))), /no such image/);
  assert.equal(calls, 1);
  calls = 0;
  await assert.rejects(transient(async () => (calls++, Promise.reject(race)), 4), /no such process/);
  assert.equal(calls, 4);
  assert.equal(isProcessRace(Object.assign(new Error('read /proc/1/cgroup: no such process'), { statusCode: 404 })), false);
});

test('our profile allows fewer x86_64 syscalls to a capability-less container than Podman\'s and Docker\'s defaults, and none of the dangerous ones they allow', () => {
  const known = new Set(readFileSync(join(root, 'seccomp/reference/x86_64-syscalls.txt'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#')));
  const load = (p: string) => allowedWithoutCapabilities(JSON.parse(readFileSync(join(root, p), 'utf8')) as { syscalls: ProfileRule[] }, known);
  const ours = load('seccomp/stockade.json');
  const podman = load('seccomp/reference/podman-default.json');
  const docker = load('seccomp/reference/docker-default.json');
  assert.equal(ours.size, 286, 'update README and docs when the profile changes (npx tsx scripts/seccomp-compare.ts)');
  assert.equal(podman.size, 311);
  assert.equal(docker.size, 297);
  for (const n of ['mount', 'unshare', 'setns', 'keyctl', 'pivot_root', 'umount2', 'fsopen', 'io_uring_setup', 'reboot', 'syslog', 'clone3']) {
    assert.ok(!ours.has(n), `${n} must stay denied`);
  }
  // What we allow beyond them, with the reason: kcmp (checkpoint tools, fd comparison only
  // within the caller's permission), futex_waitv, io_pgetevents, vmsplice. The NUMA calls are denied, get_mempolicy included.
  assert.deepEqual([...ours].filter((n) => !podman.has(n) || !docker.has(n)).sort(), ['futex_waitv', 'io_pgetevents', 'kcmp', 'vmsplice']);
  for (const n of ['get_mempolicy', 'set_mempolicy', 'mbind', 'migrate_pages', 'move_pages']) assert.ok(!ours.has(n), `${n} must be denied`);
});

test('no-route counters are read from /proc/net/snmp and snmp6 as the kernel writes them', () => {
  const snmp = readFileSync('/proc/net/snmp', 'utf8');
  const v6 = readFileSync('/proc/net/snmp6', 'utf8');
  const n = parseNoRoutes(`${snmp}${v6}`);
  assert.ok(typeof n === 'number' && n >= 0, String(n));
  const sample = 'Ip: Forwarding DefaultTTL InReceives OutNoRoutes\nIp: 1 64 10 7\nIcmp: InMsgs\nIcmp: 0\nIp6OutNoRoutes                  \t3\n';
  assert.equal(parseNoRoutes(sample), 10);
  assert.equal(parseNoRoutes('Icmp: InMsgs\nIcmp: 0\n'), undefined);
});
