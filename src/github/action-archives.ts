import { Octokit } from '@octokit/rest';
import { retry } from '@octokit/plugin-retry';
import { Readable } from 'node:stream';

/** What fetching a remote action needs of GitHub: a ref resolved to its commit, and that commit's archive. */
export interface ActionArchiveApi {
  /** The full commit SHA `ref` (a branch, a tag, a short or full SHA) names in `owner/repo`. */
  resolveRef(owner: string, repo: string, ref: string): Promise<string>;
  /** The gzipped archive of the commit (one top-level directory), streamed. */
  tarball(owner: string, repo: string, sha: string): Promise<Readable>;
}

type Api = InstanceType<typeof Octokit>;

/** The two calls through an Octokit client (the App's installation client, or one with a user's token or none). */
export function archivesThrough(client: Api): ActionArchiveApi {
  return {
    async resolveRef(owner, repo, ref) {
      try {
        const r = await client.rest.repos.getCommit({ owner, repo, ref, per_page: 1 });
        if (!/^[0-9a-f]{40}$/.test(r.data.sha)) throw new Error(`GitHub answered no commit SHA for ${owner}/${repo}@${ref}`);
        return r.data.sha;
      } catch (e) {
        const status = (e as { status?: number }).status;
        if (status === 404 || status === 422) throw new Error(`${owner}/${repo}@${ref}: no such repository or ref on GitHub (${status})`);
        throw e;
      }
    },
    async tarball(owner, repo, sha) {
      const r = await client.rest.repos.downloadTarballArchive({ owner, repo, ref: sha, request: { parseSuccessResponseBody: false } });
      const body = r.data as unknown as import('node:stream/web').ReadableStream<Uint8Array> | null;
      return body ? Readable.fromWeb(body) : Readable.from([]);
    },
  };
}

/** Anonymous, or with a user's token: how `stockade run` and `stockade actions pull` reach GitHub. */
export function publicActionArchives(o: { baseUrl?: string; token?: string }): ActionArchiveApi {
  const Client = Octokit.plugin(retry);
  return archivesThrough(new Client({ baseUrl: o.baseUrl ?? 'https://api.github.com', userAgent: 'stockade', ...(o.token ? { auth: o.token } : {}), retry: { doNotRetry: [400, 401, 403, 404, 410, 422, 451] } }) as unknown as Api);
}
