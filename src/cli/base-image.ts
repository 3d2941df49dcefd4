import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { StockadeError } from '../common';
import { asRunner, exec } from './exec';
import type { HostConfig } from '../host';
import { baseImageRef, imageInputsHash } from '../host';
export { baseImageRef, imageInputsHash };


export function readPackages(h: HostConfig): string[] {
  return readFileSync(join(h.packageRoot, 'runner-images/base/packages.txt'), 'utf8')
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean);
}

/** The Debian mirror apt on this host is configured with (never a hard-coded host). */
export function hostDebianMirror(): string {
  const candidates = ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list'];
  for (const f of candidates) {
    if (!existsSync(f)) continue;
    const text = readFileSync(f, 'utf8');
    const m = /^URIs:\s*(\S+\/debian)\s*$/m.exec(text) ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\s+bookworm/m.exec(text);
    if (m) return m[1]!;
  }
  throw new StockadeError('HOST_NOT_READY', 'no Debian mirror found in /etc/apt/sources.list*', { hint: 'configure apt with a bookworm mirror' });
}

/**
 * Builds the base image without any container registry: debootstrap (minbase plus
 * packages.txt) from the host's Debian mirror, then `podman import` as the runner
 * user. Skipped when the image for the current inputs exists.
 */
export async function ensureBaseImage(h: HostConfig, log: (m: string) => void, exists: (ref: string) => Promise<boolean>): Promise<string> {
  const ref = baseImageRef(h);
  if (await exists(ref)) return ref;
  const started = Date.now();
  const tmp = mkdtempSync('/var/tmp/stockade-rootfs-');
  try {
    log(`building ${ref} with debootstrap (about a minute)…`);
    const boot = await exec('debootstrap', ['--variant=minbase', `--include=${readPackages(h).join(',')}`, 'bookworm', tmp, hostDebianMirror()]);
    if (boot.code !== 0) throw new StockadeError('HOST_NOT_READY', `debootstrap failed: ${boot.stderr.slice(-2000) || boot.stdout.slice(-2000)}`);
    rmSync(join(tmp, 'var/cache/apt/archives'), { recursive: true, force: true });
    rmSync(join(tmp, 'var/lib/apt/lists'), { recursive: true, force: true });
    // The sandbox's sudo (runner-images/base/sudo): runs the command as the root a step already is.
    copyFileSync(join(h.packageRoot, 'runner-images/base/sudo'), join(tmp, 'usr/local/bin/sudo'));
    chmodSync(join(tmp, 'usr/local/bin/sudo'), 0o755);
    const tar = spawn('tar', ['-C', tmp, '--numeric-owner', '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const [cmd, args] = asRunner(h, [
      'podman', 'import',
      '--change', 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      '--change', 'CMD ["/bin/bash"]',
      '--change', `LABEL io.stockade.image=base io.stockade.inputs=${imageInputsHash(h)}`,
      '-', ref,
    ]);
    const imp = await exec(cmd, args, { input: tar.stdout!, cwd: '/' });
    if (imp.code !== 0) throw new StockadeError('ENGINE_FAILED', `podman import failed: ${imp.stderr.slice(-2000)}`);
    log(`built ${ref} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return ref;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
