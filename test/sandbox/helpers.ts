import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { silentLogger } from '../../src/common';
import { DEFAULT_LIMITS, managedLabels, openSandbox, runStepContainer, type ResourceLimits, type Sandbox, type StepOutcome, type VolumeMount } from '../../src/sandbox';
import { resolveHostConfig } from '../../src/host';
import { baseImageRef } from '../../src/cli/base-image';

export const root = process.cwd();
export const host = resolveHostConfig(process.env);
export const image = baseImageRef(host);
export const profileJson = readFileSync(join(root, 'seccomp/stockade.json'), 'utf8');

let opened: Promise<Sandbox> | undefined;
export function sandbox(): Promise<Sandbox> {
  opened ??= openSandbox({ socketPath: host.socketPath, stateDir: host.stateDir, seccompProfileJson: profileJson, logger: silentLogger() });
  return opened;
}

let counter = 0;
export interface ScriptRun extends StepOutcome {
  lines: string[];
  text: string;
}

/** Runs a bash script in one sandboxed container, as a step would. */
export async function runScript(script: string, o: { limits?: Partial<ResourceLimits>; mounts?: VolumeMount[]; profilePath?: string } = {}): Promise<ScriptRun> {
  const sb = await sandbox();
  const lines: string[] = [];
  const outcome = await runStepContainer(
    sb.deps,
    {
      name: `stockade-test-${process.pid}-${counter++}`,
      image,
      argv: ['bash', '-c', script],
      env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' },
      workdir: '/',
      mounts: o.mounts ?? [],
      limits: { ...DEFAULT_LIMITS, timeoutMs: 60_000, ...o.limits },
      network: { mode: 'none' },
      security: { seccompProfilePath: o.profilePath ?? sb.seccompProfilePath, readOnlyRoot: true },
      labels: managedLabels(sb.ownerTag),
    },
    (l) => lines.push(l.text),
  );
  return { ...outcome, lines, text: lines.join('\n') };
}

/** Writes a profile variant where the engine can read it. */
export function writeProfile(name: string, json: string): string {
  const dir = join(host.stateDir, 'seccomp');
  const p = join(dir, `test-${name}.json`);
  writeFileSync(p, json, { mode: 0o644 });
  return p;
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'stockade-test-'));
}
