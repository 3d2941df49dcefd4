import { join } from 'node:path';
import { StockadeError } from '../common';
import { ActionFetcher, githubApiOf } from '../host';
import { publicActionArchives, type ActionArchiveApi } from '../github';
import type { ActionPolicy, JobSettings } from '../runner';

/** The flags of remote actions, shared by `stockade run`, `stockade serve` and `stockade actions`. */
export const REMOTE_ACTION_OPTIONS = {
  'action-offline-mode': { type: 'boolean' },
  'github-token': { type: 'string' },
  'require-sha-pins': { type: 'boolean' },
  'allow-action-owner': { type: 'string', multiple: true },
} as const;

/** The server fetches with its installations' tokens: no token flag. */
export const SERVE_REMOTE_ACTION_OPTIONS = {
  'action-offline-mode': REMOTE_ACTION_OPTIONS['action-offline-mode'],
  'require-sha-pins': REMOTE_ACTION_OPTIONS['require-sha-pins'],
  'allow-action-owner': REMOTE_ACTION_OPTIONS['allow-action-owner'],
} as const;

export const REMOTE_ACTION_USAGE = '[--action-offline-mode] [--github-token TOKEN] [--require-sha-pins] [--allow-action-owner OWNER]...';

type Values = { 'action-offline-mode'?: boolean; 'github-token'?: string; 'require-sha-pins'?: boolean; 'allow-action-owner'?: string[] };

/** `--require-sha-pins`, `--allow-action-owner`: undefined when neither is given. */
export function actionPolicyFrom(v: Values): ActionPolicy | undefined {
  const owners = v['allow-action-owner'];
  for (const o of owners ?? []) if (!/^([A-Za-z0-9][A-Za-z0-9-]{0,38}|\*)$/.test(o)) throw new StockadeError('USAGE', `--allow-action-owner '${o.slice(0, 60)}' is not a GitHub owner name`);
  if (!v['require-sha-pins'] && !owners) return undefined;
  return { requireShaPins: !!v['require-sha-pins'], allowedOwners: owners };
}

/** The host's cache of fetched actions. */
export function actionFetcher(stateDir: string): ActionFetcher {
  return new ActionFetcher(join(stateDir, 'actions'));
}

/**
 * How `stockade run` reaches GitHub for actions: the API of --github-instance (STOCKADE_GITHUB_API_URL
 * overrides it), with --github-token, GITHUB_TOKEN or the run's GITHUB_TOKEN secret, anonymous otherwise.
 */
export function localArchives(env: NodeJS.ProcessEnv, serverUrl: string, token: string | undefined): ActionArchiveApi {
  return publicActionArchives({ baseUrl: env.STOCKADE_GITHUB_API_URL ?? githubApiOf(serverUrl).rest, token });
}

/** The settings of remote actions for a local run: fetched (lazily, on first use) unless offline mode is asked for. */
export function localActionSettings(v: Values, env: NodeJS.ProcessEnv, serverUrl: string, secrets: Record<string, string>, stateDir: () => string): Pick<JobSettings, 'actionSource' | 'actionPolicy'> {
  const policy = actionPolicyFrom(v);
  if (v['action-offline-mode']) return { actionPolicy: policy };
  let fetcher: ActionFetcher | undefined;
  let api: ActionArchiveApi | undefined;
  return {
    actionPolicy: policy,
    actionSource: {
      fetch: (owner, repo, ref) => {
        fetcher ??= actionFetcher(stateDir());
        api ??= localArchives(env, serverUrl, v['github-token'] ?? env.GITHUB_TOKEN ?? secrets.GITHUB_TOKEN);
        return fetcher.fetch(api, owner, repo, ref);
      },
    },
  };
}
