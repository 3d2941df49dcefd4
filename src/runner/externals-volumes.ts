import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { ensureExternalsVolume, type Sandbox } from '../sandbox';

/** Where the runner's Node.js appears in step containers (GitHub's externals layout). */
export const NODE_EXTERNALS = '/__e/node20';

let nodeVolume: Promise<string> | undefined;
const sidecarVolumes = new Map<string, Promise<string>>();

/** The read-only volume holding this host's Node.js binary (for JavaScript actions and the egress sidecar). */
export async function nodeVolumeFor(sandbox: Sandbox, binary: string | undefined): Promise<string> {
  if (!binary) throw new Error('JavaScript actions need Node.js; this runner has no Node.js binary configured');
  const st = statSync(binary);
  const name = `stockade-externals-node-${createHash('sha256').update(`${binary}:${st.size}:${st.mtimeMs}`).digest('hex').slice(0, 16)}`;
  nodeVolume ??= ensureExternalsVolume(sandbox.deps.engine, name, { 'bin/node': { source: binary, mode: 0o755 } });
  await nodeVolume.catch((e: unknown) => {
    nodeVolume = undefined;
    throw e;
  });
  return name;
}

/** The read-only volume holding the bundled helper program (dist/sidecar.js: egress sidecar and results forwarder). */
export async function sidecarVolumeFor(sandbox: Sandbox, script: string): Promise<string> {
  const st = statSync(script);
  const name = `stockade-externals-sidecar-${createHash('sha256').update(`${script}:${st.size}:${st.mtimeMs}`).digest('hex').slice(0, 16)}`;
  // Callers at the same time share one fill (the sidecar and the results forwarder of one job ask at once); a later call checks again.
  let filling = sidecarVolumes.get(name);
  if (!filling) {
    filling = ensureExternalsVolume(sandbox.deps.engine, name, { 'sidecar.js': { source: script, mode: 0o444 } }).finally(() => sidecarVolumes.delete(name));
    sidecarVolumes.set(name, filling);
  }
  await filling;
  return name;
}

