/** REST and GraphQL endpoints of a GitHub API base: api.github.com, GitHub Enterprise Server's /api/v3, or anything else (a fake GitHub). */
export function githubApiUrls(rest: string): { rest: string; graphql: string } {
  const base = rest.replace(/\/+$/, '');
  if (/\/api\/v3$/.test(base)) return { rest: base, graphql: base.replace(/\/api\/v3$/, '/api/graphql') };
  return { rest: base, graphql: `${base}/graphql` };
}

/** The API of a server URL as GitHub names it: https://github.com → api.github.com, a GHES host → https://HOST/api/v3. */
export function githubApiOf(serverUrl: string): { rest: string; graphql: string } {
  return githubApiUrls(serverUrl === 'https://github.com' ? 'https://api.github.com' : `${serverUrl}/api/v3`);
}
