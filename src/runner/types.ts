import type { EgressEvent, EgressPolicy } from '../egress';
import type { ExitReason, ResourceLimits } from '../sandbox';
import type { Annotation } from '../workflow';

export type Conclusion = 'success' | 'failure' | 'cancelled' | 'skipped';

export interface StepResult {
  index: number;
  id?: string;
  name: string;
  /** Result after continue-on-error. */
  conclusion: Conclusion;
  /** Result before continue-on-error. */
  outcome: Conclusion;
  exitCode: number | null;
  reason: ExitReason | 'skipped' | 'error';
  durationMs: number;
  peakMemoryBytes: number;
  cpuSeconds: number;
  outputs: Record<string, string>;
  error?: string;
  /** From ::error/::warning/::notice:: and from the runner (failures), masked. */
  annotations: Annotation[];
  /** The step's log tail (masked, workflow commands processed). */
  log: string[];
  /** Lines before the tail that were not kept. */
  logDroppedLines: number;
}

export interface JobResult {
  id: string;
  name: string;
  /** Result after the job's continue-on-error. */
  conclusion: Conclusion;
  /** Result before continue-on-error. */
  outcome: Conclusion;
  /** The matrix combination of this instance (empty without a matrix). */
  matrix: Record<string, unknown>;
  outputs: Record<string, string>;
  steps: StepResult[];
  durationMs: number;
  summary: string;
  error?: string;
  /** What the job's egress sidecar allowed and blocked (jobs with egress only). */
  egress?: EgressReport;
  /** What the job wrote, against its disk limits (when they are in force). */
  disk?: import('../sandbox').DiskUsage;
  /** What the job's steps did with the results service (caches and artifacts), when it had one. */
  results?: ResultsReport;
  /** The remote actions the job ran, each with the commit it ran at (what ran, exactly). */
  actions?: ActionUsed[];
}

export interface ActionUsed {
  uses: string;
  /** The commit the ref resolved to; undefined for a copy in the offline cache (no commit known). */
  sha?: string;
  source: 'fetched' | 'offline';
}

/** Per-job counts of the results service. */
export interface ResultsReport {
  cacheHits: number;
  /** Restores that matched a restore key or a prefix, not the primary key. */
  cachePartialHits: number;
  cacheMisses: number;
  cachesSaved: number;
  cacheBytesSaved: number;
  cacheBytesRestored: number;
  artifactsUploaded: number;
  artifactBytesUploaded: number;
  artifactsDownloaded: number;
  /** Requests without the job's token or with a bad signed URL. */
  refused: number;
}

/** Per-job counts of what the sidecar allowed and refused. */
export interface EgressReport {
  dnsAllowed: number;
  dnsRefused: number;
  connectionsAllowed: number;
  connectionsRefused: number;
  bytesOut: number;
  /** The first refusals, described (for the log and the check-run summary). */
  refusals: string[];
  /**
   * Audit mode only: every name the job resolved or reached (sorted, at most 500), which is the
   * allowlist that would let the job run the same in enforce mode.
   */
  audited?: string[];
}


/** What is known about the repository and the event that triggered the run. */
export interface RunContext {
  repository: string;
  sha: string;
  ref: string;
  eventName: string;
  event: Record<string, unknown>;
  actor: string;
  runId: string;
  runNumber: number;
  runAttempt: number;
  workflowName: string;
  serverUrl: string;
  /** `secrets` context; every value is masked in logs and results. */
  secrets: Record<string, string>;
  /** `vars` context. */
  vars: Record<string, string>;
  /** `inputs` context (workflow_dispatch inputs, with the workflow's defaults applied). */
  inputs: Record<string, unknown>;
  /** Step debug logging (ACTIONS_STEP_DEBUG): `::debug::` lines are shown. */
  debug: boolean;
}

export interface JobSettings {
  image: string;
  limits: ResourceLimits;
  readOnlyRoot: boolean;
  /** Prepare the next step's container while the current step runs (runner/prewarm.ts). @default true */
  prewarm?: boolean;
  /** Directory copied into the job's workspace. */
  sourceDir: string;
  /** sourceDir is the job's own throw-away copy: hard-link it into the workspace instead of copying. @default false */
  disposableSource?: boolean;
  /** Directory holding remote actions as `<owner>/<repo>/<ref>/` (offline action cache); undefined: none. */
  actionCacheDir?: string;
  /**
   * Fetches a remote action the offline cache does not hold: its tree on the host and the
   * commit its ref resolved to. undefined: offline only.
   */
  actionSource?: { fetch(owner: string, repo: string, ref: string): Promise<{ dir: string; sha: string }> };
  /** argv that runs a command as the Podman user (the CLI's asRunner): with it, Dockerfile actions are built. */
  podmanUser?: (args: string[]) => [string, string[]];
  /** Which remote actions may run (SHA pins, owners). */
  actionPolicy?: import('./action-policy').ActionPolicy;
  /**
   * Bytes and inodes all of a job's volumes may use together, enforced by the kernel (a
   * filesystem of its own per job; root only). undefined: no disk limit (the Action without root).
   */
  disk?: import('../sandbox').DiskLimits;
  /** Which images `container:` and `services:` may name (Stockade's own always). @default DEFAULT_IMAGE_POLICY */
  imagePolicy?: import('./image-policy').ImagePolicy;
  /** Host Node.js binary copied (once) into the read-only externals volume for JavaScript actions. */
  nodeBinary?: string;
  /** Matrix jobs run at the same time (bounded further by strategy.max-parallel). @default 1 */
  parallelJobs: number;
  /** Only matrix combinations whose value of each key is one of these run (`--matrix key:value`, as in act). */
  matrixFilter?: Record<string, string[]>;
  /**
   * Runner images selectable by a `runs-on` label (`[self-hosted, stockade, python]`):
   * label → image reference. A job's `container:` wins; no such label: `image`.
   */
  images?: Record<string, string>;
  /**
   * Environment variables every step starts from, below the workflow's `env:` (`--env`, `--env-file`):
   * what a self-hosted runner's machine environment (its `.env` file) is on GitHub. Values are literal.
   */
  machineEnv?: Record<string, string>;
  /**
   * Called after the job's last step (post steps included, success or not) and before its volumes
   * go, with the workspace volume's host directory: the Action copies its `results` out here.
   * No step container runs while it is called. Its failure is logged, never thrown.
   */
  collectWorkspace?: (workspaceDir: string) => Promise<void>;
  /** Egress a job may have; undefined or an empty allowlist: no network at all. */
  egress?: EgressSettings;
  /**
   * The results service (caches and artifacts) every job gets: ACTIONS_RESULTS_URL and the
   * rest point at it. undefined: no service, and actions/cache and the artifact actions find none.
   */
  results?: import('./job-results').ResultsSettings;
  /**
   * A host directory in the tool-cache layout (`node/20.19.0/x64` plus `x64.complete`) copied
   * into each job's RUNNER_TOOL_CACHE: setup-node, setup-python and the like find their tools
   * there before they would download them (GitHub's hosted tool cache).
   */
  toolCacheDir?: string;
  /** Mints each job's GITHUB_TOKEN (app mode); without it `secrets.GITHUB_TOKEN` is whatever the run was given. */
  jobToken?: import('./job-token').JobTokenSource;
  /**
   * The GitHub API a GITHUB_TOKEN works against: steps reach it through the job's results
   * service (GITHUB_API_URL points there) with that token and no other.
   */
  githubApi?: { rest: string; graphql: string };
}

/** What the runner's administrator allows jobs to reach, and how the sidecar reaches it. */
export interface EgressSettings {
  /** The widest policy: a workflow may narrow `allow` (STOCKADE_EGRESS), never widen it. */
  policy: EgressPolicy;
  /** `ip[:port]` of the resolver the sidecar asks for allowlisted names. */
  upstreamDns: string;
  /** Host path of the bundled sidecar program (dist/sidecar.js). */
  sidecarScript: string;
  /** The host's own addresses: the sidecar never connects to them. */
  hostAddresses: string[];
}


export interface RunObserver {
  jobStarted?(jobId: string, name: string): void;
  stepStarted?(jobId: string, step: { index: number; name: string }): void;
  line?(jobId: string, stepName: string, stream: 'stdout' | 'stderr', text: string): void;
  stepFinished?(jobId: string, result: StepResult): void;
  jobFinished?(result: JobResult): void;
  /** Each event of a job's egress sidecar (DNS answers, connections, refusals). */
  egress?(jobId: string, event: EgressEvent): void;
}

/** What Stockade saw of the runner-mode jobs of one official runner (for its own check run). */
export interface RunnerSummary {
  jobs: number;
  steps: Array<{ exitCode: number | null; reason: string; durationMs: number; peakMemoryBytes: number }>;
  /** Refusals of the hook itself (a path, an image, a link the runner would have read). */
  refusals: string[];
  blockedNetworkAttempts: number;
  blocked: string[];
  /** The limits every step container had, as the job's log says them. */
  limits?: string;
}
