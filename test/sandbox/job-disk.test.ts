import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/common';
import { JobDisk, reapJobDisks } from '../../src/sandbox';
import { mountsOf } from '../../src/sandbox/job-disk';
import { host } from './helpers';

test('mount points of a device are read from mountinfo, escapes decoded, deepest first', () => {
  const info = [
    '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw',
    '101 27 7:3 / /var/lib/stockade/disks/1.2-a.fs rw,nosuid,nodev - ext4 /dev/loop3 rw',
    '102 27 7:3 /workspace /home/stockade/vol\\040one/_data rw - ext4 /dev/loop3 rw',
    '103 27 7:4 / /elsewhere rw - ext4 /dev/loop4 rw',
  ].join('\n');
  assert.deepEqual(mountsOf(info, ['/dev/loop3']), ['/var/lib/stockade/disks/1.2-a.fs', '/home/stockade/vol one/_data']);
});

/** rootless Podman's mount namespace, as the sandbox finds it. */
function podmanNs(): string | undefined {
  try {
    return `/proc/${Number(readFileSync(join(host.runtimeDir, 'libpod/tmp/pause.pid'), 'utf8').trim())}/ns/mnt`;
  } catch {
    return undefined;
  }
}

const loopsOf = (image: string) => execFileSync('losetup', ['-j', image], { encoding: 'utf8' }).trim();

test('a runner killed while writing its disk record leaves nothing behind: the reaper finds the mounts in the kernel\'s tables', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'stk-disks-'));
  const vol = mkdtempSync(join(tmpdir(), 'stk-vol-'));
  // A dead runner's tag: pid 1 with another start time never matches a live process.
  const disk = await JobDisk.create({ dir, ownerTag: '1.999999999', key: 'crashed', limits: { bytes: 64 * 1024 ** 2, inodes: 2000 }, podmanMountNs: podmanNs(), logger: silentLogger() });
  await disk.attach(vol, 'workspace', { uid: 0, gid: 0 });
  writeFileSync(join(vol, 'file'), 'data');
  const image = join(dir, '1.999999999-crashed.img');
  assert.match(loopsOf(image), /\/dev\/loop\d+/);
  assert.ok(readFileSync('/proc/self/mountinfo', 'utf8').includes(vol), 'the volume is mounted from the disk');
  // The crash: the record is cut in the middle of a write.
  truncateSync(join(dir, '1.999999999-crashed.json'), 7);
  assert.equal(await reapJobDisks(dir, silentLogger(), podmanNs()), 1);
  assert.equal(loopsOf(image), '', 'the loop device is detached');
  assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes(vol), 'nothing of it is mounted here');
  const ns = podmanNs();
  if (ns && existsSync(ns)) assert.ok(!readFileSync(ns.replace(/ns\/mnt$/, 'mountinfo'), 'utf8').includes(vol), "nor in Podman's namespace");
  assert.deepEqual(readdirSync(dir), [], 'image, mount point and record are gone');
  // A runner killed before it wrote any record: only its image.
  mkdirSync(join(dir, 'x'), { recursive: true });
  const early = await JobDisk.create({ dir, ownerTag: '1.999999998', key: 'early', limits: { bytes: 64 * 1024 ** 2, inodes: 2000 }, podmanMountNs: podmanNs(), logger: silentLogger() });
  void early;
  execFileSync('rm', ['-f', join(dir, '1.999999998-early.json')]);
  assert.equal(await reapJobDisks(dir, silentLogger(), podmanNs()), 1);
  assert.equal(loopsOf(join(dir, '1.999999998-early.img')), '');
  assert.deepEqual(readdirSync(dir).filter((f) => f !== 'x'), []);
});
