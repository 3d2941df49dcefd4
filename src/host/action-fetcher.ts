import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ActionArchiveApi } from '../github';
import { extractTarball, type TarballLimits } from './extract-tarball';

/** One fetched action: a commit of a repository, extracted once. */
export interface FetchedAction {
  owner: string;
  repo: string;
  sha: string;
  /** The refs it was fetched as (`v4`, `main`). */
  refs: string[];
  fetchedAt: number;
  usedAt: number;
  bytes: number;
  /** The extracted tree. */
  dir: string;
}

/** What an action archive may cost: far less than a repository's (GitHub's own actions are a few MiB). */
export const ACTION_TARBALL_LIMITS: Partial<TarballLimits> = { maxCompressedBytes: 100 * 1024 ** 2, maxExtractedBytes: 512 * 1024 ** 2, maxEntries: 50_000, maxMs: 120_000, reserveBytes: 1024 ** 3 };

const SHA = /^[0-9a-f]{40}$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

/**
 * The content-addressed cache of remote actions: `<dir>/<owner>/<repo>/<sha>/` holds the
 * commit's tree (extracted with the repository rules: no link followed, sizes capped) and a
 * record of the refs it was fetched as. A ref is resolved to its commit through GitHub's
 * API each time; a full SHA is a pin and is never looked up again once fetched.
 */
export class ActionFetcher {
  private readonly pending = new Map<string, Promise<FetchedAction>>();

  constructor(readonly dir: string, private readonly limits: Partial<TarballLimits> = ACTION_TARBALL_LIMITS) {}

  private entryDir(owner: string, repo: string, sha: string): string {
    if (!NAME.test(owner) || !NAME.test(repo) || owner.startsWith('.') || repo.startsWith('.')) throw new Error(`'${owner}/${repo}' is not a repository name`);
    if (!SHA.test(sha)) throw new Error(`'${sha}' is not a commit SHA`);
    return join(this.dir, owner.toLowerCase(), repo.toLowerCase(), sha);
  }

  /** The action at `ref`, fetched through `api` unless that commit is here already. */
  async fetch(api: ActionArchiveApi, owner: string, repo: string, ref: string): Promise<FetchedAction> {
    const sha = SHA.test(ref) ? ref : await api.resolveRef(owner, repo, ref);
    const where = this.entryDir(owner, repo, sha);
    const key = where;
    let p = this.pending.get(key);
    if (!p) {
      p = this.fetchCommit(api, owner, repo, sha, where).finally(() => this.pending.delete(key));
      this.pending.set(key, p);
    }
    const got = await p;
    return this.touch(got, ref);
  }

  private async fetchCommit(api: ActionArchiveApi, owner: string, repo: string, sha: string, where: string): Promise<FetchedAction> {
    const known = this.read(where);
    if (known) return known;
    const tmp = `${where}.part-${randomBytes(4).toString('hex')}`;
    mkdirSync(tmp, { recursive: true, mode: 0o755 });
    try {
      const extracted = await extractTarball(await api.tarball(owner, repo, sha), join(tmp, 'tree'), this.limits);
      const record: Omit<FetchedAction, 'dir'> = { owner, repo, sha, refs: [], fetchedAt: Date.now(), usedAt: Date.now(), bytes: extracted.bytes };
      writeFileSync(join(tmp, 'action.json'), JSON.stringify(record));
      rmSync(where, { recursive: true, force: true });
      renameSync(tmp, where);
      return { ...record, dir: join(where, 'tree') };
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw new Error(`${owner}/${repo}@${sha.slice(0, 12)} could not be fetched: ${(e as Error).message}`);
    }
  }

  private read(where: string): FetchedAction | undefined {
    const f = join(where, 'action.json');
    if (!existsSync(f)) return undefined;
    try {
      return { ...(JSON.parse(readFileSync(f, 'utf8')) as Omit<FetchedAction, 'dir'>), dir: join(where, 'tree') };
    } catch {
      return undefined;
    }
  }

  private touch(a: FetchedAction, ref: string): FetchedAction {
    const updated = { ...a, usedAt: Date.now(), refs: a.refs.includes(ref) || ref === a.sha ? a.refs : [...a.refs, ref].slice(-20) };
    const { dir: _dir, ...record } = updated;
    void _dir;
    writeFileSync(join(this.entryDir(a.owner, a.repo, a.sha), 'action.json'), JSON.stringify(record));
    return updated;
  }

  /** Every fetched action, newest use first. */
  list(): FetchedAction[] {
    const out: FetchedAction[] = [];
    if (!existsSync(this.dir)) return out;
    for (const owner of readdirSync(this.dir)) {
      for (const repo of safeList(join(this.dir, owner))) {
        for (const sha of safeList(join(this.dir, owner, repo))) {
          const a = SHA.test(sha) ? this.read(join(this.dir, owner, repo, sha)) : undefined;
          if (a) out.push(a);
        }
      }
    }
    return out.sort((a, b) => b.usedAt - a.usedAt);
  }

  /** Removes the actions not used for `unusedMs` (all with 0) and unfinished downloads; returns what it removed. */
  prune(unusedMs: number, now = Date.now()): FetchedAction[] {
    const gone = this.list().filter((a) => now - a.usedAt >= unusedMs);
    for (const a of gone) rmSync(this.entryDir(a.owner, a.repo, a.sha), { recursive: true, force: true });
    if (existsSync(this.dir)) {
      for (const owner of readdirSync(this.dir)) {
        for (const repo of safeList(join(this.dir, owner))) {
          for (const e of safeList(join(this.dir, owner, repo))) if (e.includes('.part-') && now - statSync(join(this.dir, owner, repo, e)).mtimeMs > 3600_000) rmSync(join(this.dir, owner, repo, e), { recursive: true, force: true });
        }
      }
    }
    return gone;
  }
}

function safeList(dir: string): string[] {
  try {
    return statSync(dir).isDirectory() ? readdirSync(dir) : [];
  } catch {
    return [];
  }
}
