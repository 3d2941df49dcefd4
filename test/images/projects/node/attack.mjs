// Node has no raw syscall call without a native addon (none can be built offline); it
// reaches the kernel through its runtime and child processes, so those are what it tries.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';

const r = spawnSync('unshare', ['-U', 'true'], { encoding: 'utf8' });
console.log(`node unshare: ${r.status === 0 ? 'ALLOWED' : /Operation not permitted/.test(r.stderr) ? 'EPERM' : r.stderr.trim()}`);
for (const [name, path] of [['proc-sys', '/proc/sys/kernel/hostname'], ['sys', '/sys/kernel/uevent_helper']]) {
  try {
    writeFileSync(path, 'x');
    console.log(`node write-${name}: ALLOWED`);
  } catch (e) {
    console.log(`node write-${name}: ${e.code}`);
  }
}
console.log(`node process.binding: ${typeof process.binding === 'function' ? 'present (no syscall access)' : 'absent'}`);
