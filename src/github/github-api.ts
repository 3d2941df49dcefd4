import { Octokit } from '@octokit/rest';
import { createAppAuth } from '@octokit/auth-app';
import { retry } from '@octokit/plugin-retry';
import { throttling } from '@octokit/plugin-throttling';
import { Readable } from 'node:stream';
import type { Logger } from '../common';
import { archivesThrough, type ActionArchiveApi } from './action-archives';

const Client = Octokit.plugin(retry, throttling);
type Client = InstanceType<typeof Client>;

export interface GitHubAppOptions {
  appId: string;
  /** PEM text of the App's private key (read from a file or the environment by the caller; never logged). */
  privateKey: string;
  /** @default https://api.github.com */
  baseUrl?: string;
  logger: Logger;
  /** Retries after a rate limit before the request fails (it is retried again by the job's report loop). @default 5 */
  maxRateLimitRetries?: number;
  /**
   * GitHub's recommended pacing (one write request per second, as Octokit's throttling plugin does).
   * Rate-limit answers are honoured either way. @default true
   */
  requestPacing?: boolean;
}

export interface CheckAnnotation {
  path: string;
  start_line: number;
  end_line: number;
  start_column?: number;
  end_column?: number;
  annotation_level: 'failure' | 'warning' | 'notice';
  message: string;
  title?: string;
}

export interface CheckRunOutput {
  title: string;
  summary: string;
  text?: string;
  annotations?: CheckAnnotation[];
}

export interface CheckRunFields {
  name?: string;
  head_sha?: string;
  status?: 'queued' | 'in_progress' | 'completed';
  conclusion?: 'success' | 'failure' | 'cancelled' | 'timed_out' | 'skipped' | 'neutral' | 'action_required';
  started_at?: string;
  completed_at?: string;
  external_id?: string;
  details_url?: string;
  output?: CheckRunOutput;
}

export interface DeliverySummary {
  id: number;
  guid: string;
  event: string;
  action: string | null;
  delivered_at: string;
  redelivery: boolean;
}

/**
 * All GitHub I/O of the server: App JWT and installation tokens (created, cached
 * and refreshed by @octokit/auth-app), rate limits (primary and secondary) with
 * back-off and retry by Octokit's throttling and retry plugins.
 */
export class GitHubApi {
  private readonly app: Client;
  private readonly installations = new Map<number, Client>();

  constructor(private readonly o: GitHubAppOptions) {
    this.app = this.client();
  }

  private client(installationId?: number): Client {
    const log = this.o.logger;
    const max = this.o.maxRateLimitRetries ?? 5;
    return new Client({
      baseUrl: this.o.baseUrl ?? 'https://api.github.com',
      authStrategy: createAppAuth,
      auth: { appId: this.o.appId, privateKey: this.o.privateKey, ...(installationId ? { installationId } : {}) },
      userAgent: 'stockade',
      log: { debug: () => undefined, info: () => undefined, warn: (m: string) => log.warn(m), error: (m: string) => log.error(m) },
      throttle: {
        enabled: this.o.requestPacing ?? true,
        onRateLimit: (after: number, options: { method: string; url: string }, _o: unknown, retryCount: number) => {
          log.warn({ after, url: options.url, retryCount }, 'GitHub rate limit; retrying');
          return retryCount < max;
        },
        onSecondaryRateLimit: (after: number, options: { method: string; url: string }, _o: unknown, retryCount: number) => {
          log.warn({ after, url: options.url, retryCount }, 'GitHub secondary rate limit; retrying');
          return retryCount < max;
        },
      },
      retry: { doNotRetry: [400, 401, 403, 404, 410, 422, 451] },
    });
  }

  private forInstallation(id: number): Client {
    let c = this.installations.get(id);
    if (!c) {
      c = this.client(id);
      this.installations.set(id, c);
    }
    return c;
  }

  async getWorkflowRun(installationId: number, owner: string, repo: string, runId: number): Promise<{ path: string; event: string; headSha: string; runNumber: number; runAttempt: number; actor: string; fromFork: boolean }> {
    const r = await this.forInstallation(installationId).rest.actions.getWorkflowRun({ owner, repo, run_id: runId });
    // Fails closed: a run whose head repository is unknown or gone (GitHub reports null once a fork is deleted) is a fork's.
    const head = r.data.head_repository;
    const fromFork = !head || head.id !== r.data.repository.id || head.full_name.toLowerCase() !== r.data.repository.full_name.toLowerCase();
    return { path: r.data.path, event: r.data.event, headSha: r.data.head_sha, runNumber: r.data.run_number, runAttempt: r.data.run_attempt ?? 1, actor: r.data.actor?.login ?? '', fromFork };
  }

  async getFileText(installationId: number, owner: string, repo: string, path: string, ref: string): Promise<string> {
    const r = await this.forInstallation(installationId).rest.repos.getContent({ owner, repo, path, ref });
    const d = r.data as { type?: string; content?: string; encoding?: string };
    if (Array.isArray(r.data) || d.type !== 'file' || typeof d.content !== 'string') throw new Error(`${owner}/${repo}:${path}@${ref} is not a file`);
    return Buffer.from(d.content, d.encoding === 'base64' ? 'base64' : 'utf8').toString('utf8');
  }

  /** The entries of a directory at `ref` (GitHub's contents API: file, dir, symlink, submodule); [] when it does not exist. */
  async listDirectory(installationId: number, owner: string, repo: string, path: string, ref: string): Promise<Array<{ name: string; path: string; type: string; size: number }>> {
    try {
      const r = await this.forInstallation(installationId).rest.repos.getContent({ owner, repo, path, ref });
      if (!Array.isArray(r.data)) throw new Error(`${owner}/${repo}:${path}@${ref} is not a directory`);
      return r.data.map((e) => ({ name: e.name, path: e.path, type: e.type, size: e.size }));
    } catch (e) {
      if ((e as { status?: number }).status === 404) return [];
      throw e;
    }
  }

  /**
   * The repository at `ref` as a gzipped tarball (GitHub's archive, one top-level directory),
   * as a stream: the caller counts and caps what it reads; nothing is buffered here.
   */
  async downloadTarball(installationId: number, owner: string, repo: string, ref: string): Promise<Readable> {
    const r = await this.forInstallation(installationId).rest.repos.downloadTarballArchive({ owner, repo, ref, request: { parseSuccessResponseBody: false } });
    const body = r.data as unknown as import('node:stream/web').ReadableStream<Uint8Array> | null;
    return body ? Readable.fromWeb(body) : Readable.from([]);
  }

  async createCheckRun(installationId: number, owner: string, repo: string, fields: CheckRunFields & { name: string; head_sha: string }): Promise<number> {
    const r = await this.forInstallation(installationId).rest.checks.create({ owner, repo, ...fields });
    return r.data.id;
  }

  /** The id of a check run on `sha` named `name` with `externalId`, if one exists (a crash may have left one unrecorded). */
  async findCheckRun(installationId: number, owner: string, repo: string, sha: string, name: string, externalId: string): Promise<number | undefined> {
    const r = await this.forInstallation(installationId).rest.checks.listForRef({ owner, repo, ref: sha, check_name: name, filter: 'all', per_page: 100 });
    return r.data.check_runs.find((c) => c.external_id === externalId)?.id;
  }

  async updateCheckRun(installationId: number, owner: string, repo: string, checkRunId: number, fields: CheckRunFields): Promise<void> {
    type UpdateParams = Parameters<Client['rest']['checks']['update']>[0];
    await this.forInstallation(installationId).rest.checks.update({ owner, repo, check_run_id: checkRunId, ...fields } as UpdateParams);
  }

  /**
   * A job's GITHUB_TOKEN: an installation token for one repository with exactly `permissions`
   * (GitHub refuses with 422 a permission the App was not granted).
   */
  async createJobToken(installationId: number, owner: string, repo: string, permissions: Record<string, 'read' | 'write'>): Promise<{ token: string; dropped: string[] }> {
    void owner;
    // GitHub refuses the whole token (422) for one permission the installation lacks: ask for what it has.
    const granted = await this.installationPermissions(installationId);
    const asked: Record<string, 'read' | 'write'> = {};
    const dropped: string[] = [];
    for (const [k, level] of Object.entries(permissions)) {
      const g = granted[k];
      if (g === 'write' || (g === 'read' && level === 'read')) asked[k] = level;
      else if (g === 'read') {
        asked[k] = 'read';
        dropped.push(`${k}: write (the App has read)`);
      } else dropped.push(`${k}: ${level} (the App has none)`);
    }
    const r = await this.app.rest.apps.createInstallationAccessToken({ installation_id: installationId, repositories: [repo], permissions: asked as never });
    return { token: r.data.token, dropped };
  }

  private readonly grants = new Map<number, { at: number; permissions: Record<string, string> }>();

  /** What the installation was granted (cached for a minute: an owner may change it). */
  private async installationPermissions(installationId: number): Promise<Record<string, string>> {
    const hit = this.grants.get(installationId);
    if (hit && Date.now() - hit.at < 60_000) return hit.permissions;
    const r = await this.app.rest.apps.getInstallation({ installation_id: installationId });
    const permissions = (r.data.permissions ?? {}) as Record<string, string>;
    this.grants.set(installationId, { at: Date.now(), permissions });
    return permissions;
  }

  /**
   * The repository's Actions variables over the organisation's ones it can see (GitHub's
   * precedence). A list the App may not read (no `variables` permission: 403, none: 404) is empty.
   */
  async listVariables(installationId: number, owner: string, repo: string): Promise<Record<string, string>> {
    const c = this.forInstallation(installationId);
    const read = async (f: () => Promise<Array<{ name: string; value: string }>>) => {
      try {
        return await f();
      } catch (e) {
        const status = (e as { status?: number }).status;
        if (status === 403 || status === 404) return [];
        throw e;
      }
    };
    const org = await read(() => c.paginate(c.rest.actions.listRepoOrganizationVariables, { owner, repo, per_page: 30 }));
    const own = await read(() => c.paginate(c.rest.actions.listRepoVariables, { owner, repo, per_page: 30 }));
    const out: Record<string, string> = {};
    for (const v of [...org, ...own]) out[v.name.toUpperCase()] = v.value;
    return out;
  }

  /** Revokes an installation token (the call is made with the token itself). */
  async revokeToken(token: string): Promise<void> {
    const c = new Client({ baseUrl: this.o.baseUrl ?? 'https://api.github.com', auth: token, userAgent: 'stockade', throttle: { enabled: false }, retry: { enabled: false } });
    await c.rest.apps.revokeInstallationAccessToken();
  }

  /** Remote actions fetched with the installation's token (its rate limit, its private repositories). */
  actionArchives(installationId: number): ActionArchiveApi {
    return archivesThrough(this.forInstallation(installationId) as never);
  }

  async cancelWorkflowRun(installationId: number, owner: string, repo: string, runId: number): Promise<void> {
    await this.forInstallation(installationId).rest.actions.cancelWorkflowRun({ owner, repo, run_id: runId });
  }

  /**
   * A just-in-time runner for one repository (documented REST: generate-jitconfig): it takes one job
   * of that repository and is gone. Group 1 is the default group.
   */
  async generateJitConfig(installationId: number, owner: string, repo: string, o: { name: string; labels: string[]; runnerGroupId?: number }): Promise<{ runnerId: number; encodedJitConfig: string }> {
    const r = await this.forInstallation(installationId).rest.actions.generateRunnerJitconfigForRepo({ owner, repo, name: o.name, labels: o.labels, runner_group_id: o.runnerGroupId ?? 1, work_folder: '_work' });
    return { runnerId: r.data.runner.id, encodedJitConfig: r.data.encoded_jit_config };
  }

  /** Whether a repository's runner is running a job now; undefined when GitHub no longer knows it. */
  async runnerBusy(installationId: number, owner: string, repo: string, runnerId: number): Promise<boolean | undefined> {
    try {
      const r = await this.forInstallation(installationId).rest.actions.getSelfHostedRunnerForRepo({ owner, repo, runner_id: runnerId });
      return r.data.busy;
    } catch (e) {
      if ((e as { status?: number }).status === 404) return undefined;
      throw e;
    }
  }

  /** Removes a repository's runner registration; one GitHub already removed (404) is fine. */
  async deleteRunner(installationId: number, owner: string, repo: string, runnerId: number): Promise<void> {
    try {
      await this.forInstallation(installationId).rest.actions.deleteSelfHostedRunnerFromRepo({ owner, repo, runner_id: runnerId });
    } catch (e) {
      if ((e as { status?: number }).status !== 404) throw e;
    }
  }

  /** Recent deliveries of the App's webhook (newest first). */
  async listDeliveries(perPage = 100): Promise<DeliverySummary[]> {
    const r = await this.app.rest.apps.listWebhookDeliveries({ per_page: perPage });
    return r.data as DeliverySummary[];
  }

  async getDelivery(id: number): Promise<{ guid: string; event: string; payload: unknown }> {
    const r = await this.app.rest.apps.getWebhookDelivery({ delivery_id: id });
    return { guid: r.data.guid, event: r.data.event, payload: r.data.request.payload };
  }
}
