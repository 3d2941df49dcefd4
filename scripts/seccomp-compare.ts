/**
 * How many syscalls each profile lets a container call on x86_64 with no capabilities
 * (Stockade's steps have none): ours, Podman's default (containers-common, as installed
 * with Debian's podman) and Docker's default (moby). Names are counted only when they
 * exist on x86_64 (seccomp/reference/x86_64-syscalls.txt); argument-filtered rules
 * (socket, personality, clone) count as allowed.
 *
 *   npx tsx scripts/seccomp-compare.ts
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { allowedWithoutCapabilities, type ProfileRule } from '../src/sandbox/seccomp-profile';

const root = join(__dirname, '..');

const x86 = new Set(readFileSync(join(root, 'seccomp/reference/x86_64-syscalls.txt'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#')));

const profiles: Record<string, string> = { stockade: 'seccomp/stockade.json', podman: 'seccomp/reference/podman-default.json', docker: 'seccomp/reference/docker-default.json' };
const sets = Object.fromEntries(Object.entries(profiles).map(([k, p]) => [k, allowedWithoutCapabilities(JSON.parse(readFileSync(join(root, p), 'utf8')) as { syscalls: ProfileRule[] }, x86)]));
console.log(`x86_64 syscalls known: ${x86.size}`);
for (const [k, s] of Object.entries(sets)) console.log(`${k.padEnd(9)} allows ${s.size}`);
for (const other of ['podman', 'docker']) {
  const only = [...sets.stockade!].filter((n) => !sets[other]!.has(n)).sort();
  const theirs = [...sets[other]!].filter((n) => !sets.stockade!.has(n)).sort();
  console.log(`\nallowed by stockade, not by ${other} (${only.length}): ${only.join(' ')}`);
  console.log(`allowed by ${other}, not by stockade (${theirs.length}): ${theirs.join(' ')}`);
}
