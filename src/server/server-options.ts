import type { BackoffPolicy } from '../queue';
import type { Logger } from '../common';
import type { EgressSettings, JobSettings } from '../runner';
import type { Sandbox } from '../sandbox';
import type { HostLossPolicy, Quota } from '../store';
import type { ExecuteDeps } from './execute-job';
import type { Priorities, RunnerMode, ServerStore } from './plan-delivery';
import type { GitHubPort } from './ports';
import type { JitRunners } from './jit-runners';

/** Everything `stockade serve` composes: the ports, the settings and the limits. */
export interface ServerOptions {
  store: ServerStore;
  github: GitHubPort;
  sandbox: Sandbox;
  logger: Logger;
  settings: Omit<JobSettings, 'sourceDir'>;
  webhookSecret: string;
  /** Labels of this runner (workflow_job mode). */
  labels: string[];
  /** Base URL of this server as GitHub users reach it (for log links). */
  publicUrl: string;
  /** Key of log-link signatures. */
  logKey: Buffer;
  workDir: string;
  secrets(repository: string): Record<string, string>;
  /** Jobs run at once. @default 2 */
  concurrency?: number;
  /** How often recent deliveries are re-read from GitHub; 0 turns it off. @default 60000 */
  reconcileIntervalMs?: number;
  /** Seconds between progress updates of a running check run. @default 5000 */
  progressIntervalMs?: number;
  /** Start order within a repository by kind of event. @default DEFAULT_PRIORITIES */
  priorities?: Priorities;
  /** Which deliveries start jobs. @default both */
  modes?: ReadonlySet<RunnerMode>;
  /** Cancel GitHub's own copy of the run after reporting (workflow_job mode). @default false */
  cancelGitHubRun?: boolean;
  /** Jobs admitted per installation per minute; more wait (stored, in order) until the window allows. @default 120 */
  burstPerMinute?: number;
  /** Quota defaults from the server's configuration; values set through the admin API win. */
  quotaDefaults?: (scope: string) => Quota;
  /** The widest egress of a repository's jobs (config `egress:`); undefined or an empty allowlist: no network. */
  egressFor?: (repository: string) => EgressSettings | undefined;
  /** Fetches remote actions with an installation's token (into the host's action cache); undefined: offline only. */
  fetchAction?: ExecuteDeps['fetchAction'];
  /** Port of the admin API, /metrics and /readyz (its own listener); undefined: no admin listener. */
  adminPort?: number;
  /** @default 127.0.0.1 */
  adminHost?: string;
  /** /readyz fails below this much free disk in the state directory. @default 1 GiB */
  minFreeDiskBytes?: number;
  /** @default 8080 */
  port?: number;
  /** Serve the webhook listener over HTTPS with this certificate chain and key (PEM). @default plain HTTP */
  tls?: { cert: string; key: string };
  host?: string;
  maxWebhookBytes?: number;
  /** Runner mode: each workflow_job runs on a just-in-time official runner with Stockade as its hook. */
  jit?: JitRunners;
  /** Retries of GitHub writes that fail (check-run creation, the final report), and when to give up. @default DEFAULT_BACKOFF */
  githubBackoff?: BackoffPolicy;
  /** This host's name in the fleet (leases, the hosts table); a fresh suffix per process. @default hostname/pid/random */
  hostId?: string;
  /** How long a claim holds a job without renewal before another host may take it over. @default 30000 */
  leaseMs?: number;
  /** A running job whose host stopped renewing: failed ("the runner host stopped") or queued again (at most twice). @default fail */
  hostLoss?: HostLossPolicy;
  /** On stop: how long running jobs may finish before they are handed back to the queue. @default 30000 */
  drainMs?: number;
  /** Starts the Podman API service again when it stops answering; undefined: something else does (systemd). */
  restartEngine?: () => Promise<void>;
  /** How often the Podman API service is checked. @default 2000 */
  engineCheckMs?: number;
}

