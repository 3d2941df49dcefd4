import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync } from 'node:fs';
import { posix } from 'node:path';
import { readFileBeneath, sha256Hex } from '../common';
import { imageRefusal, type ImagePolicy } from './image-policy';
import { bindSourceProblem, DEFAULT_LIMITS, type ResourceLimits, type Sandbox } from '../sandbox';

/**
 * A container action built from its Dockerfile (run_container_step with `dockerfile`), under the
 * sandbox's rules: the Dockerfile and its context read from the job's `_actions` without following
 * a link and within budgets, every `FROM` image allowed by the image policy and already on this host
 * (nothing is pulled), and `podman build` run as the Podman user with no network, no capabilities,
 * our seccomp profile, inside cgroups of its own whose limits are written and
 * read back before it starts (the build's `RUN` lines run in its process tree, so they inherit them:
 * rootless Podman's own limit flags are ignored on cgroup v1), stopped at its time budget. Images are
 * cached by the hash of the Dockerfile and the context.
 */
export const BUILD_LIMITS = {
  dockerfileBytes: 64 * 1024,
  contextFiles: 20_000,
  contextBytes: 256 * 1024 * 1024,
  imageBytes: 4 * 1024 ** 3,
  outputLines: 2000,
} as const;

export interface BuildDeps {
  sandbox: Sandbox;
  policy: ImagePolicy;
  images: Record<string, string>;
  /** argv that runs a command as the Podman user with its environment (the CLI's asRunner). */
  asPodmanUser(args: string[]): [string, string[]];
  seccompProfilePath: string;
  limits: ResourceLimits;
}

const inside = (root: string, p: string) => p === root || p.startsWith(`${root}/`);

/** The images a Dockerfile builds FROM (stage names excluded), or why it cannot be read that way. */
export function fromImages(text: string): { images: string[] } | { error: string } {
  const lines = text.replace(/\\\r?\n/g, ' ').split(/\r?\n/);
  const stages = new Set<string>();
  const images: string[] = [];
  for (const [i, line] of lines.entries()) {
    const m = /^\s*FROM\s+(.*)$/i.exec(line);
    if (!m) continue;
    const words = m[1]!.trim().split(/\s+/).filter((w) => !w.startsWith('--'));
    const image = words[0] ?? '';
    if (!image) return { error: `line ${i + 1}: FROM names no image` };
    if (/[$]/.test(image)) return { error: `line ${i + 1}: FROM ${image.slice(0, 80)} uses a build argument; the image must be named literally so the policy can judge it` };
    if (words[1]?.toLowerCase() === 'as' && words[2]) stages.add(words[2].toLowerCase());
    if (!stages.has(image.toLowerCase()) || words[1]?.toLowerCase() === 'as') {
      if (!stages.has(image.toLowerCase()) && image.toLowerCase() !== 'scratch') images.push(image);
    }
  }
  if (!images.length && !lines.some((l) => /^\s*FROM\s+scratch/i.test(l))) return { error: 'the Dockerfile has no FROM' };
  return { images: [...new Set(images)] };
}

/** Walks the build context without following links: its file count, bytes and a digest of names, sizes and times. */
function contextDigest(dir: string): { digest: string; files: number; bytes: number } | { error: string } {
  const h = createHash('sha256');
  let files = 0;
  let bytes = 0;
  const walk = (d: string, rel: string): string | undefined => {
    for (const name of readdirSync(d).sort()) {
      const p = posix.join(d, name);
      const st = lstatSync(p);
      files++;
      if (files > BUILD_LIMITS.contextFiles) return `the build context has more than ${BUILD_LIMITS.contextFiles} entries`;
      if (st.isFile()) bytes += st.size;
      if (bytes > BUILD_LIMITS.contextBytes) return `the build context is larger than ${BUILD_LIMITS.contextBytes / 1024 ** 2} MiB`;
      h.update(`${rel}/${name}\0${st.mode}\0${st.size}\0${st.mtimeMs}\n`);
      if (st.isDirectory()) {
        const why = walk(p, `${rel}/${name}`);
        if (why) return why;
      }
    }
    return undefined;
  };
  const why = walk(dir, '');
  return why ? { error: why } : { digest: h.digest('hex'), files, bytes };
}

/** Builds the image of the Dockerfile at `dockerfile` (host path), which must lie inside `actions` (the job's copy of its actions). */
export async function buildActionImage(d: BuildDeps, dockerfile: string, actions: string, emit: (line: string) => void, signal: AbortSignal): Promise<{ image: string } | { error: string }> {
  const path = posix.normalize(dockerfile);
  if (!posix.isAbsolute(path) || !inside(actions, path) || path === actions) return { error: `the Dockerfile ${dockerfile.slice(0, 200)} is not in the job's actions directory ${actions}` };
  const dir = posix.dirname(path);
  const why = bindSourceProblem(dir);
  if (why) return { error: `the action's directory ${dir} ${why}` };
  const read = await readFileBeneath(dir, posix.basename(path), BUILD_LIMITS.dockerfileBytes);
  if (!read.ok) return { error: `the Dockerfile ${path}: ${read.error}` };
  const text = read.text;
  const from = fromImages(text);
  if ('error' in from) return { error: `the Dockerfile ${path}: ${from.error}` };
  for (const image of from.images) {
    const refused = imageRefusal(image, d.policy, d.images);
    if (refused) return { error: `the Dockerfile ${path}: FROM ${refused}` };
    if (!(await d.sandbox.deps.engine.imageExists(image))) return { error: `the Dockerfile ${path}: FROM ${image}: the image is not on this host (nothing is pulled for a build)` };
  }
  const ctx = contextDigest(dir);
  if ('error' in ctx) return { error: `the action ${dir}: ${ctx.error}` };
  const tag = `localhost/stockade-action/${sha256Hex(text, '\0', ctx.digest).slice(0, 20)}:built`;
  if (await d.sandbox.deps.engine.imageExists(tag)) {
    emit(`[stockade] the action's image ${tag} is already built`);
    return { image: tag };
  }
  emit(`[stockade] building the action's image ${tag} (${ctx.files} files, ${(ctx.bytes / 1024 ** 2).toFixed(1)} MiB) with no network, no capabilities, our seccomp profile`);
  const limits: ResourceLimits = { ...DEFAULT_LIMITS, ...d.limits, timeoutMs: Math.min(d.limits.timeoutMs, 30 * 60_000) };
  const [cmd, args] = d.asPodmanUser([
    'podman', 'build', '--pull=never', '--network=none', '--cap-drop=all', `--security-opt=seccomp=${d.seccompProfilePath}`,
    '--layers=false', '--no-cache', '--force-rm', '-f', path, '-t', tag, dir,
  ]);
  // The build waits on its stdin until its cgroups are in force: nothing of it runs unlimited.
  const child = spawn('sh', ['-c', 'read _ready && exec "$@"', 'sh', cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'], detached: true, cwd: '/' });
  const killGroup = (s: NodeJS.Signals) => {
    try {
      if (child.pid) process.kill(-child.pid, s);
    } catch {
      // gone
    }
  };
  let applied;
  try {
    applied = await d.sandbox.deps.limits.apply(`stockade-build-${child.pid}`, child.pid!, limits);
  } catch (e) {
    killGroup('SIGKILL');
    return { error: `the build's limits could not be put in force; it is refused: ${(e as Error).message}` };
  }
  let lines = 0;
  let pending = '';
  const onData = (b: Buffer) => {
    pending += b.toString('utf8');
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (++lines <= BUILD_LIMITS.outputLines) emit(line.slice(0, 4096));
    }
    if (pending.length > 65536) pending = pending.slice(-65536);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  let stopped: string | undefined;
  const timer = setTimeout(() => {
    stopped = `the build ran past its time limit (${Math.round(limits.timeoutMs / 1000)} s)`;
    killGroup('SIGKILL');
  }, limits.timeoutMs);
  const onAbort = () => {
    stopped = 'the build was cancelled';
    killGroup('SIGKILL');
  };
  signal.addEventListener('abort', onAbort, { once: true });
  child.stdin!.end('go\n');
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  clearTimeout(timer);
  signal.removeEventListener('abort', onAbort);
  const usage = applied.usage();
  await applied.remove().catch(() => undefined);
  if (lines > BUILD_LIMITS.outputLines) emit(`[stockade] ${lines - BUILD_LIMITS.outputLines} more build lines not shown`);
  const limitHit = usage.oomKills ? `the build ran out of memory (limit ${Math.round(limits.memoryBytes / 1024 ** 2)} MiB)` : usage.pidsLimitHits ? `the build hit its process limit (${limits.pids})` : undefined;
  if (stopped || limitHit || code !== 0) return { error: stopped ?? limitHit ?? `the action's image did not build (podman build exited ${code})` };
  const info = await d.sandbox.deps.engine.imageCommand(tag);
  if (info.sizeBytes > BUILD_LIMITS.imageBytes) {
    const [rc, ra] = d.asPodmanUser(['podman', 'rmi', '-f', tag]);
    spawn(rc, ra, { stdio: 'ignore', cwd: '/' });
    return { error: `the action's image is ${(info.sizeBytes / 1024 ** 3).toFixed(1)} GiB, over the ${BUILD_LIMITS.imageBytes / 1024 ** 3} GiB budget; it was removed` };
  }
  emit(`[stockade] built ${tag}: ${(info.sizeBytes / 1024 ** 2).toFixed(1)} MiB, peak memory ${(usage.peakMemoryBytes / 1024 ** 2).toFixed(1)} MiB`);
  return { image: tag };
}
