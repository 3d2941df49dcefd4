import type { JobNetwork } from './job-network';
import type { Logger } from '../common';
import type { Sandbox, VolumeMount } from '../sandbox';
import type { JobModel, RunDefaults, SecretMasker, StepModel, WorkflowModel } from '../workflow';
import type { JobVolumes } from './job-volumes';
import type { LogSink } from './step-log';
import type { Conclusion, JobSettings, RunContext, RunObserver, StepResult } from './types';
import type { WarmStep } from './prewarm';

/** The shapes the step runner shares (run-step.ts, run-script.ts, actions and the job). */
export interface StepContext {
  outputs: Record<string, string>;
  outcome: Conclusion;
  conclusion: Conclusion;
}

/** A post step a JavaScript action registered; run at the end of the job, last registered first. */
export interface PostStep {
  name: string;
  run(): Promise<StepResult>;
}

/** What the steps of one job share. */
export interface JobState {
  /** Set through GITHUB_ENV. */
  env: Record<string, string>;
  /** Added through GITHUB_PATH. */
  path: string[];
  summary: string[];
  results: StepResult[];
  masker: SecretMasker;
  post: PostStep[];
  /** Volumes mounted into every later step (actions copied from the cache, the Node.js externals). */
  extraMounts: VolumeMount[];
  /** The next step's container, prepared while the current one runs (prewarm.ts). */
  warm?: WarmStep;
  /** The top-level step running is the job's last (no post step either): nothing is prepared behind it. */
  lastStep?: boolean;
  /** Removals of finished step containers, taken off the critical path; awaited before the job's volumes go. */
  pending: Promise<void>[];
  /** Removals not started yet: they start once the next step runs (prewarm.ts deferRemoval). */
  deferred?: { removals: Array<() => Promise<void>>; timer?: NodeJS.Timeout };
  /** Volumes created for the job besides the four standard ones; removed with the job. */
  extraVolumes: string[];
  /** Resolved `uses:` → where the action sits. */
  actions: Map<string, unknown>;
  /** Remote actions the job ran, in order of first use. */
  actionsUsed: import('./types').ActionUsed[];
  /** Step containers created so far (unique names). */
  containers: number;
  /** State a JavaScript action's pre step saved, by step index (STATE_* of its main and post). */
  preState: Map<number, Record<string, string>>;
  /** Per step container that sent something to an address with no route: blocked direct attempts. */
  noRoute: Array<{ step: string; attempts: number }>;
}

/** The steps a set of steps sees: the job's, or a composite action's own. */
export interface Scope {
  steps: Record<string, StepContext>;
  inputs: Record<string, unknown>;
  /** env maps below GITHUB_ENV and the step's own (workflow + job, or the composite step's). */
  envBase: Array<Record<string, string>>;
  defaults: RunDefaults[];
  /** Whether a step of this scope has failed (the job's flag for the job scope). */
  status: { failed: boolean };
  /** `github.action_path` (container path of the running action) or ''. */
  actionPath: string;
  /** Nesting of composite actions. */
  depth: number;
  deadline: number;
  /** The job's scope, when this is a composite action's (post steps run at the job's end, under its status). */
  job?: Scope;
}

export interface StepRun {
  wf: WorkflowModel;
  job: JobModel;
  ctx: RunContext;
  settings: JobSettings;
  /** The job's base contexts (github, needs, matrix, runner, …), computed once per job. */
  contexts: Record<string, unknown>;
  volumes: JobVolumes;
  state: JobState;
  /** Image the steps run in (the job's `container:` or the runner's). */
  image: string;
  /** `container.env` of the job. */
  containerEnv: Record<string, string>;
  /** When the job's timeout-minutes runs out (ms since the epoch). */
  deadline: number;
  /** The job's internal network when it has services or egress; steps otherwise have none. */
  net?: JobNetwork;
  /** The job's results service (caches, artifacts). */
  results?: import('./job-results').JobResults;
}

export interface StepDeps {
  sandbox: Sandbox;
  logger: Logger;
  observer?: RunObserver;
  signal?: AbortSignal;
}

/** Outcome of running a step's body, before it is turned into a result. */
export interface Executed {
  outcome: Conclusion;
  exitCode: number | null;
  reason: StepResult['reason'];
  error?: string;
  outputs: Record<string, string>;
  durationMs: number;
  peakMemoryBytes: number;
  cpuSeconds: number;
}

/** What a `uses:` step does once its inputs are evaluated (actions.ts supplies it). */
export type UsesRunner = (deps: StepDeps, run: StepRun, scope: Scope, step: StepModel, env: Record<string, string>, contexts: Record<string, unknown>, sink: LogSink, deadline: number) => Promise<Executed>;

