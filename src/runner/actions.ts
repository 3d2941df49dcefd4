import { existsSync } from 'node:fs';
import { readFileBeneath } from '../common';
import { join, posix } from 'node:path';
import { copyTreeIntoVolume, readVolumePath } from '../sandbox';
import { evaluateCondition, formatDiagnostic, interpolate, parseActionText, type ActionModel } from '../workflow';
import { JOB_PATHS } from './job-paths';
import { NODE_EXTERNALS, nodeVolumeFor } from './externals-volumes';
export { NODE_EXTERNALS } from './externals-volumes';
import { actionPolicyRefusal } from './action-policy';
import { runDockerAction } from './docker-action';
import { LogSink } from './step-log';
import { executeStep, scopeStatus, stepContexts, toResult } from './run-step';
import { runScript } from './run-script';
import type { Executed, Scope, StepDeps, StepRun, UsesRunner } from './step-types';

/** GitHub's limit on composite actions nested in each other. */
export const MAX_COMPOSITE_DEPTH = 10;
/** Where actions copied from the offline cache appear in step containers. */
const ACTIONS_DIR = '/__w/_actions';

export type ResolvedAction = { kind: 'checkout' } | { kind: 'action'; model: ActionModel; dir: string; repository: string; ref: string; hostDir: string; hostRoot: string };

const REMOTE = /^([A-Za-z0-9][A-Za-z0-9_.-]*)\/([A-Za-z0-9_.-]+)((?:\/[A-Za-z0-9_.-]+)*)@([A-Za-z0-9_.\/-]+)$/;

/** `owner/repo[/path]@ref` → its parts, or undefined for any other form. */
export function parseRemoteUses(uses: string): { owner: string; repo: string; path: string; ref: string } | undefined {
  const m = REMOTE.exec(uses);
  if (!m) return undefined;
  const parts = [m[1]!, m[2]!, ...m[3]!.split('/').filter(Boolean), ...m[4]!.split('/')];
  if (parts.some((p) => p === '.' || p === '..')) return undefined;
  return { owner: m[1]!, repo: m[2]!, path: m[3]!.replace(/^\//, ''), ref: m[4]! };
}

export const isCheckout = (uses: string) => /^actions\/checkout@/.test(uses);

/** Host directory of a cached remote action, or an error naming where it was looked for. */
export function cachedActionDir(cacheDir: string | undefined, uses: string): { dir: string } | { error: string } {
  const r = parseRemoteUses(uses);
  if (!r) return { error: `uses: '${uses}' is not of the form owner/repo[/path]@ref` };
  const where = cacheDir ? join(cacheDir, r.owner, r.repo, r.ref) : undefined;
  if (!where || !existsSync(where)) {
    return {
      error: `uses: ${uses} is not available offline${where ? `: ${where} does not exist` : ''}; put a copy of the action in <action cache>/${r.owner}/${r.repo}/${r.ref} and pass --action-cache`,
    };
  }
  return { dir: where };
}

function parseMetadata(file: string, text: string): ActionModel {
  const parsed = parseActionText(file, text);
  if (!parsed.value) throw new Error(`invalid action metadata:\n${parsed.diagnostics.map(formatDiagnostic).join('\n')}`);
  return parsed.value;
}

/** Largest action.yml read (GitHub's runner has no documented limit; workflows get 512 KiB). */
const MAX_ACTION_METADATA_BYTES = 512 * 1024;

/** action.yml (or .yaml) of an action's files, read without following any link, a regular file within 512 KiB. */
async function readActionMetadata(root: string, path: string, uses: string): Promise<ActionModel> {
  for (const name of ['action.yml', 'action.yaml']) {
    const rel = path ? `${path}/${name}` : name;
    const r = await readFileBeneath(root, rel, MAX_ACTION_METADATA_BYTES);
    if (r.ok) return parseMetadata(`${uses}/${name}`, r.text);
    if (!r.missing) throw new Error(`uses: ${uses}: ${r.error}`);
  }
  throw new Error(`uses: ${uses}: no action.yml or action.yaml in ${join(root, path)}`);
}

export async function resolveAction(deps: StepDeps, run: StepRun, uses: string): Promise<ResolvedAction> {
  if (isCheckout(uses)) return { kind: 'checkout' };
  // `uses: docker://IMAGE`: the image itself is the action; with.entrypoint and with.args say how it runs.
  if (uses.startsWith('docker://')) return { kind: 'action', model: { name: uses, inputs: {}, outputs: {}, runs: { using: 'docker', image: uses, args: [], env: {} } }, dir: '', repository: '', ref: '', hostDir: '', hostRoot: '' };
  if (uses.startsWith('./') || uses === '.') {
    const rel = posix.normalize(uses);
    if (rel.startsWith('../')) throw new Error(`uses: ${uses} leaves the workspace`);
    for (const name of ['action.yml', 'action.yaml']) {
      const r = await readVolumePath(run.volumes.mountpoint.workspace, posix.join(rel, name), 1024 * 1024);
      if (!r.ok) throw new Error(`uses: ${uses}: ${r.error}`);
      if (r.text) return { kind: 'action', model: parseMetadata(posix.join(rel, name), r.text), dir: posix.join(JOB_PATHS.workspace, rel), repository: run.ctx.repository, ref: '', hostDir: join(run.volumes.mountpoint.workspace, rel), hostRoot: run.volumes.mountpoint.workspace };
    }
    throw new Error(`uses: ${uses}: no action.yml or action.yaml in ${rel} of the workspace (did a checkout step run?)`);
  }
  const cached = run.state.actions.get(uses) as ResolvedAction | undefined;
  if (cached) return cached;
  const r = parseRemoteUses(uses);
  if (!r) throw new Error(`uses: '${uses}' is not of the form owner/repo[/path]@ref`);
  const refused = actionPolicyRefusal(r, run.settings.actionPolicy);
  if (refused) throw new Error(refused);
  const found = await findAction(run, uses, r);
  const model = await readActionMetadata(found.dir, r.path, uses);
  // A fresh volume holds the copy: nothing a step wrote can redirect the copy, and steps mount it read-only.
  const volume = `stockade-${run.volumes.key}-a${run.state.actions.size + 1}`;
  const { mountpoint } = await deps.sandbox.deps.engine.createVolume(volume, run.volumes.labels);
  run.state.extraVolumes.push(volume);
  await copyTreeIntoVolume(found.dir, mountpoint, run.volumes.owner);
  const target = posix.join(ACTIONS_DIR, r.owner, r.repo, r.ref);
  run.state.extraMounts.push({ volume, target, readOnly: true });
  const resolved: ResolvedAction = { kind: 'action', model, dir: posix.join(target, r.path), repository: `${r.owner}/${r.repo}`, ref: r.ref, hostDir: join(mountpoint, r.path), hostRoot: mountpoint };
  run.state.actions.set(uses, resolved);
  return resolved;
}

/** The offline cache's copy first (the layout operators fill by hand), else the action fetched at its commit. */
async function findAction(run: StepRun, uses: string, r: { owner: string; repo: string; ref: string }): Promise<{ dir: string }> {
  const offline = cachedActionDir(run.settings.actionCacheDir, uses);
  const repoUses = `${r.owner}/${r.repo}@${r.ref}`;
  const note = (u: import('./types').ActionUsed) => {
    if (!run.state.actionsUsed.some((x) => x.uses === u.uses)) run.state.actionsUsed.push(u);
  };
  if ('dir' in offline) {
    note({ uses: repoUses, source: 'offline' });
    return offline;
  }
  if (!run.settings.actionSource) throw new Error(offline.error);
  const fetched = await run.settings.actionSource.fetch(r.owner, r.repo, r.ref);
  note({ uses: repoUses, sha: fetched.sha, source: 'fetched' });
  return { dir: fetched.dir };
}

export async function ensureNode(deps: StepDeps, run: StepRun): Promise<void> {
  if (run.state.extraMounts.some((m) => m.target === NODE_EXTERNALS)) return;
  run.state.extraMounts.push({ volume: await nodeVolumeFor(deps.sandbox, run.settings.nodeBinary), target: NODE_EXTERNALS, readOnly: true });
}

/** Inputs of an action: `with:` values over evaluated defaults; unknown and missing inputs are warned about, as GitHub does. */
export function actionInputs(model: ActionModel, withValues: Record<string, string>, contexts: Record<string, unknown>, status: ReturnType<typeof scopeStatus>, sink: LogSink): Record<string, string> {
  const inputs: Record<string, string> = {};
  for (const [k, i] of Object.entries(model.inputs)) if (i.default !== undefined) inputs[k] = interpolate(i.default, contexts, status);
  const unexpected = Object.keys(withValues).filter((k) => !(k in model.inputs));
  if (unexpected.length) {
    const msg = `Unexpected input(s) '${unexpected.join("', '")}', valid inputs are ['${Object.keys(model.inputs).join("', '")}']`;
    sink.write('stdout', `##[warning]${msg}`);
    sink.annotate({ level: 'warning', message: msg });
  }
  Object.assign(inputs, withValues);
  for (const [k, i] of Object.entries(model.inputs)) {
    if (i.required && !(k in withValues) && i.default === undefined) sink.write('stdout', `##[warning]Input required and not supplied: ${k}`);
  }
  return inputs;
}

/** `with.args` of a `docker://` step as the runner splits it: on spaces, with double quotes grouping. */
function splitArgs(text: string): string[] {
  return [...text.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!);
}

export function inputEnv(inputs: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(inputs).map(([k, v]) => [`INPUT_${k.replace(/ /g, '_').toUpperCase()}`, v]));
}

function stateEnv(state: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(state).map(([k, v]) => [`STATE_${k}`, v]));
}

export const nothing = (): Executed => ({ outcome: 'success', exitCode: 0, reason: 'exit', outputs: {}, durationMs: 0, peakMemoryBytes: 0, cpuSeconds: 0 });

/** Runs a `uses:` step: the built-in checkout, a composite action, or a JavaScript action. */
export const runUses: UsesRunner = async (deps, run, scope, step, env, contexts, sink, deadline) => {
  const uses = step.uses!;
  const resolved = await resolveAction(deps, run, uses);
  if (resolved.kind === 'checkout') {
    sink.write('stdout', `[stockade] ${uses}: the workspace already holds the repository at ${run.ctx.sha.slice(0, 12)}`);
    return nothing();
  }
  const status = scopeStatus(run, scope, deps.signal);
  const withValues = Object.fromEntries(Object.entries(step.with).map(([k, v]) => [k, interpolate(v, contexts, status)]));
  const inputs = actionInputs(resolved.model, withValues, contexts, status, sink);
  const runs = resolved.model.runs;
  if (runs.using === 'composite') {
    if (scope.depth >= MAX_COMPOSITE_DEPTH) throw new Error(`composite actions are nested more than ${MAX_COMPOSITE_DEPTH} deep`);
    const inner: Scope = { steps: {}, inputs, envBase: [env], defaults: [], status: { failed: false }, actionPath: resolved.dir, depth: scope.depth + 1, deadline, job: scope.job ?? scope };
    const total = nothing();
    for (const s of runs.steps) {
      const r = await executeStep(deps, run, inner, { ...s, index: step.index }, sink, runUses);
      const e = r.executed;
      const outcome = e?.outcome ?? 'skipped';
      const conclusion = outcome === 'failure' && r.continueOnError ? 'success' : outcome;
      if (e) {
        total.durationMs += e.durationMs;
        total.peakMemoryBytes = Math.max(total.peakMemoryBytes, e.peakMemoryBytes);
        total.cpuSeconds += e.cpuSeconds;
        if (e.outcome === 'failure' && e.error) sink.write('stderr', `##[error]${e.error}`);
        if (e.outcome !== 'success') {
          total.exitCode = e.exitCode;
          total.reason = e.reason;
        }
      }
      if (s.id) inner.steps[s.id] = { outputs: e?.outputs ?? {}, outcome, conclusion };
      if (conclusion === 'failure') inner.status.failed = true;
      if (outcome === 'cancelled') total.outcome = 'cancelled';
    }
    const outCtx = { ...stepContexts(run, inner), env };
    for (const [k, v] of Object.entries(resolved.model.outputs)) total.outputs[k] = interpolate(v, outCtx, scopeStatus(run, inner, deps.signal));
    if (inner.status.failed && total.outcome !== 'cancelled') {
      total.outcome = 'failure';
      if (total.reason === 'exit' && total.exitCode === 0) total.reason = 'error';
    }
    return total;
  }
  if (runs.using === 'docker') {
    // For `uses: docker://…` GitHub takes the entry point and arguments from with:.
    const docker = uses.startsWith('docker://') ? { ...runs, entrypoint: withValues.entrypoint || undefined, args: withValues.args ? splitArgs(withValues.args) : [] } : runs;
    const ins = uses.startsWith('docker://') ? Object.fromEntries(Object.entries(withValues).filter(([k]) => k !== 'args' && k !== 'entrypoint')) : inputs;
    return runDockerAction(deps, run, scope, step, { runs: docker, hostDir: resolved.hostDir, hostRoot: resolved.hostRoot }, ins, inputEnv(ins), env, contexts, sink, deadline);
  }
  await ensureNode(deps, run);
  const actionScope: Scope = { ...scope, actionPath: resolved.dir };
  const node = `${NODE_EXTERNALS}/bin/node`;
  // A pre step ran only for the job's own steps (never inside a composite action).
  const pre = scope.depth === 0 ? (run.state.preState.get(step.index) ?? {}) : {};
  const extraEnv = { ...inputEnv(inputs), GITHUB_ACTION_REPOSITORY: resolved.repository, GITHUB_ACTION_REF: resolved.ref, ...stateEnv(pre) };
  const e = await runScript(deps, run, actionScope, sink, {
    label: String(step.index),
    actionId: step.id ?? `__${uses.replace(/[^A-Za-z0-9_]/g, '_')}`,
    argv: () => [node, posix.join(resolved.dir, runs.main)],
    env,
    extraEnv,
    workdir: JOB_PATHS.workspace,
    deadline,
  });
  // Post steps of the job's actions and of actions inside composite ones: at the job's end, in reverse order.
  if (runs.post) {
    const saved = { ...pre, ...e.state };
    const postName = `Post ${step.name ?? uses}`;
    run.state.post.push({
      name: postName,
      run: async () => {
        const postSink = new LogSink(run.state.masker, (stream, text) => deps.observer?.line?.(run.job.id, postName, stream, text));
        // post-if sees the job's status then (a composite's own flag says only what its steps did).
        const jobScope = scope.job ?? scope;
        const st = scopeStatus(run, jobScope, deps.signal);
        if (!evaluateCondition(runs.postIf ?? 'always()', { ...stepContexts(run, scope), env }, st)) return toResult(run, step.index, undefined, postName, postSink, undefined, false);
        deps.observer?.stepStarted?.(run.job.id, { index: step.index, name: postName });
        const pe = await runScript(deps, run, actionScope, postSink, {
          label: `post-${step.index}`,
          actionId: step.id ?? `__${uses.replace(/[^A-Za-z0-9_]/g, '_')}`,
          argv: () => [node, posix.join(resolved.dir, runs.post!)],
          env,
          extraEnv: { ...extraEnv, ...stateEnv(saved) },
          workdir: JOB_PATHS.workspace,
          deadline: run.deadline,
        });
        return toResult(run, step.index, undefined, postName, postSink, pe, false);
      },
    });
  }
  return e;
};
