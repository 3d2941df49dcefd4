/**
 * The names a runner-mode job may always reach: the GitHub endpoints the runner hands its steps
 * (ACTIONS_RESULTS_URL, ACTIONS_RUNTIME_URL, ACTIONS_ID_TOKEN_REQUEST_URL, ACTIONS_CACHE_URL, the API
 * and the server URL), taken from the broker's configuration, never from a step's environment (a step
 * can rewrite the environment of the next through GITHUB_ENV, so it must not widen the allowlist).
 * github.com: the server, its API, codeload, and the Actions services under *.actions.githubusercontent.com
 * (pipelines, results receiver, token service) plus *.githubusercontent.com (raw and release objects).
 * GitHub Enterprise Server: its one host (API at /api/v3, Actions services on the same name).
 */
export function githubEgressNames(serverUrl: string): string[] {
  let host: string;
  try {
    host = new URL(serverUrl).hostname.toLowerCase();
  } catch {
    throw new Error(`'${serverUrl}' is not a URL`);
  }
  if (!host) throw new Error(`'${serverUrl}' names no host`);
  if (host === 'github.com') return ['github.com', 'api.github.com', 'codeload.github.com', '*.actions.githubusercontent.com', '*.githubusercontent.com'];
  // GHE.com data residency: <sub>.ghe.com with api.<sub>.ghe.com and its own Actions names below it.
  if (host.endsWith('.ghe.com')) return [host, `*.${host}`];
  return [host];
}
