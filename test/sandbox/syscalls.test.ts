import { test } from 'node:test';
import assert from 'node:assert/strict';
import { host, profileJson, runScript, writeProfile } from './helpers';

// x86_64 syscall numbers and arguments. Expected: EPERM (1) from our profile; clone3 ENOSYS (38).
const PROBES: Record<string, [number, number[]]> = {
  mount: [165, [0, 0, 0, 0, 0]], umount2: [166, [0, 0]], pivot_root: [155, [0, 0]], chroot: [161, [0]],
  fsopen: [430, [0, 0]], fsconfig: [431, [0, 0, 0, 0, 0]], fsmount: [432, [0, 0, 0]], fspick: [433, [0, 0, 0]],
  move_mount: [429, [0, 0, 0, 0, 0]], open_tree: [428, [0, 0, 0]], mount_setattr: [442, [0, 0, 0, 0, 0]],
  unshare: [272, [0x10000000]], setns: [308, [0, 0]], clone_newuser: [56, [0x10000000 | 17, 0, 0, 0, 0]],
  clone_newns: [56, [0x00020000 | 17, 0, 0, 0, 0]],
  keyctl: [250, [0, 0, 0, 0, 0]], add_key: [248, [0, 0, 0, 0, 0]], request_key: [249, [0, 0, 0, 0]],
  bpf: [321, [0, 0, 0]], perf_event_open: [298, [0, 0, 0, 0, 0]], kexec_load: [246, [0, 0, 0, 0]],
  kexec_file_load: [320, [0, 0, 0, 0, 0]], init_module: [175, [0, 0, 0]], finit_module: [313, [0, 0, 0]],
  delete_module: [176, [0, 0]], open_by_handle_at: [304, [0, 0, 0]], userfaultfd: [323, [0]],
  io_uring_setup: [425, [0, 0]], io_uring_enter: [426, [0, 0, 0, 0, 0, 0]], io_uring_register: [427, [0, 0, 0, 0]],
  reboot: [169, [0, 0, 0, 0]], swapon: [167, [0, 0]], swapoff: [168, [0]], settimeofday: [164, [0, 0]],
  clock_settime: [227, [0, 0]], clock_adjtime: [305, [0, 0]], pidfd_getfd: [438, [0, 0, 0]],
  socket_af_alg: [41, [38, 5, 0]], socket_af_vsock: [41, [40, 1, 0]], socket_af_rxrpc: [41, [33, 2, 0]],
  socket_pf_key: [41, [15, 3, 2]], socket_af_packet: [41, [17, 3, 0]], ioctl_tiocsti: [16, [0, 0x5412, 0]],
  get_mempolicy: [239, [0, 0, 0, 0, 0]], mbind: [237, [0, 0, 0, 0, 0, 0]], set_mempolicy: [238, [0, 0, 0]], migrate_pages: [256, [0, 0, 0, 0]],
  move_pages: [279, [0, 0, 0, 0, 0, 0]], acct: [163, [0]], syslog: [103, [0, 0, 0]],
  clone3: [435, [0, 0]],
};

const probeScript = (probes: Record<string, [number, number[]]>) => `python3 - <<'PY'
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
out = {}
for name, (nr, args) in json.loads('${JSON.stringify(probes)}').items():
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    if r == 0 and name.startswith('clone'):
        os._exit(0)
    out[name] = [r, ctypes.get_errno()]
print('PROBES ' + json.dumps(out))
PY`;

function parseProbes(text: string): Record<string, [number, number]> {
  const line = text.split('\n').find((l) => l.startsWith('PROBES '));
  assert.ok(line, text);
  return JSON.parse(line.slice(7)) as Record<string, [number, number]>;
}

test('every denied syscall fails with EPERM (clone3: ENOSYS), and the filter is what refuses it', async () => {
  const ours = await runScript(probeScript(PROBES));
  assert.equal(ours.exitCode, 0, ours.text);
  const got = parseProbes(ours.text);
  // The same probes under a copy of our profile whose refusals answer EUCLEAN (117):
  // a refusal that changes errno comes from the filter, not from the kernel's own checks.
  const variant = JSON.parse(profileJson) as { syscalls: Array<{ action: string; errnoRet?: number }> };
  for (const r of variant.syscalls) if (r.action === 'SCMP_ACT_ERRNO') r.errnoRet = 117;
  const marked = await runScript(probeScript(PROBES), { profilePath: writeProfile('euclean', JSON.stringify(variant)) });
  const viaFilter = parseProbes(marked.text);
  for (const name of Object.keys(PROBES)) {
    const want = name === 'clone3' ? 38 : 1;
    assert.deepEqual(got[name], [-1, want], `${name} under our profile`);
    assert.deepEqual(viaFilter[name], [-1, 117], `${name} is refused by the seccomp filter`);
  }
});

test('ordinary programs still work: threads, fork/exec, pipes, signals; unknown syscalls answer ENOSYS', async () => {
  const r = await runScript(`python3 - <<'PY'
import threading, subprocess, ctypes, os, signal
t = [threading.Thread(target=lambda: None) for _ in range(16)]
[x.start() for x in t]; [x.join() for x in t]
print('threads ok')
print(subprocess.run(['sh', '-c', 'echo piped | tr a-z A-Z'], capture_output=True, text=True).stdout.strip())
signal.signal(signal.SIGUSR1, lambda *a: print('signal ok')); os.kill(os.getpid(), signal.SIGUSR1)
libc = ctypes.CDLL(None, use_errno=True)
print('unknown', libc.syscall(ctypes.c_long(499)), ctypes.get_errno())
PY`);
  assert.equal(r.exitCode, 0, r.text);
  assert.match(r.text, /threads ok/);
  assert.match(r.text, /PIPED/);
  assert.match(r.text, /signal ok/);
  assert.match(r.text, /unknown -1 38/);
});

test('the i386 (int 0x80) and x32 ABIs are killed with SIGSYS', async (t) => {
  const r = await runScript(`python3 - <<'PY'; echo "int80=$?"
import ctypes, mmap
code = bytes([0xb8, 0x14, 0, 0, 0, 0xcd, 0x80, 0xc3])  # mov eax, 20 (i386 getpid); int 0x80; ret
m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
m.write(code)
addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
print('int80 returned', ctypes.CFUNCTYPE(ctypes.c_int)(addr)())
PY
python3 -c 'import ctypes; l=ctypes.CDLL(None); print("x32 returned", l.syscall(ctypes.c_long(0x40000000 + 39)))'; echo "x32=$?"`);
  // Kernels built or booted without IA32 emulation fault on int 0x80 before seccomp sees it
  // (SIGSEGV, 139): then the ABI does not exist at all, which is as safe; say so.
  const { spawnSync } = await import('node:child_process');
  const hostHasIa32 = spawnSync('python3', ['-c', "import ctypes,mmap\nm=mmap.mmap(-1,4096,prot=7)\nm.write(bytes([0xb8,0x14,0,0,0,0xcd,0x80,0xc3]))\nctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))()"]).status === 0;
  if (hostHasIa32) assert.match(r.text, /int80=159/, r.text);
  else {
    t.diagnostic('this kernel has no i386 syscall ABI (int 0x80 faults on the host too): the sandbox result must still not return');
    assert.match(r.text, /int80=(159|139)/, r.text);
  }
  assert.match(r.text, /x32=159/, r.text);
  assert.doesNotMatch(r.text, /^(int80|x32) returned/m);
});

test('no capabilities, no new privileges, and a setuid binary does not elevate', async (t) => {
  const r = await runScript(`grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status
cp /usr/bin/python3 /tmp/suid-python 2>/dev/null; chmod 4755 /tmp/suid-python 2>/dev/null
mkdir -p /github/workspace && cp /usr/bin/python3 /github/workspace/py && chmod 4755 /github/workspace/py && ls -l /github/workspace/py
/github/workspace/py -c 'print("after setuid exec:", [l.strip() for l in open("/proc/self/status") if l.startswith("CapEff")][0])'
touch /usr/bin/planted 2>&1 || echo "root fs read-only"
ulimit -c`, { mounts: [{ volume: (await workspaceVolume(t)).name, target: '/github/workspace' }] });
  assert.equal(r.exitCode, 0, r.text);
  for (const cap of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) assert.match(r.text, new RegExp(`${cap}:\\s+0000000000000000`), r.text);
  assert.match(r.text, /NoNewPrivs:\s+1/);
  assert.match(r.text, /Seccomp:\s+2/);
  assert.match(r.text, /-rwsr-xr-x/);
  assert.match(r.text, /after setuid exec: CapEff:\s+0000000000000000/);
  assert.match(r.text, /root fs read-only/);
  assert.match(r.text, /^0$/m, 'core dumps off');
});

test("container root cannot write a host-owned file in its own volume", async (t) => {
  const { writeFileSync, chmodSync } = await import('node:fs');
  const v = await workspaceVolume(t);
  writeFileSync(`${v.mountpoint}/host-owned`, 'host\n');
  chmodSync(`${v.mountpoint}/host-owned`, 0o644);
  const r = await runScript('cat /w/host-owned; echo tamper >> /w/host-owned && echo WROTE || echo refused; stat -c %U /w/host-owned', { mounts: [{ volume: v.name, target: '/w' }] });
  assert.match(r.text, /^host$/m);
  assert.match(r.text, /refused/);
  assert.doesNotMatch(r.text, /WROTE/);
  assert.match(r.text, /nobody/);
});

/** A labelled volume removed when the test ends (the reaper would otherwise find it later). */
async function workspaceVolume(t: { after(fn: () => Promise<void>): void }): Promise<{ name: string; mountpoint: string }> {
  const { sandbox } = await import('./helpers');
  const { managedLabels } = await import('../../src/sandbox');
  const sb = await sandbox();
  const name = `stockade-test-${process.pid}-vol-${Math.random().toString(16).slice(2, 8)}`;
  const { mountpoint } = await sb.deps.engine.createVolume(name, managedLabels(sb.ownerTag));
  t.after(() => sb.deps.engine.removeVolume(name));
  return { name, mountpoint };
}

test('no engine socket, runner files or host paths are visible inside a step', async () => {
  const sock = host.socketPath;
  const r = await runScript(`find / -xdev -type s 2>/dev/null | head; find /run /tmp /var/run -type s 2>/dev/null | head
for p in ${sock} /run/user /var/lib/stockade /home/stockade /run/podman /var/run/docker.sock; do test -e "$p" && echo "VISIBLE $p"; done
python3 -c "
import socket
s = socket.socket(socket.AF_UNIX)
try:
    s.connect('${sock}'); print('CONNECTED')
except OSError as e: print('no socket', e.errno)
"
echo done`);
  assert.match(r.text, /no socket 2/, r.text);
  assert.doesNotMatch(r.text, /VISIBLE|CONNECTED|\.sock/, r.text);
  assert.match(r.text, /done/);
});

test('personality takes only the values Docker allows: ADDR_NO_RANDOMIZE and READ_IMPLIES_EXEC are refused, ASLR stays on', async () => {
  const r = await runScript(`${probeScript({ query: [135, [0xffffffff]], linux: [135, [0]], linux32: [135, [0x8]], addr_no_randomize: [135, [0x40000]], read_implies_exec: [135, [0x400000]], both: [135, [0x440000]] })}
setarch x86_64 -R true; echo "setarch-R=$?"
cat /proc/sys/kernel/randomize_va_space`);
  const got = parseProbes(r.text);
  assert.equal(got.query![0], 0, 'querying the persona works');
  assert.ok(got.linux![0] >= 0 && got.linux32![0] >= 0, JSON.stringify(got));
  for (const n of ['addr_no_randomize', 'read_implies_exec', 'both']) assert.deepEqual(got[n], [-1, 38], `${n} is refused by the filter`);
  assert.match(r.text, /setarch-R=[1-9]/, 'setarch -R (ASLR off) fails');
});
