import { parsePermissions } from './permissions';
import { limitExcerpts } from './excerpt';
import { parseWorkflow as githubParseWorkflow, NoOperationTraceWriter } from '@actions/workflow-parser';
import type { ContainerModel, Diagnostic, JobModel, StrategyModel, ParseResult, RunDefaults, SourcePos, StepModel, WorkflowModel } from './model';
import { WORKFLOW_LIMITS } from './limits';
import { findNeedsCycle } from './needs-graph';
import { parseStrictYaml } from './strict-yaml';

type Obj = Record<string, unknown>;

/**
 * Untrusted workflow text → model + diagnostics. Never throws on bad input: every
 * problem is a diagnostic with file, line and column. Validation is GitHub's own
 * (`@actions/workflow-parser`), after a strict YAML pass (duplicate keys, aliases
 * capped, custom tags rejected) that GitHub's parser does not make.
 */
export function parseWorkflowText(file: string, content: string): ParseResult {
  const diagnostics: Diagnostic[] = [];
  const err = (pos: Omit<SourcePos, 'file'>, message: string) =>
    diagnostics.push({ file, ...pos, severity: 'error', message: limitExcerpts(message) });

  const yaml = parseStrictYaml(file, content);
  if (yaml.diagnostics.length) return { diagnostics: yaml.diagnostics };
  const js = yaml.js;

  const gh = githubParseWorkflow({ name: file, content }, new NoOperationTraceWriter());
  for (const e of gh.context.errors.getErrors()) {
    const start = e.range?.start;
    const message = e.rawMessage ?? e.message.replace(/^.*?\(Line: \d+, Col: \d+\): /, '');
    err({ line: start?.line ?? 1, column: start?.column ?? 1 }, message);
  }
  if (diagnostics.length) return { diagnostics };

  const value = toModel(file, js as Obj, yaml.posOf, err);
  return diagnostics.length ? { diagnostics } : { value, diagnostics };
}

function strMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v as Obj)) out[k] = scalar(x);
  }
  return out;
}

function scalar(x: unknown): string {
  if (x === null || x === undefined) return '';
  return typeof x === 'object' ? JSON.stringify(x) : String(x);
}

function defaultsOf(v: unknown): RunDefaults {
  const run = ((v as Obj | undefined)?.run ?? {}) as Obj;
  return {
    shell: run.shell === undefined ? undefined : scalar(run.shell),
    workingDirectory: run['working-directory'] === undefined ? undefined : scalar(run['working-directory']),
  };
}

function optString(v: unknown): string | undefined {
  return v === undefined || v === null ? undefined : scalar(v);
}

/** https://docs.github.com/en/actions/writing-workflows/workflow-syntax-for-github-actions#jobsjob_id */
const JOB_ID = /^[A-Za-z_][A-Za-z0-9_-]*$/;

export type Err = (pos: Omit<SourcePos, 'file'>, message: string) => void;

function toModel(file: string, js: Obj, posOf: (p: Array<string | number>) => SourcePos, err: Err): WorkflowModel {
  const jobsObj = (js.jobs ?? {}) as Obj;
  const ids = Object.keys(jobsObj);
  if (ids.length > WORKFLOW_LIMITS.maxJobs) err(posOf(['jobs']), `${ids.length} jobs; the limit is ${WORKFLOW_LIMITS.maxJobs}`);
  for (const id of ids) {
    // GitHub: "The <job_id> must start with a letter or _ and contain only alphanumeric characters, -, or _."
    if (!JOB_ID.test(id)) err(posOf(['jobs', id]), `job id '${id}' is not valid: it must start with a letter or _ and contain only letters, digits, - and _`);
  }
  const jobs: JobModel[] = ids.slice(0, WORKFLOW_LIMITS.maxJobs).map((id) => toJob(id, jobsObj[id] as Obj, posOf, err));
  for (const job of jobs) {
    for (const n of job.needs) {
      if (!ids.includes(n)) err(posOf(['jobs', job.id, 'needs']), `Job '${job.id}' depends on unknown job '${n}'.`);
    }
  }
  const cycle = findNeedsCycle(jobs);
  if (cycle) err(posOf(['jobs', cycle[0]!, 'needs']), `needs cycle: ${cycle.join(' -> ')}`);
  return {
    file,
    name: optString(js.name),
    on: js.on,
    env: strMap(js.env),
    defaults: defaultsOf(js.defaults),
    permissions: parsePermissions(js.permissions, posOf(['permissions']), err),
    jobs,
  };
}

function toJob(id: string, j: Obj, posOf: (p: Array<string | number>) => SourcePos, err: Err): JobModel {
  const stepsRaw = Array.isArray(j.steps) ? (j.steps as Obj[]) : [];
  if (stepsRaw.length > WORKFLOW_LIMITS.maxStepsPerJob) {
    err(posOf(['jobs', id, 'steps']), `job ${id} has ${stepsRaw.length} steps; the limit is ${WORKFLOW_LIMITS.maxStepsPerJob}`);
  }
  const call = callOf(id, j, posOf, err);
  const timeout = j['timeout-minutes'] ?? WORKFLOW_LIMITS.defaultJobTimeoutMinutes;
  checkTimeout(timeout, posOf(['jobs', id, 'timeout-minutes']), err);
  const needs = j.needs === undefined ? [] : Array.isArray(j.needs) ? j.needs.map(scalar) : [scalar(j.needs)];
  return {
    id,
    name: optString(j.name),
    needs,
    if: optString(j.if),
    runsOn: j['runs-on'],
    env: strMap(j.env),
    defaults: defaultsOf(j.defaults),
    timeoutMinutes: typeof timeout === 'number' ? timeout : scalar(timeout),
    continueOnError: typeof j['continue-on-error'] === 'boolean' ? j['continue-on-error'] : optString(j['continue-on-error']) ?? false,
    outputs: strMap(j.outputs),
    strategy: strategyOf(j.strategy),
    permissions: parsePermissions(j.permissions, posOf(['jobs', id, 'permissions']), err),
    ...(call ? { call } : {}),
    container: j.container === undefined ? undefined : { ...containerOf(j.container), pos: posOf(['jobs', id, 'container']) },
    services: Object.fromEntries(Object.entries((j.services ?? {}) as Obj).map(([k, v]) => [k, { ...containerOf(v), pos: posOf(['jobs', id, 'services', k]) }])),
    steps: stepsRaw.slice(0, WORKFLOW_LIMITS.maxStepsPerJob).map((s, index) => toStep(s, index, posOf(['jobs', id, 'steps', index]), err, s && typeof s === 'object' && 'working-directory' in s ? posOf(['jobs', id, 'steps', index, 'working-directory']) : undefined)),
    pos: posOf(['jobs', id]),
  };
}

/** `jobs.<id>.uses` (a reusable workflow), its `with:` and `secrets:`. */
function callOf(id: string, j: Obj, posOf: (p: Array<string | number>) => SourcePos, err: Err): JobModel['call'] {
  if (j.uses === undefined) return undefined;
  const uses = typeof j.uses === 'string' ? j.uses.trim() : '';
  const local = /^\.\/\.github\/workflows\/[^/]+\.ya?ml$/.test(uses);
  const remote = /^[A-Za-z0-9][A-Za-z0-9_.-]*\/[A-Za-z0-9_.-]+\/\.github\/workflows\/[^/@]+\.ya?ml@[A-Za-z0-9_.\/-]+$/.test(uses);
  if (!local && !remote) err(posOf(['jobs', id, 'uses']), `jobs.${id}.uses: '${uses}' is not ./.github/workflows/FILE.yml or OWNER/REPO/.github/workflows/FILE.yml@REF`);
  if (Array.isArray(j.steps)) err(posOf(['jobs', id, 'steps']), `job ${id} calls a reusable workflow and cannot have steps`);
  const w = j.with ?? {};
  if (typeof w !== 'object' || Array.isArray(w) || w === null) err(posOf(['jobs', id, 'with']), `jobs.${id}.with must be a mapping of inputs`);
  const sec = j.secrets;
  if (sec !== undefined && sec !== 'inherit' && (typeof sec !== 'object' || Array.isArray(sec) || sec === null)) err(posOf(['jobs', id, 'secrets']), `jobs.${id}.secrets must be 'inherit' or a mapping of secrets`);
  return {
    uses,
    with: typeof w === 'object' && w && !Array.isArray(w) ? (w as Record<string, unknown>) : {},
    secrets: sec === 'inherit' ? 'inherit' : sec && typeof sec === 'object' ? strMap(sec) : {},
  };
}

function strategyOf(v: unknown): StrategyModel | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return { matrix: v, failFast: true };
  const s = v as Obj;
  return {
    matrix: s.matrix,
    failFast: typeof s['fail-fast'] === 'boolean' ? s['fail-fast'] : optString(s['fail-fast']) ?? true,
    maxParallel: s['max-parallel'] === undefined ? undefined : typeof s['max-parallel'] === 'number' ? s['max-parallel'] : scalar(s['max-parallel']),
  };
}

function containerOf(v: unknown): ContainerModel {
  if (typeof v === 'string') return { image: v, env: {}, ports: [], volumes: [], credentials: false };
  const c = (v ?? {}) as Obj;
  return {
    image: scalar(c.image),
    env: strMap(c.env),
    options: optString(c.options),
    ports: Array.isArray(c.ports) ? c.ports.map(scalar) : [],
    volumes: Array.isArray(c.volumes) ? c.volumes.map(scalar) : [],
    credentials: c.credentials !== undefined,
  };
}

export function toStep(s: Obj, index: number, pos: SourcePos, err: Err, workingDirectoryPos?: SourcePos): StepModel {
  const timeout = s['timeout-minutes'];
  if (timeout !== undefined) checkTimeout(timeout, pos, err);
  return {
    index,
    id: optString(s.id),
    name: optString(s.name),
    if: optString(s.if),
    run: optString(s.run),
    uses: optString(s.uses),
    with: strMap(s.with),
    shell: optString(s.shell),
    workingDirectory: optString(s['working-directory']),
    ...(s['working-directory'] === undefined ? {} : { workingDirectoryPos: workingDirectoryPos ?? { ...pos } }),
    env: strMap(s.env),
    timeoutMinutes: timeout === undefined ? undefined : typeof timeout === 'number' ? timeout : scalar(timeout),
    continueOnError: typeof s['continue-on-error'] === 'boolean' ? s['continue-on-error'] : optString(s['continue-on-error']) ?? false,
    pos,
  };
}

function checkTimeout(v: unknown, pos: SourcePos, err: Err): void {
  if (typeof v !== 'number') return; // expressions are checked when evaluated
  if (!(v > 0) || v > WORKFLOW_LIMITS.maxTimeoutMinutes) {
    err(pos, `timeout-minutes ${v} is out of range; it must be above 0 and at most ${WORKFLOW_LIMITS.maxTimeoutMinutes}`);
  }
}
