import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseOptions } from './parse-options';
import { createLogger, isStockadeError, StockadeError } from '../common';
import { since } from './progress';
import { completionScript, SHELLS, type CommandSpec, type Shell } from './completion';
import { doctorChecks, formatChecks } from './doctor';
import { runCommand, RUN_OPTIONS, RUN_USAGE } from './run-command';
import { setup } from './setup';
import { loadServerConfig, serveCommand, SERVE_OPTIONS, SERVE_USAGE } from './serve-command';
import { configSchema, settingsTable } from '../host';
import { pruneCommand, PRUNE_OPTIONS, PRUNE_USAGE } from './prune-command';
import { appCommand, APP_OPTIONS, APP_USAGE } from './app-create';
import { adminCommand, ADMIN_OPTIONS, ADMIN_USAGE } from './admin-commands';
import { imagesCommand, IMAGES_USAGE } from './images-command';
import { actionsCommand, ACTIONS_OPTIONS, ACTIONS_USAGE } from './actions-command';
import { hookBrokerCommand, HOOK_BROKER_OPTIONS, HOOK_BROKER_USAGE } from './hook-broker-command';

const SETUP_OPTIONS = { 'no-images': { type: 'boolean' }, runner: { type: 'boolean' }, systemd: { type: 'boolean' }, config: { type: 'string' } } as const;
const CONFIG_USAGE = `usage: stockade config check FILE     check a server config file (the schema, then its rules); exit 2 with file:line:col
       stockade config schema         print the config file's JSON Schema (docs/config.schema.json)
       stockade config settings       print every serve setting: key, type, default, environment variable`;
const COMPLETION_USAGE = `usage: stockade completion bash|zsh|fish
  Prints the completion script: source <(stockade completion bash), source <(stockade completion zsh),
  stockade completion fish | source.`;

/** Every command: its summary, its options (what commander parses and completion offers) and first words. */
const COMMANDS: CommandSpec[] = [
  { name: 'run', summary: "run a repository's workflow locally, one sandboxed container per step", options: RUN_OPTIONS, words: ['push', 'pull_request', 'pull_request_target', 'workflow_dispatch', 'workflow_call', 'schedule', 'release', 'merge_group'] },
  { name: 'serve', summary: 'the GitHub App server: webhooks in, jobs in the sandbox, check runs out', options: SERVE_OPTIONS },
  { name: 'quota', summary: 'set, get and list concurrency and minutes quotas (admin API)', options: ADMIN_OPTIONS, words: ['set', 'get', 'list'] },
  { name: 'queue', summary: 'what is queued and running, with wait times (admin API)', options: ADMIN_OPTIONS },
  { name: 'jobs', summary: 'cancel a job (admin API)', options: ADMIN_OPTIONS, words: ['cancel'] },
  { name: 'admin-token', summary: 'create an admin API token for an organisation (root, on the server host)', options: ADMIN_OPTIONS, words: ['create'] },
  { name: 'setup', summary: 'prepare this host (root): Podman, runner user, cgroups, API service, base image', options: SETUP_OPTIONS },
  { name: 'doctor', summary: 'check every host requirement and print the fix for each missing one', options: {} },
  { name: 'images', summary: 'build runner images and list the toolchains found in each', options: { json: { type: 'boolean' } }, words: ['build', 'list'] },
  { name: 'actions', summary: "pull, list and prune the host's cache of fetched actions", options: ACTIONS_OPTIONS, words: ['pull', 'list', 'prune'] },
  { name: 'hook-broker', summary: "runner mode: serve the container hook of GitHub's official runner (root)", options: HOOK_BROKER_OPTIONS },
  { name: 'app', summary: "create Stockade's GitHub App with GitHub's manifest flow and write its credentials", options: APP_OPTIONS, words: ['create'] },
  { name: 'prune', summary: 'remove finished jobs, logs, caches and fetched actions past their retention', options: PRUNE_OPTIONS },
  { name: 'config', summary: "check the server's config file, print its JSON Schema and its settings", options: {}, words: ['check', 'schema', 'settings'] },
  { name: 'completion', summary: 'print the shell completion script for bash, zsh or fish', options: {}, words: SHELLS },
];

/** The process's exit status, for scripts: one table, printed by --help and in the README. */
export const EXIT_CODES: Array<[number, string]> = [
  [0, 'success: every job succeeded (or was skipped), or the command did what it was asked'],
  [1, 'a job failed or was cancelled; doctor: a host requirement is missing'],
  [2, 'usage error, invalid workflow or configuration (file:line:col on stderr), spec refused'],
  [3, 'the host is not ready, or a limit could not be put in force (nothing ran without it)'],
  [4, 'Podman failed, or the workspace or a repository archive is unsafe'],
  [70, 'internal error (a bug: the stack is on stderr)'],
  [130, 'stopped by SIGINT or SIGTERM: the running step was stopped and the job cleaned up'],
];

const USAGE = `usage: stockade <command>

commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(11)} ${c.summary}`).join('\n')}

${RUN_USAGE}

${SERVE_USAGE}

${ADMIN_USAGE}

${IMAGES_USAGE}

${ACTIONS_USAGE}

${HOOK_BROKER_USAGE}

${CONFIG_USAGE}

${PRUNE_USAGE}

${APP_USAGE}

${COMPLETION_USAGE}

exit codes:
${EXIT_CODES.map(([c, m]) => `  ${String(c).padStart(3)}  ${m}`).join('\n')}

Every command prints its own usage with --help; stockade --version prints the version.`;

const SETUP_USAGE = `usage: stockade setup [--no-images] [--runner [TARBALL]] [--systemd [--config FILE]]      (root)
  Installs Podman and friends from Debian, the Podman user, its cgroup subtree and API service, and the
  base image; a second run only checks. --runner: runner mode (user github-runner, group stockade-hook,
  /opt/stockade/hook.js, the hook broker); with TARBALL, GitHub's runner from a tarball you downloaded.
  --systemd: units for the Podman API service, the server (serve --config FILE, default
  /etc/stockade/config.yml, a template written when missing) and the hook broker; enabled and started
  at boot, restarted on failure, the runner user lingering.`;
const DOCTOR_USAGE = `usage: stockade doctor
  Checks every host requirement and prints the fix for each missing one; exit 1 when one is missing.`;

/** Each command's own usage: `stockade <command> --help` prints it and does nothing else. */
const COMMAND_USAGE: Record<string, string> = {
  run: RUN_USAGE,
  serve: SERVE_USAGE,
  quota: ADMIN_USAGE,
  queue: ADMIN_USAGE,
  jobs: ADMIN_USAGE,
  'admin-token': ADMIN_USAGE,
  images: IMAGES_USAGE,
  actions: ACTIONS_USAGE,
  'hook-broker': HOOK_BROKER_USAGE,
  setup: SETUP_USAGE,
  doctor: DOCTOR_USAGE,
  completion: COMPLETION_USAGE,
  config: CONFIG_USAGE,
  prune: PRUNE_USAGE,
  app: APP_USAGE,
};

/** The version of this package (dist/cli.js sits one directory below package.json). */
function version(): string {
  try {
    return (JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** STOCKADE_LOG_FORMAT: json, pretty, or auto (pretty on a terminal, JSON otherwise; the default). */
function logFormat(env: NodeJS.ProcessEnv): 'json' | 'pretty' | 'auto' {
  const f = env.STOCKADE_LOG_FORMAT;
  return f === 'json' || f === 'pretty' ? f : 'auto';
}

/** The composition root: reads argv/env, wires the modules, maps errors to exit codes. */
export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [command, ...rest] = argv;
  const logger = createLogger({ level: env.STOCKADE_LOG_LEVEL ?? 'warn', format: logFormat(env) });
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    process.stderr.write(`stockade: ${sig} received: stopping the running step and removing the job's containers and volumes\n`);
    controller.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  if (command === '--version' || command === '-V' || command === 'version') {
    process.stdout.write(`stockade ${version()}\n`);
    return 0;
  }
  const usage = command ? COMMAND_USAGE[command] : undefined;
  // Before anything acts: `stockade setup --help` must not set up a host.
  if (usage && rest.some((a) => a === '--help' || a === '-h')) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  try {
    switch (command) {
      case 'run':
        return await runCommand(rest, env, process.stdout, logger, controller.signal);
      case 'serve':
        return await serveCommand(rest, env, createLogger({ level: env.STOCKADE_LOG_LEVEL ?? 'info', format: logFormat(env) }), controller.signal);
      case 'quota':
      case 'queue':
      case 'jobs':
      case 'admin-token':
        return await adminCommand(command, rest, env, process.stdout);
      case 'images':
        return await imagesCommand(rest, env, process.stdout);
      case 'actions':
        return await actionsCommand(rest, env, process.stdout);
      case 'hook-broker':
        return await hookBrokerCommand(rest, env, createLogger({ level: env.STOCKADE_LOG_LEVEL ?? 'info', format: logFormat(env) }), controller.signal);
      case 'setup': {
        const { values, positionals } = parseOptions('setup', SETUP_OPTIONS, rest, { positionals: true });
        if (positionals.length > (values.runner ? 1 : 0)) throw new StockadeError('USAGE', `setup takes no argument but the runner's TARBALL after --runner (got '${positionals.join(' ').slice(0, 80)}')`, { hint: SETUP_USAGE });
        const t0 = Date.now();
        const h = await setup(env, (m) => process.stderr.write(`setup: [${since(t0)}] ${m}\n`), { images: !values['no-images'], runner: !!values.runner, runnerTarball: values.runner ? positionals[0] : undefined, systemd: !!values.systemd, configFile: values.config });
        process.stderr.write(`setup: ready (runner user ${h.runnerUser}, socket ${h.socketPath})\n`);
        return 0;
      }
      case 'doctor': {
        parseOptions('doctor', {}, rest);
        const checks = await doctorChecks(env);
        process.stdout.write(`${formatChecks(checks)}\n`);
        return checks.every((c) => c.ok || c.warnOnly) ? 0 : 1;
      }
      case 'app':
        return await appCommand(rest, env, process.stdout);
      case 'prune':
        return await pruneCommand(rest, env, process.stdout);
      case 'config': {
        const [sub, file, ...extra] = rest;
        if (sub === 'schema' && !file) {
          process.stdout.write(`${JSON.stringify(configSchema(), null, 2)}\n`);
          return 0;
        }
        if (sub === 'settings' && !file) {
          process.stdout.write(`${settingsTable()}\n`);
          return 0;
        }
        if (sub !== 'check' || !file || extra.length) throw new StockadeError('USAGE', 'config needs check FILE, schema or settings', { hint: CONFIG_USAGE });
        try {
          loadServerConfig(file);
        } catch (e) {
          // file:line:col lines as they are, one per problem, for editors and people alike.
          if (isStockadeError(e) && e.code === 'CONFIG_INVALID') {
            process.stderr.write(`${e.message.split('\n').map((l) => (l.startsWith(file) ? l : `${file}: error: ${l.replace(`${file}: `, '')}`)).join('\n')}\n`);
            return 2;
          }
          throw e;
        }
        process.stdout.write(`${file}: ok\n`);
        return 0;
      }
      case 'completion': {
        const shell = rest[0];
        if (rest.length !== 1 || !SHELLS.includes(shell as Shell)) throw new StockadeError('USAGE', `completion needs one shell, bash, zsh or fish${shell ? ` (not '${rest.join(' ').slice(0, 40)}')` : ''}`, { hint: COMPLETION_USAGE });
        process.stdout.write(completionScript(shell as Shell, COMMANDS));
        return 0;
      }
      case undefined:
      case '-h':
      case '--help':
        process.stdout.write(`${USAGE}\n`);
        return command ? 0 : 2;
      default:
        process.stderr.write(`stockade: unknown command '${command}'\n${USAGE}\n`);
        return 2;
    }
  } catch (e) {
    if (isStockadeError(e)) {
      process.stderr.write(`stockade: ${e.describe()}\n`);
      return e.exitCode;
    }
    if ((e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`stockade ${command}: ${(e as Error).message}\n${usage ?? USAGE}\n`);
      return 2;
    }
    process.stderr.write(`stockade: internal error: ${(e as Error).stack ?? String(e)}\n`);
    return 70;
  }
}
