import { readFileBeneath } from '../common';
import { evaluateValue, formatDiagnostic, hasExpression, interpolate, normalizeOn, parseWorkflowText, WORKFLOW_LIMITS, type JobModel, type JobStatus, type WorkflowModel } from '../workflow';
import type { JobResult, JobSettings, RunContext } from './types';

/**
 * GitHub's limits on reusable workflows (github.com): the caller and nine levels below it, and at
 * most 20 distinct reusable workflows in one tree
 * (https://docs.github.com/en/actions/how-tos/reuse-automations/reuse-workflows#nesting-reusable-workflows).
 */
export const MAX_WORKFLOW_DEPTH = 10;
export const MAX_CALLED_WORKFLOWS = 20;

/** What one run's tree of called workflows has used so far (shared by every level). */
export interface CallTree {
  depth: number;
  called: Set<string>;
}

interface CallSpec {
  inputs: Record<string, { type: string; required: boolean; default?: unknown }>;
  secrets: Record<string, { required: boolean }>;
  outputs: Record<string, string>;
}

/** `on.workflow_call` of a called workflow: what it takes and gives. */
function callSpec(wf: WorkflowModel): CallSpec {
  const on = normalizeOn(wf.on);
  if (!on.has('workflow_call')) throw new Error(`${wf.file} is not a reusable workflow: its on: has no workflow_call`);
  const cfg = (on.get('workflow_call') ?? {}) as Record<string, unknown>;
  const obj = (v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, Record<string, unknown> | null>) : {});
  const inputs: CallSpec['inputs'] = {};
  for (const [k, v] of Object.entries(obj(cfg.inputs))) inputs[k] = { type: String(v?.type ?? 'string'), required: v?.required === true, default: v?.default };
  const secrets: CallSpec['secrets'] = {};
  for (const [k, v] of Object.entries(obj(cfg.secrets))) secrets[k] = { required: v?.required === true };
  const outputs: CallSpec['outputs'] = {};
  for (const [k, v] of Object.entries(obj(cfg.outputs))) outputs[k] = String(v?.value ?? '');
  return { inputs, secrets, outputs };
}

/** Reads and parses the workflow `uses` names: from the run's own files, or a repository fetched at its commit. */
export async function loadCalledWorkflow(uses: string, settings: JobSettings): Promise<{ wf: WorkflowModel; key: string }> {
  let root: string;
  let path: string;
  let key: string;
  const local = /^\.\/(\.github\/workflows\/[^/]+\.ya?ml)$/.exec(uses);
  if (local) {
    root = settings.sourceDir;
    path = local[1]!;
    key = uses;
  } else {
    const m = /^([^/]+)\/([^/]+)\/(\.github\/workflows\/[^/@]+\.ya?ml)@(.+)$/.exec(uses);
    if (!m) throw new Error(`uses: '${uses}' is not ./.github/workflows/FILE.yml or OWNER/REPO/.github/workflows/FILE.yml@REF`);
    if (!settings.actionSource) throw new Error(`uses: ${uses}: this runner fetches nothing (offline mode): a workflow of another repository cannot be called`);
    const fetched = await settings.actionSource.fetch(m[1]!, m[2]!, m[4]!);
    root = fetched.dir;
    path = m[3]!;
    key = `${m[1]}/${m[2]}/${m[3]}@${fetched.sha}`;
  }
  const r = await readFileBeneath(root, path, WORKFLOW_LIMITS.maxFileBytes);
  if (!r.ok) throw new Error(`uses: ${uses}: ${r.missing ? 'no such workflow file' : r.error}`);
  const parsed = parseWorkflowText(path, r.text);
  const errors = parsed.diagnostics.filter((d) => d.severity === 'error');
  if (!parsed.value || errors.length) throw new Error(`uses: ${uses}: the called workflow is invalid:\n${errors.map(formatDiagnostic).join('\n')}`);
  return { wf: parsed.value, key };
}

/** The called workflow's `inputs`: `with:` evaluated, typed as declared, defaults applied; unknown or missing ones refused as GitHub refuses them. */
function callInputs(spec: CallSpec, job: JobModel, contexts: Record<string, unknown>, status: JobStatus): Record<string, unknown> {
  const given = job.call!.with;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(given)) if (!(k in spec.inputs)) throw new Error(`Invalid input, ${k} is not defined in the referenced workflow.`);
  for (const [name, decl] of Object.entries(spec.inputs)) {
    let v: unknown = name in given ? given[name] : decl.default;
    if (typeof v === 'string' && hasExpression(v)) v = name in given ? evaluateValue(v, contexts, status) : evaluateValue(v, { ...contexts }, status);
    if (v === undefined || v === null) {
      if (decl.required) throw new Error(`Input ${name} is required, but not provided while calling.`);
      v = decl.type === 'boolean' ? false : decl.type === 'number' ? 0 : '';
    }
    if (decl.type === 'boolean') {
      if (typeof v === 'string' && (v === 'true' || v === 'false')) v = v === 'true';
      if (typeof v !== 'boolean') throw new Error(`Input ${name}: Unexpected value '${String(v)}': a boolean is expected`);
    } else if (decl.type === 'number') {
      const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
      if (!Number.isFinite(n)) throw new Error(`Input ${name}: Unexpected value '${String(v)}': a number is expected`);
      v = n;
    } else if (typeof v !== 'string') {
      if (typeof v === 'object') throw new Error(`Input ${name}: Unexpected value: a string is expected`);
      v = String(v);
    }
    out[name] = v;
  }
  return out;
}

/** The secrets the called workflow sees: all of the caller's (`inherit`), or those passed; GITHUB_TOKEN always. */
function callSecrets(spec: CallSpec, job: JobModel, ctx: RunContext, contexts: Record<string, unknown>, status: JobStatus): Record<string, string> {
  const s = job.call!.secrets;
  const out: Record<string, string> = {};
  if (s === 'inherit') Object.assign(out, ctx.secrets);
  else {
    for (const [k, v] of Object.entries(s)) {
      if (!(k in spec.secrets)) throw new Error(`Invalid secret, ${k} is not defined in the referenced workflow.`);
      out[k] = interpolate(v, contexts, status);
    }
  }
  for (const [k, d] of Object.entries(spec.secrets)) if (d.required && !(k in out)) throw new Error(`Secret ${k} is required, but not provided while calling.`);
  if (ctx.secrets.GITHUB_TOKEN !== undefined) out.GITHUB_TOKEN = ctx.secrets.GITHUB_TOKEN;
  return out;
}

export type RunWorkflowFn = (wf: WorkflowModel, jobs: JobModel[], ctx: RunContext, tree: CallTree) => Promise<JobResult[]>;

/**
 * Runs the workflow a job calls, as GitHub does: its jobs see the caller's event and `github`,
 * the inputs and secrets the caller passed; the caller job's result is the called jobs' together
 * and its outputs are the called workflow's `on.workflow_call.outputs`.
 */
export async function runCalledWorkflow(
  job: JobModel,
  name: string,
  ctx: RunContext,
  settings: JobSettings,
  contexts: Record<string, unknown>,
  status: JobStatus,
  tree: CallTree,
  run: RunWorkflowFn,
): Promise<{ called: JobResult[]; outputs: Record<string, string> }> {
  if (tree.depth + 1 >= MAX_WORKFLOW_DEPTH) throw new Error(`jobs.${job.id}.uses: reusable workflows nest at most ${MAX_WORKFLOW_DEPTH} levels deep (the caller included)`);
  const { wf, key } = await loadCalledWorkflow(job.call!.uses, settings);
  tree.called.add(key);
  if (tree.called.size > MAX_CALLED_WORKFLOWS) throw new Error(`a workflow may call at most ${MAX_CALLED_WORKFLOWS} distinct reusable workflows (its whole tree included)`);
  const spec = callSpec(wf);
  const inputs = callInputs(spec, job, contexts, status);
  const secrets = callSecrets(spec, job, ctx, contexts, status);
  const child: RunContext = { ...ctx, inputs, secrets };
  const results = await run(wf, wf.jobs, child, { depth: tree.depth + 1, called: tree.called });
  const called = results.map((r) => ({ ...r, name: `${name} / ${r.name}` }));
  // `jobs.<id>.outputs` and `.result` of the called workflow's jobs, for its outputs' values.
  const jobsCtx: Record<string, { result: string; outputs: Record<string, string> }> = {};
  for (const r of results) {
    const prev = jobsCtx[r.id];
    jobsCtx[r.id] = { result: prev && prev.result !== 'success' ? prev.result : r.conclusion, outputs: { ...(prev?.outputs ?? {}), ...r.outputs } };
  }
  const ok: JobStatus = { success: () => true, failure: () => false, cancelled: () => false };
  const outputs: Record<string, string> = {};
  for (const [k, v] of Object.entries(spec.outputs)) outputs[k] = interpolate(v, { ...contexts, inputs, jobs: jobsCtx }, ok);
  return { called, outputs };
}
