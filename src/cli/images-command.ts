import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { StockadeError, silentLogger } from '../common';
import { imageInputsHash, imageRef, resolveHostConfig, runnerImageNames, type HostConfig } from '../host';
import { DEFAULT_LIMITS, managedLabels, openSandbox, runStepContainer, type Sandbox } from '../sandbox';
import { ensureBaseImage } from './base-image';
import { asRunner } from './exec';
import { since, StatusLine } from './progress';

export const IMAGES_USAGE = `usage: stockade images build [NAME...]   build runner images (all when no NAME), cached by a hash of their inputs
       stockade images list [--json]       each image with the toolchains its probes find inside it`;

/**
 * Runs inside an image to find its toolchains (capability detection, not labels):
 * one `name<TAB>version<TAB>detail` line per toolchain that answers.
 */
export const PROBE_SCRIPT = String.raw`
probe() { local name=$1; shift; command -v "$1" >/dev/null 2>&1 || return 0; local out; out=$(bash -c "$2" 2>/dev/null | head -n 1) && [ -n "$out" ] && printf '%s	%s
' "$name" "$out"; }
probe bash bash 'echo $BASH_VERSION'
probe python python3 'python3 -c "import platform, sys; print(platform.python_version(), sys.implementation.name, platform.machine())"'
probe pip pip3 'python3 -m pip --version | cut -d" " -f1,2'
probe pytest pytest-3 'python3 -m pytest --version 2>&1'
probe node node 'node -e "console.log(process.version, process.arch, \"v8\", process.versions.v8)"'
probe npm npm 'npm --version'
probe go go 'go version'
probe rustc rustc 'echo "$(rustc --version) host $(rustc -vV | sed -n "s/^host: //p")"'
probe cargo cargo 'cargo --version'
probe gcc gcc 'echo "$(gcc -dumpfullversion) target $(gcc -dumpmachine)"'
probe g++ g++ 'echo "$(g++ -dumpfullversion) target $(g++ -dumpmachine)"'
probe make make 'make --version'
probe cmake cmake 'cmake --version'
probe jq jq 'jq --version'
`;

export interface ImageInfo {
  name: string;
  ref: string;
  present: boolean;
  sizeBytes?: number;
  toolchains: Array<{ name: string; version: string }>;
}

/** Builds one derived image (FROM the base) as the runner user; progress lines go to `log`. */
async function buildDerived(h: HostConfig, name: string, log: (m: string) => void, status?: (m: string) => void): Promise<void> {
  const ref = imageRef(h, name);
  const dir = join(h.packageRoot, 'runner-images', name);
  const [cmd, args] = asRunner(h, ['podman', 'build', '--pull=never', '--layers=false', '--build-arg', `BASE=${imageRef(h, 'base')}`, '--label', `io.stockade.image=${name}`, '--label', `io.stockade.inputs=${imageInputsHash(h, name)}`, '-t', ref, '-f', join(dir, 'Containerfile'), dir]);
  const child = spawn(cmd, args, { cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
  const tail: string[] = [];
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on('line', (l) => {
      tail.push(l);
      if (tail.length > 30) tail.shift();
      // On a terminal every line of the build shows on the status line and only its steps stay;
      // in a log, the steps and the packages fetched and set up.
      status?.(`${name}: ${l}`);
      if ((status ? /^(STEP|COMMIT|Successfully)/ : /^(STEP|COMMIT|Setting up|Get:\d+|Fetched|Successfully)/).test(l)) log(`${name}: ${l.slice(0, 160)}`);
    });
  }
  const code = await new Promise<number>((r) => child.on('close', (c) => r(c ?? 1)));
  if (code !== 0) throw new StockadeError('ENGINE_FAILED', `building ${ref} failed (exit ${code}):\n${tail.join('\n')}`);
}

/** Builds the named images (base first, always), skipping those whose inputs are unchanged. */
export async function buildImages(h: HostConfig, sandbox: Sandbox, names: string[], log: (m: string) => void, status?: (m: string) => void): Promise<Array<{ name: string; ref: string; seconds: number; cached: boolean }>> {
  const all = runnerImageNames(h);
  for (const n of names) if (!all.includes(n)) throw new StockadeError('USAGE', `no runner image '${n}': images are ${all.join(', ')}`);
  const wanted = names.length ? names : all;
  const out: Array<{ name: string; ref: string; seconds: number; cached: boolean }> = [];
  const exists = (ref: string) => sandbox.deps.engine.imageExists(ref);
  const t0 = Date.now();
  const baseRef = imageRef(h, 'base');
  const baseCached = await exists(baseRef);
  await ensureBaseImage(h, log, exists);
  if (wanted.includes('base')) out.push({ name: 'base', ref: baseRef, seconds: (Date.now() - t0) / 1000, cached: baseCached });
  for (const name of wanted.filter((n) => n !== 'base')) {
    const ref = imageRef(h, name);
    const t = Date.now();
    if (await exists(ref)) {
      log(`${name}: ${ref} is up to date`);
      out.push({ name, ref, seconds: (Date.now() - t) / 1000, cached: true });
      continue;
    }
    log(`${name}: building ${ref}`);
    await buildDerived(h, name, log, status);
    const seconds = (Date.now() - t) / 1000;
    log(`${name}: built ${ref} in ${seconds.toFixed(1)} s`);
    out.push({ name, ref, seconds, cached: false });
  }
  return out;
}

/** Runs the probe inside an image, under the same sandbox policy as any step. */
export async function probeImage(sandbox: Sandbox, ref: string): Promise<Array<{ name: string; version: string }>> {
  const lines: string[] = [];
  const outcome = await runStepContainer(
    sandbox.deps,
    {
      name: `stockade-probe-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
      image: ref,
      argv: ['bash', '-c', PROBE_SCRIPT],
      env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/tmp' },
      workdir: '/tmp',
      mounts: [],
      limits: { ...DEFAULT_LIMITS, memoryBytes: 1024 ** 3, timeoutMs: 60_000 },
      network: { mode: 'none' },
      security: { seccompProfilePath: sandbox.seccompProfilePath, readOnlyRoot: true },
      labels: managedLabels(sandbox.ownerTag),
    },
    (l) => lines.push(l.text),
  );
  if (outcome.exitCode === null) throw new StockadeError('ENGINE_FAILED', `probing ${ref} failed: ${outcome.error ?? outcome.reason}`);
  return lines.map((l) => l.split('\t')).filter((p) => p.length === 2).map(([name, version]) => ({ name: name!, version: version!.trim() }));
}

export async function listImages(h: HostConfig, sandbox: Sandbox): Promise<ImageInfo[]> {
  const out: ImageInfo[] = [];
  for (const name of runnerImageNames(h)) {
    const ref = imageRef(h, name);
    const present = await sandbox.deps.engine.imageExists(ref);
    out.push({ name, ref, present, ...(present ? { sizeBytes: await sandbox.deps.engine.imageSize(ref), toolchains: await probeImage(sandbox, ref) } : { toolchains: [] }) });
  }
  return out;
}

export async function imagesCommand(argv: string[], env: NodeJS.ProcessEnv, out: NodeJS.WritableStream): Promise<number> {
  const [sub, ...rest] = argv;
  const h = resolveHostConfig(env);
  const sandbox = await openSandbox({ socketPath: h.socketPath, stateDir: h.stateDir, seccompProfileJson: readFileSync(join(h.packageRoot, 'seccomp/stockade.json'), 'utf8'), logger: silentLogger() });
  if (sub === 'build') {
    const t0 = Date.now();
    const bar = new StatusLine(process.stderr);
    const built = await buildImages(h, sandbox, rest, (m) => bar.line(`images: [${since(t0)}] ${m}`), bar.enabled ? (m) => bar.set(`images: [${since(t0)}] ${m}`) : undefined).finally(() => bar.done());
    for (const b of built) out.write(`${b.name.padEnd(8)} ${b.ref}  ${b.cached ? 'cached' : `built in ${b.seconds.toFixed(1)} s`}\n`);
    return 0;
  }
  if (sub === 'list') {
    const list = await listImages(h, sandbox);
    if (rest.includes('--json')) out.write(`${JSON.stringify(list, null, 2)}\n`);
    else {
      for (const i of list) {
        out.write(`${i.name.padEnd(8)} ${i.ref}  ${i.present ? `${((i.sizeBytes ?? 0) / 1024 ** 2).toFixed(0)} MiB` : 'not built (stockade images build ' + i.name + ')'}\n`);
        for (const t of i.toolchains) out.write(`         ${t.name.padEnd(7)} ${t.version}\n`);
      }
    }
    return 0;
  }
  throw new StockadeError('USAGE', `stockade images: '${sub ?? ''}' is not build or list`, { hint: IMAGES_USAGE });
}
