/**
 * Every setting of `stockade serve`, once: its flag (also its key under `server:` in the config
 * file), type, default, environment variable and meaning. The parser, the config file's JSON Schema
 * (docs/config.schema.json), the README's table and the server all read this one table.
 */
export interface ServerSetting {
  /** The flag without `--`, and the key under `server:`. */
  key: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'list';
  default?: string | number | boolean;
  /** Environment variable that overrides the config file (a flag overrides both). */
  env?: string;
  min?: number;
  max?: number;
  enum?: readonly string[];
  description: string;
}

const envOf = (key: string) => `STOCKADE_${key.toUpperCase().replace(/-/g, '_')}`;

const S = (key: string, type: ServerSetting['type'], description: string, extra: Partial<ServerSetting> = {}): ServerSetting => ({ key, type, description, env: envOf(key), ...extra });

export const SERVER_SETTINGS: readonly ServerSetting[] = [
  S('app-id', 'string', 'The GitHub App\'s id (a number; a string in YAML or not).', { env: 'STOCKADE_APP_ID' }),
  S('private-key-file', 'string', 'The App\'s private key (PEM); STOCKADE_APP_PRIVATE_KEY may hold the key itself instead.'),
  S('webhook-secret-file', 'string', 'The webhook secret; STOCKADE_WEBHOOK_SECRET may hold the secret itself instead.'),
  S('port', 'integer', 'Port of the webhook listener (0: any free port).', { default: 8080, min: 0, max: 65535, env: 'STOCKADE_LISTEN_PORT' }),
  S('host', 'string', 'Address the webhook listener binds.', { default: '127.0.0.1', env: 'STOCKADE_LISTEN_HOST' }),
  S('tls-cert', 'string', 'PEM certificate chain: the webhook listener speaks HTTPS (with tls-key); plain HTTP otherwise, for a TLS proxy in front.'),
  S('tls-key', 'string', 'PEM private key of tls-cert (read once at start; mode 0600 recommended).'),
  S('public-url', 'string', 'URL the check runs\' details links use (default http://127.0.0.1:PORT).'),
  S('labels', 'list', 'runs-on labels this server takes workflow_job jobs for (the runner images\' names are added).', { default: 'self-hosted,linux,x64,stockade' }),
  S('concurrency', 'integer', 'Jobs at once on this host (default: what its CPUs and memory hold at the default limits).', { min: 1, max: 64 }),
  S('api-url', 'string', 'GitHub\'s REST API (GHES: https://HOST/api/v3).', { default: 'https://api.github.com', env: 'STOCKADE_GITHUB_API_URL' }),
  S('secrets-file', 'string', 'JSON file of per-repository secrets ({"owner/repo": {"NAME": "value"}}), re-read when it changes.'),
  S('action-cache', 'string', 'Offline action cache folder (owner/repo/ref layout).'),
  S('action-offline-mode', 'boolean', 'Never fetch actions: only the caches serve them.', { default: false }),
  S('require-sha-pins', 'boolean', 'Refuse remote actions not pinned to a full commit SHA.', { default: false }),
  S('allow-action-owner', 'list', 'Only actions of these owners run (empty: any owner).'),
  S('reconcile-seconds', 'integer', 'How often check runs and the queue are reconciled with GitHub (0: off).', { default: 60, min: 0, max: 86400 }),
  S('cancel-github-run', 'boolean', 'Cancelling a job also cancels its GitHub workflow run.', { default: false }),
  S('state-dir', 'string', 'Where the database, logs and work directories live (default <state>/server).', { env: 'STOCKADE_SERVER_STATE_DIR' }),
  S('no-request-pacing', 'boolean', 'Do not pace GitHub write requests (tests only).', { default: false }),
  S('modes', 'list', 'Which deliveries to act on: workflow_job, app.', { default: 'workflow_job,app' }),
  S('admin-port', 'integer', 'Port of the admin API (off when unset).', { min: 0, max: 65535 }),
  S('admin-host', 'string', 'Address the admin API binds.', { default: '127.0.0.1' }),
  S('burst-per-minute', 'integer', 'Jobs an organisation may start per minute before it waits.', { default: 120, min: 1, max: 100000 }),
  S('github-retry-seconds', 'number', 'First delay of a GitHub write that failed (doubles up to 10 min).', { default: 5, min: 0, max: 3600 }),
  S('github-give-up-seconds', 'number', 'A GitHub write still failing after this long is given up.', { default: 21600, min: 0, max: 2592000 }),
  S('disk', 'string', 'Disk each job may fill (its own filesystem), or off.', { default: '10g' }),
  S('inodes', 'integer', 'Files each job may create.', { default: 1000000, min: 1000, max: 100000000 }),
  S('results-dir', 'string', 'Where caches and artifacts are stored, or off (default <state>/results).'),
  S('tool-cache', 'string', 'A tool-cache folder copied into each job\'s RUNNER_TOOL_CACHE.'),
  S('cache-quota', 'string', 'Cache bytes per repository (least recently used evicted first).', { default: '10g' }),
  S('artifact-quota', 'string', 'Artifact bytes per repository (refused past it).', { default: '10g' }),
  S('job-retention', 'string', 'Finished jobs (and their deliveries) are kept this long; at least 14d (a late redelivery must still be recognised).', { default: '90d' }),
  S('log-retention', 'string', 'Finished jobs\' logs are kept this long (the result and step table stay).', { default: '30d' }),
  S('max-database-size', 'string', 'Past this size the oldest finished jobs\' logs, then the jobs, are removed first (hourly), or off.', { default: '1g' }),
  S('database', 'string', 'The queue\'s database: a postgres:// URL puts this host in a fleet sharing it (default: SQLite in the state directory). Keep a password in STOCKADE_DATABASE, not on the command line.'),
  S('host-id', 'string', 'This host\'s name in the fleet (a random suffix is added per process; default: the host name and PID).'),
  S('lease-seconds', 'integer', 'A claimed job is the host\'s while it renews this lease; a host silent this long loses its jobs to another.', { default: 30, min: 2, max: 3600 }),
  S('host-loss', 'string', 'A running job whose host stopped renewing its lease: fail it ("the runner host stopped") or requeue it (run at most twice).', { default: 'fail', enum: ['fail', 'requeue'] }),
  S('drain-seconds', 'integer', 'On SIGTERM: no more claims; running jobs may finish this long, then are handed back to the queue.', { default: 30, min: 0, max: 86400 }),
  S('mode', 'string', 'sandbox: Stockade runs workflow_job jobs itself; runner: GitHub\'s official runner does, Stockade is its container hook.', { default: 'sandbox', enum: ['sandbox', 'runner'], env: 'STOCKADE_SERVE_MODE' }),
  S('runner-install', 'string', 'Where GitHub\'s runner is installed (runner mode).'),
  S('runner-idle-timeout', 'string', 'A just-in-time runner given no job for this long is removed (runner mode).', { default: '10m' }),
  S('runner-poll', 'string', 'How often runner mode checks its runners.', { default: '5s' }),
  S('github-url', 'list', 'GitHub\'s web URL(s) whose endpoints a runner-mode job may reach (default https://github.com).'),
  S('no-github-egress', 'boolean', 'Runner mode: jobs reach no GitHub endpoint either.', { default: false }),
  S('allow-domain', 'list', 'Runner mode: names every job may reach besides GitHub\'s.'),
  S('upstream-dns', 'string', 'Resolver the egress sidecar asks (default: the first reachable nameserver of /etc/resolv.conf).'),
  S('permit-range', 'list', 'Address ranges carved out of the denied ones (a test\'s own network).'),
];

export type ServeValues = Record<string, string | boolean | string[] | undefined>;

/** The value as the CLI parser would give it: strings, booleans, lists for repeatable flags. */
function asFlagValue(s: ServerSetting, v: unknown, multiple: boolean): string | boolean | string[] {
  if (s.type === 'boolean') return v === true || v === 'true' || v === '1';
  if (s.type === 'list') {
    const items = Array.isArray(v) ? v.map(String) : String(v).split(',').map((x) => x.trim()).filter(Boolean);
    return multiple ? items : items.join(',');
  }
  return String(v);
}

/**
 * The serve options in force: a flag wins, then its environment variable, then the config file's
 * `server:` key, then the table's default. `multiple` names the repeatable flags.
 */
export function mergeServeValues(flags: ServeValues, env: NodeJS.ProcessEnv, file: Record<string, unknown> | undefined, multiple: ReadonlySet<string>, o: { defaults?: boolean } = {}): ServeValues {
  const out: ServeValues = { ...flags };
  for (const s of SERVER_SETTINGS) {
    if (out[s.key] !== undefined && !(Array.isArray(out[s.key]) && (out[s.key] as string[]).length === 0)) continue;
    const fromEnv = s.env ? env[s.env] : undefined;
    const raw = fromEnv !== undefined && fromEnv !== '' ? fromEnv : file?.[s.key] !== undefined ? file[s.key] : o.defaults === false ? undefined : s.default;
    if (raw !== undefined) out[s.key] = asFlagValue(s, raw, multiple.has(s.key));
  }
  return out;
}

/** The README's table of settings, generated from SERVER_SETTINGS. */
export function settingsTable(): string {
  const rows = SERVER_SETTINGS.map((s) => `| \`${s.key}\` | ${s.type}${s.enum ? ` (${s.enum.join(', ')})` : ''} | ${s.default === undefined ? '' : `\`${String(s.default)}\``} | ${s.env ? `\`${s.env}\`` : ''} | ${s.description.replace(/\|/g, '\\|')} |`);
  return ['| key / flag | type | default | environment | meaning |', '|---|---|---|---|---|', ...rows].join('\n');
}
