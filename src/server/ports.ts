import type { Readable } from 'node:stream';
import type { CheckRunFields, DeliverySummary } from '../github';
import type { RunnerSummary } from '../runner';

/** The GitHub calls the server makes (GitHubApi is the adapter; tests point it at a fake GitHub). */
export interface GitHubPort {
  getWorkflowRun(installationId: number, owner: string, repo: string, runId: number): Promise<{ path: string; event: string; headSha: string; runNumber: number; runAttempt: number; actor: string; fromFork: boolean }>;
  getFileText(installationId: number, owner: string, repo: string, path: string, ref: string): Promise<string>;
  /** A directory's entries at `ref` (type file, dir, symlink or submodule; size in bytes); [] when there is none. */
  listDirectory(installationId: number, owner: string, repo: string, path: string, ref: string): Promise<Array<{ name: string; path: string; type: string; size: number }>>;
  /** A stream of the gzipped archive: read under the extraction's limits, never buffered whole. */
  downloadTarball(installationId: number, owner: string, repo: string, ref: string): Promise<Readable>;
  createCheckRun(installationId: number, owner: string, repo: string, fields: CheckRunFields & { name: string; head_sha: string }): Promise<number>;
  findCheckRun(installationId: number, owner: string, repo: string, sha: string, name: string, externalId: string): Promise<number | undefined>;
  updateCheckRun(installationId: number, owner: string, repo: string, checkRunId: number, fields: CheckRunFields): Promise<void>;
  cancelWorkflowRun(installationId: number, owner: string, repo: string, runId: number): Promise<void>;
  /** A job's GITHUB_TOKEN: an installation token for that repository only, with these permissions. */
  createJobToken(installationId: number, owner: string, repo: string, permissions: Record<string, 'read' | 'write'>): Promise<{ token: string; dropped: string[] }>;
  revokeToken(token: string): Promise<void>;
  /** The Actions variables a workflow of the repository sees (`vars`): the repository's over its organisation's. */
  listVariables(installationId: number, owner: string, repo: string): Promise<Record<string, string>>;
  generateJitConfig(installationId: number, owner: string, repo: string, o: { name: string; labels: string[]; runnerGroupId?: number }): Promise<{ runnerId: number; encodedJitConfig: string }>;
  runnerBusy(installationId: number, owner: string, repo: string, runnerId: number): Promise<boolean | undefined>;
  deleteRunner(installationId: number, owner: string, repo: string, runnerId: number): Promise<void>;
  listDeliveries(perPage?: number): Promise<DeliverySummary[]>;
  getDelivery(id: number): Promise<{ guid: string; event: string; payload: unknown }>;
}

/** What runner mode needs of the hook broker this server runs (wired by the CLI; the server does not import the hook). */
export interface RunnerHost {
  /** Removes whatever of the runner directory's hook jobs is left and returns what Stockade saw of them. */
  finishRunner(root: string): Promise<RunnerSummary>;
}
