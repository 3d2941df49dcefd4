import { limitExcerpts } from './excerpt';
import type { Diagnostic, SourcePos, StepModel } from './model';
import { WORKFLOW_LIMITS } from './limits';
import { toStep } from './parse-workflow';
import { parseStrictYaml } from './strict-yaml';

type Obj = Record<string, unknown>;

export interface ActionInput {
  default?: string;
  required: boolean;
  deprecationMessage?: string;
}

/** `action.yml` of a composite or JavaScript action. */
export interface ActionModel {
  name: string;
  inputs: Record<string, ActionInput>;
  /** Output name → `value:` expression (composite) or '' (JavaScript actions set outputs themselves). */
  outputs: Record<string, string>;
  runs:
    | { using: 'composite'; steps: StepModel[] }
    | { using: 'node'; version: string; main: string; pre?: string; post?: string; preIf?: string; postIf?: string }
    | DockerRuns;
}

/** `runs:` of a Docker container action (https://docs.github.com/en/actions/sharing-automations/creating-actions/metadata-syntax-for-github-actions#runs-for-docker-container-actions). */
export interface DockerRuns {
  using: 'docker';
  /** `Dockerfile` (a path in the action) or `docker://IMAGE`. */
  image: string;
  entrypoint?: string;
  args: string[];
  env: Record<string, string>;
  preEntrypoint?: string;
  postEntrypoint?: string;
  preIf?: string;
  postIf?: string;
}

const NODE_VERSIONS = ['node12', 'node16', 'node20', 'node24'];

/** Parses and checks `action.yml`; errors carry file, line and column like workflow errors. */
export function parseActionText(file: string, content: string): { value?: ActionModel; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const err = (pos: Omit<SourcePos, 'file'>, message: string) => diagnostics.push({ file, ...pos, severity: 'error', message: limitExcerpts(message) });
  const yaml = parseStrictYaml(file, content);
  if (yaml.diagnostics.length) return { diagnostics: yaml.diagnostics };
  const js = (yaml.js ?? {}) as Obj;
  const posOf = yaml.posOf;
  if (!js || typeof js !== 'object' || Array.isArray(js)) {
    err({ line: 1, column: 1 }, 'action metadata must be a mapping');
    return { diagnostics };
  }
  const inputs: Record<string, ActionInput> = {};
  for (const [k, v] of Object.entries((js.inputs ?? {}) as Obj)) {
    const i = (v ?? {}) as Obj;
    inputs[k] = {
      default: i.default === undefined || i.default === null ? undefined : String(i.default),
      required: i.required === true,
      deprecationMessage: typeof i.deprecationMessage === 'string' ? i.deprecationMessage : undefined,
    };
  }
  const outputs: Record<string, string> = {};
  for (const [k, v] of Object.entries((js.outputs ?? {}) as Obj)) {
    const val = (v as Obj | null)?.value;
    outputs[k] = val === undefined || val === null ? '' : String(val);
  }
  const runs = (js.runs ?? {}) as Obj;
  const using = String(runs.using ?? '');
  let runsModel: ActionModel['runs'] | undefined;
  if (using === 'composite') {
    const steps = Array.isArray(runs.steps) ? (runs.steps as Obj[]) : [];
    if (!Array.isArray(runs.steps)) err(posOf(['runs']), 'a composite action needs runs.steps');
    if (steps.length > WORKFLOW_LIMITS.maxStepsPerJob) err(posOf(['runs', 'steps']), `${steps.length} steps; the limit is ${WORKFLOW_LIMITS.maxStepsPerJob}`);
    const model = steps.slice(0, WORKFLOW_LIMITS.maxStepsPerJob).map((s, i) => {
      const pos = posOf(['runs', 'steps', i]);
      if (!s || typeof s !== 'object') {
        err(pos, 'a step must be a mapping');
        return undefined;
      }
      if (s.run === undefined && s.uses === undefined) err(pos, 'a composite step needs run or uses');
      if (s.run !== undefined && s.shell === undefined) err(pos, 'a composite run step needs shell (GitHub requires it in composite actions)');
      return toStep(s, i, pos, err);
    });
    runsModel = { using: 'composite', steps: model.filter((s): s is StepModel => !!s) };
  } else if (NODE_VERSIONS.includes(using)) {
    if (typeof runs.main !== 'string' || !runs.main) err(posOf(['runs']), `a ${using} action needs runs.main`);
    const str = (k: string) => (typeof runs[k] === 'string' ? (runs[k] as string) : undefined);
    runsModel = { using: 'node', version: using, main: str('main') ?? '', pre: str('pre'), post: str('post'), preIf: str('pre-if'), postIf: str('post-if') };
  } else if (using === 'docker') {
    const str = (k: string) => (typeof runs[k] === 'string' ? (runs[k] as string) : undefined);
    const image = str('image') ?? '';
    if (!image) err(posOf(['runs']), 'a docker action needs runs.image (a Dockerfile in the action, or docker://IMAGE)');
    const args = runs.args === undefined ? [] : Array.isArray(runs.args) ? runs.args.map((a) => String(a)) : undefined;
    if (!args) err(posOf(['runs', 'args']), 'runs.args must be a list');
    const env = runs.env && typeof runs.env === 'object' && !Array.isArray(runs.env) ? Object.fromEntries(Object.entries(runs.env as Obj).map(([k, v]) => [k, String(v)])) : {};
    runsModel = { using: 'docker', image, entrypoint: str('entrypoint'), args: args ?? [], env, preEntrypoint: str('pre-entrypoint'), postEntrypoint: str('post-entrypoint'), preIf: str('pre-if'), postIf: str('post-if') };
  } else {
    err(posOf(['runs', 'using']), `runs.using '${using}' is not one of composite, docker, ${NODE_VERSIONS.join(', ')}`);
  }
  if (diagnostics.length || !runsModel) return { diagnostics };
  return { value: { name: String(js.name ?? ''), inputs, outputs, runs: runsModel }, diagnostics };
}
