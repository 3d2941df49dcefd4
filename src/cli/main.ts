import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger, isStockadeError } from '../common';
import { doctorChecks, formatChecks } from './doctor';
import { runCommand, RUN_USAGE } from './run-command';
import { setup } from './setup';
import { serveCommand, SERVE_USAGE } from './serve-command';
import { adminCommand, ADMIN_USAGE } from './admin-commands';
import { imagesCommand, IMAGES_USAGE } from './images-command';
import { actionsCommand, ACTIONS_USAGE } from './actions-command';
import { hookBrokerCommand, HOOK_BROKER_USAGE } from './hook-broker-command';

const USAGE = `usage: stockade <command>

commands:
  run       run a repository's workflow locally, one sandboxed container per step
  serve     the GitHub App server: webhooks in, jobs in the sandbox, check runs out
  quota     set, get and list concurrency and minutes quotas (admin API)
  queue     what is queued and running, with wait times (admin API)
  jobs      cancel a job (admin API)
  admin-token  create an admin API token for an organisation (root, on the server host)
  setup     prepare this host (root): Podman, runner user, cgroups, API service, base image
  doctor    check every host requirement and print the fix for each missing one
  images    build runner images and list the toolchains found in each
  actions   pull, list and prune the host's cache of fetched actions
  hook-broker  runner mode: serve the container hook of GitHub's official runner (root)

${RUN_USAGE}

${SERVE_USAGE}

${ADMIN_USAGE}

${IMAGES_USAGE}

${ACTIONS_USAGE}

${HOOK_BROKER_USAGE}

Every command prints its own usage with --help; stockade --version prints the version.`;

const SETUP_USAGE = `usage: stockade setup [--no-images] [--runner [TARBALL]]      (root)
  Installs Podman and friends from Debian, the Podman user, its cgroup subtree and API service, and the
  base image; a second run only checks. --runner: runner mode (user github-runner, group stockade-hook,
  /opt/stockade/hook.js, the hook broker); with TARBALL, GitHub's runner from a tarball you downloaded.`;
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
};

/** The version of this package (dist/cli.js sits one directory below package.json). */
function version(): string {
  try {
    return (JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** `setup --runner [TARBALL]`: the path after --runner, when one is given. */
function runnerTarballArg(args: string[]): string | undefined {
  const next = args[args.indexOf('--runner') + 1];
  return args.includes('--runner') && next && !next.startsWith('--') ? next : undefined;
}

/** The composition root: reads argv/env, wires the modules, maps errors to exit codes. */
export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [command, ...rest] = argv;
  const logger = createLogger({ level: env.STOCKADE_LOG_LEVEL ?? 'warn' });
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
        return await serveCommand(rest, env, createLogger({ level: env.STOCKADE_LOG_LEVEL ?? 'info' }), controller.signal);
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
        return await hookBrokerCommand(rest, env, createLogger({ level: env.STOCKADE_LOG_LEVEL ?? 'info' }), controller.signal);
      case 'setup': {
        const h = await setup(env, (m) => process.stderr.write(`setup: ${m}\n`), { images: !rest.includes('--no-images'), runner: rest.includes('--runner'), runnerTarball: runnerTarballArg(rest) });
        process.stderr.write(`setup: ready (runner user ${h.runnerUser}, socket ${h.socketPath})\n`);
        return 0;
      }
      case 'doctor': {
        const checks = await doctorChecks(env);
        process.stdout.write(`${formatChecks(checks)}\n`);
        return checks.every((c) => c.ok || c.warnOnly) ? 0 : 1;
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
