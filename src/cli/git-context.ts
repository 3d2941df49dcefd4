import { basename } from 'node:path';
import { tryExec } from './exec';

export interface GitFacts {
  sha: string;
  ref: string;
  repository: string;
  actor: string;
}

/** What `git` knows about a checkout; sensible stand-ins when it is not a repository. */
export async function gitFacts(dir: string): Promise<GitFacts> {
  const git = async (...args: string[]) => {
    const r = await tryExec('git', ['-C', dir, ...args]);
    return r.code === 0 ? r.stdout.trim() : '';
  };
  const url = await git('config', '--get', 'remote.origin.url');
  const m = /[:/]([^/:]+)\/([^/]+?)(?:\.git)?\/?$/.exec(url);
  return {
    sha: (await git('rev-parse', 'HEAD')) || '0'.repeat(40),
    ref: (await git('symbolic-ref', '-q', 'HEAD')) || 'refs/heads/main',
    repository: m ? `${m[1]}/${m[2]}` : `local/${basename(dir)}`,
    actor: (await git('config', '--get', 'user.name')) || 'stockade',
  };
}
