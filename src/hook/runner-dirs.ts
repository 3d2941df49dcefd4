import { lchownSync, lstatSync, readdirSync, unlinkSync, rmSync } from 'node:fs';
import { posix } from 'node:path';
import { bindSourceProblem, type BindMount } from '../sandbox';
import type { PlannedMount } from './job-plan';

/**
 * Host-side checks of the runner's own directories, made by the broker (root) before any
 * container is created from them and after every step, while no container of the job runs
 * (so nothing can swap a path between the check and its use).
 */

export interface RunnerDirs {
  /** The runner's install directory (the parent of `externals`, where `.runner` and `.credentials` live). */
  root: string;
  /** The work directory bound at /__w. */
  work: string;
  /** The uid every runner directory belongs to: the official runner's user, or 0 for a runner run as root. */
  uid: number;
  /** The runner runs as root (its install directory belongs to root): what it writes is handed to the steps' uid. */
  rootRunner: boolean;
}

const inside = (root: string, p: string) => p === root || p.startsWith(`${root}/`);

/**
 * Checks each planned mount on the host: a real directory reached without a link, owned by the
 * runner's user, never the runner's install directory or one above it (where its credentials
 * are); `/__w/_actions` is bound read-only so a step cannot rewrite an action the runner loads
 * later. Returns the binds, or every problem found.
 */
export function checkRunnerMounts(mounts: PlannedMount[], o: { expectedUid: number }): { binds: BindMount[]; dirs: RunnerDirs } | { errors: string[] } {
  const errors: string[] = [];
  const externals = mounts.find((m) => m.target === '/__e');
  const work = mounts.find((m) => m.target === '/__w');
  if (!externals) errors.push("the runner passed no externals directory mounted at /__e; this hook needs GitHub's runner");
  if (!work) errors.push("the runner passed no work directory mounted at /__w; this hook needs GitHub's runner");
  if (!externals || !work) return { errors };
  const root = posix.dirname(externals.source);
  let uid = -1;
  const binds: BindMount[] = [];
  for (const m of mounts) {
    const why = bindSourceProblem(m.source);
    if (why) {
      errors.push(`the runner's directory ${m.source} (for ${m.target}) ${why}`);
      continue;
    }
    if (inside(m.source, root)) {
      errors.push(`the runner asked to mount ${m.source} at ${m.target}: it holds the runner's own directory ${root} (its credentials); it is refused`);
      continue;
    }
    const owner = lstatSync(m.source).uid;
    if (owner !== o.expectedUid && owner !== 0) {
      errors.push(`the runner's directory ${m.source} belongs to uid ${owner}; steps write as uid ${o.expectedUid}, the runner's user (see the README, runner mode): run the runner as that user (or as root)`);
      continue;
    }
    uid = owner;
    binds.push({ hostPath: m.source, target: m.target, readOnly: m.readOnly || m.target === '/__w/_actions' || m.target === '/__e' });
  }
  for (const t of ['/__w/_temp', '/__w/_actions', '/__w/_tool']) {
    const m = mounts.find((x) => x.target === t);
    if (m && m.source !== posix.join(work.source, t.slice('/__w/'.length))) errors.push(`the runner asked to mount ${m.source} at ${t}; it must be ${posix.join(work.source, t.slice(5))}`);
  }
  for (const t of ['/github/home', '/github/workflow']) {
    const m = mounts.find((x) => x.target === t);
    if (m && !inside(posix.join(work.source, '_temp'), m.source)) errors.push(`the runner asked to mount ${m.source} at ${t}; it must lie in ${posix.join(work.source, '_temp')}`);
  }
  if (errors.length) return { errors };
  let rootRunner = false;
  try {
    const st = lstatSync(root);
    rootRunner = st.isDirectory() && st.uid === 0;
  } catch {
    errors.push(`the runner's directory ${root} does not exist`);
    return { errors };
  }
  return { binds, dirs: { root, work: work.source, uid: rootRunner ? 0 : uid, rootRunner } };
}

/** Re-checks binds just before a container is created from them (a step ran since prepare_job). */
export function recheckBinds(binds: BindMount[]): string[] {
  return binds.flatMap((b) => {
    const why = bindSourceProblem(b.hostPath);
    return why ? [`the runner's directory ${b.hostPath} (for ${b.target}) ${why}: a step changed it; the step is refused`] : [];
  });
}

/** The host path of a container path, through the binds (the longest target that holds it). */
export function hostPathOf(binds: BindMount[], containerPath: string): string | undefined {
  const p = posix.normalize(containerPath);
  let best: BindMount | undefined;
  for (const b of binds) if (inside(b.target, p) && (!best || b.target.length > best.target.length)) best = b;
  return best ? posix.join(best.hostPath, posix.relative(best.target, p)) : undefined;
}

/** The file commands of a step (actions/runner FileCommandManager): the runner reads each after the step. */
export const FILE_COMMAND_VARS = ['GITHUB_ENV', 'GITHUB_OUTPUT', 'GITHUB_PATH', 'GITHUB_STATE', 'GITHUB_STEP_SUMMARY'] as const;

/** Directories of `_temp` the runner itself reads from (file commands, hook responses). */
export const RUNNER_READ_DIRS = ['_runner_file_commands', '_runner_hook_responses'] as const;

function entryProblem(path: string): string | undefined {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return undefined;
  }
  if (st.isSymbolicLink()) return 'is a symbolic link';
  if (!st.isFile()) return 'is not a regular file';
  if (st.nlink > 1) return `is a hard link (${st.nlink} names)`;
  return undefined;
}

/**
 * After a step, before the runner reads anything back: each file command the step was given and
 * every entry of the directories the runner reads must be a regular file with one name, reached
 * without a link. An offending entry is removed (so the runner never reads through it) and named.
 */
export function checkRunnerReads(binds: BindMount[], work: string, env: Record<string, string>): string[] {
  const problems: string[] = [];
  const remove = (path: string, why: string, shown: string) => {
    problems.push(`${shown} ${why}; a step may not make the runner read through it: it was removed`);
    rmSync(path, { force: true, recursive: false });
  };
  const temp = posix.join(work, '_temp');
  // Each file command by its host path, so a problem names the variable the step was given.
  const named = new Map<string, string>();
  for (const v of FILE_COMMAND_VARS) {
    const host = env[v] ? hostPathOf(binds, env[v]!) : undefined;
    if (host) named.set(host, `${v} (${env[v]})`);
  }
  for (const dir of RUNNER_READ_DIRS) {
    const d = posix.join(temp, dir);
    let st;
    try {
      st = lstatSync(d);
    } catch {
      continue;
    }
    if (!st.isDirectory()) {
      problems.push(`/__w/_temp/${dir} ${st.isSymbolicLink() ? 'is a symbolic link' : 'is not a directory'}; it was removed`);
      unlinkSync(d);
      continue;
    }
    for (const name of readdirSync(d)) {
      const p = posix.join(d, name);
      const why = entryProblem(p);
      if (why) remove(p, why, named.get(p) ?? `/__w/_temp/${dir}/${name}`);
    }
  }
  for (const [host, shown] of named) {
    const dirWhy = bindSourceProblem(posix.dirname(host));
    if (dirWhy && !/does not exist/.test(dirWhy)) {
      problems.push(`the directory of ${shown} ${dirWhy}`);
      continue;
    }
    const why = entryProblem(host);
    if (why) remove(host, why, shown);
  }
  return problems;
}

/**
 * A runner run as root writes its files as root; steps write as the keep-id uid. The broker hands
 * what the runner wrote to that uid: the whole work directory once at prepare_job (but `_actions`,
 * read-only to steps), then before each step what the runner added to `_temp` (the step's script,
 * its file commands). Links are changed themselves, never followed (lchown).
 */
export function handOver(work: string, uid: number, o: { deep: boolean }): number {
  let changed = 0;
  const visit = (p: string, depth: number) => {
    let st;
    try {
      st = lstatSync(p);
    } catch {
      return;
    }
    if (st.uid === 0) {
      lchownSync(p, uid, uid);
      changed++;
    }
    if (!st.isDirectory() || (!o.deep && depth >= 1)) return;
    for (const name of readdirSync(p)) if (!(depth === 0 && p === work && name === '_actions')) visit(posix.join(p, name), depth + 1);
  };
  if (o.deep) visit(work, 0);
  else {
    const temp = posix.join(work, '_temp');
    visit(temp, 0);
    for (const d of [...RUNNER_READ_DIRS, '_github_home', '_github_workflow']) visit(posix.join(temp, d), 0);
  }
  return changed;
}
