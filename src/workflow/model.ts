/** A position in a workflow file, for diagnostics. */
export interface SourcePos {
  file: string;
  line: number;
  column: number;
}

export interface Diagnostic extends SourcePos {
  severity: 'error' | 'warning';
  message: string;
}

export interface RunDefaults {
  shell?: string;
  workingDirectory?: string;
}

/** A value as written: literal, or an expression string containing `${{ }}` evaluated at run time. */
export type Templated<T> = T | string;

export interface StepModel {
  /** 0-based position in the job. */
  index: number;
  /** `id:` as written; undefined when absent. */
  id?: string;
  name?: string;
  if?: string;
  run?: string;
  uses?: string;
  with: Record<string, string>;
  shell?: string;
  workingDirectory?: string;
  /** Where `working-directory` is written, when it is. */
  workingDirectoryPos?: SourcePos;
  env: Record<string, string>;
  timeoutMinutes?: Templated<number>;
  continueOnError: Templated<boolean>;
  pos: SourcePos;
}

/** `strategy:` as written; `matrix` may be an expression string (e.g. `${{ fromJSON(needs.a.outputs.m) }}`). */
export interface StrategyModel {
  matrix?: unknown;
  failFast: Templated<boolean>;
  maxParallel?: Templated<number>;
}

/** `container:` or one entry of `services:`. */
export interface ContainerModel {
  /** Where the container (or service) is declared. */
  pos?: SourcePos;
  image: string;
  env: Record<string, string>;
  options?: string;
  ports: string[];
  volumes: string[];
  credentials: boolean;
}

export interface JobModel {
  id: string;
  name?: string;
  needs: string[];
  if?: string;
  runsOn: unknown;
  env: Record<string, string>;
  defaults: RunDefaults;
  timeoutMinutes: Templated<number>;
  continueOnError: Templated<boolean>;
  outputs: Record<string, string>;
  strategy?: StrategyModel;
  container?: ContainerModel;
  services: Record<string, ContainerModel>;
  steps: StepModel[];
  /** A job that calls a reusable workflow (`jobs.<id>.uses`) instead of running steps. */
  call?: { uses: string; with: Record<string, unknown>; secrets: 'inherit' | Record<string, string> };
  /** `permissions:` of the job's GITHUB_TOKEN (over the workflow's). */
  permissions?: import('./permissions').Permissions;
  pos: SourcePos;
}

export interface WorkflowModel {
  file: string;
  name?: string;
  on: unknown;
  env: Record<string, string>;
  defaults: RunDefaults;
  permissions?: import('./permissions').Permissions;
  jobs: JobModel[];
}

export interface ParseResult {
  value?: WorkflowModel;
  diagnostics: Diagnostic[];
}
