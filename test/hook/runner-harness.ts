/**
 * Plays GitHub's official runner on the runner's side of the container-hook contract, as
 * actions/runner does it (read at github.com/actions/runner, main of 2026-11):
 * - src/Runner.Worker/Container/ContainerHooks/ContainerHookManager.cs: the hook input
 *   (command, responseFile, state, args), the response file created empty under
 *   `_temp/_runner_hook_responses/<guid>.json` before the hook runs and read then deleted after,
 *   the state of prepare_job's response handed back on every later call, `isAlpine` required;
 *   `entryPointArgs` split on single spaces, `prependPath` reversed.
 * - src/Runner.Worker/Container/ContainerInfo.cs and ContainerOperationProvider.cs: the job
 *   container's mounts (the Docker socket, `_work` at /__w, externals at /__e read-only, `_temp`,
 *   `_actions`, `_tool`, `_temp/_github_home` at /github/home, `_temp/_github_workflow` at /github/workflow).
 * - src/Runner.Worker/Handlers/ScriptHandler.cs: a `run:` step is a script file the runner writes to
 *   `_temp/<guid>.sh`, run as `bash --noprofile --norc -e -o pipefail <file>`.
 * - src/Runner.Worker/FileCommandManager.cs: before each step the runner creates empty file-command
 *   files in `_temp/_runner_file_commands` (set_output_, set_env_, add_path_, save_state_,
 *   step_summary_ + guid) and names them in GITHUB_OUTPUT, GITHUB_ENV, …; after it, reads them.
 * - src/Runner.Worker/Handlers/ContainerActionHandler.cs: a container action's mounts
 *   (/github/runner_temp, /github/home, /github/workflow, /github/file_commands, /github/workspace).
 * The hook runs as the runner's user, with the runner's Node, JSON on stdin (ExecuteHookScript).
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chownSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const RUNNER_UID = 100000;
export const RUNNER_GID = 100000;
export const HOOK = '/opt/stockade/hook.js';

export interface HookCall {
  code: number;
  stdout: string;
  response?: Record<string, unknown>;
}

export interface StepResult extends HookCall {
  outputs: Record<string, string>;
  env: Record<string, string>;
}

/** Parses a file command as FileCommandManager does: `name=value` lines and `name<<DELIM` heredocs. */
export function parseFileCommand(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line) continue;
    const h = /^([^=<]+)<<(.+)$/.exec(line);
    if (h) {
      const body: string[] = [];
      for (i++; i < lines.length && lines[i] !== h[2]; i++) body.push(lines[i]!);
      out[h[1]!] = body.join('\n');
      continue;
    }
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

export class FakeRunner {
  readonly root: string;
  readonly work: string;
  readonly temp: string;
  state: unknown = {};
  prependPath: string[] = [];

  readonly uid: number;
  readonly gid: number;

  constructor(
    base: string,
    private readonly socket: string,
    /** The runner's user: github-runner by default, 0 for a runner run as root (RUNNER_ALLOW_RUNASROOT). */
    user: { uid: number; gid: number } = { uid: RUNNER_UID, gid: RUNNER_GID },
  ) {
    this.uid = user.uid;
    this.gid = user.gid;
    this.root = join(base, `actions-runner-${process.pid}-${randomUUID().slice(0, 8)}`);
    this.work = join(this.root, '_work');
    this.temp = join(this.work, '_temp');
    for (const d of [this.root, join(this.root, 'externals'), join(this.root, 'externals/node20'), join(this.root, 'externals/node20/bin'), this.work, this.temp, join(this.work, '_actions'), join(this.work, '_tool'), join(this.temp, '_github_home'), join(this.temp, '_github_workflow'), join(this.temp, '_runner_file_commands'), join(this.temp, '_runner_hook_responses'), join(this.work, 'repo'), join(this.work, 'repo/repo')]) {
      mkdirSync(d, { recursive: true });
      this.own(d);
    }
    // The runner's own secrets, next to its work directory (what `config.sh` or a JIT config writes).
    this.write(join(this.root, '.runner'), '{"agentId": 7, "agentName": "stockade-test", "serverUrl": "https://pipelines.actions.githubusercontent.com/x"}\n', 0o600);
    this.write(join(this.root, '.credentials'), '{"scheme": "OAuth", "data": {"clientId": "RUNNER-CREDENTIAL-CANARY"}}\n', 0o600);
    this.write(join(this.root, '.credentials_rsaparams'), '{"d": "RSA-PARAMS-CANARY"}\n', 0o600);
    copyFileSync(process.execPath, join(this.root, 'externals/node20/bin/node'));
    this.own(join(this.root, 'externals/node20/bin/node'));
    this.write(join(this.temp, '_github_workflow/event.json'), '{"ref": "refs/heads/main"}\n');
  }

  private own(p: string): void {
    chownSync(p, this.uid, this.gid);
  }

  write(path: string, text: string, mode = 0o644): void {
    writeFileSync(path, text, { mode });
    this.own(path);
  }

  /** The mounts ContainerInfo lists for the job container (Docker socket included, as the runner always does). */
  systemMounts(): Array<{ sourceVolumePath: string; targetVolumePath: string; readOnly: boolean }> {
    return [
      { sourceVolumePath: '/var/run/docker.sock', targetVolumePath: '/var/run/docker.sock', readOnly: false },
      { sourceVolumePath: this.work, targetVolumePath: '/__w', readOnly: false },
      { sourceVolumePath: join(this.root, 'externals'), targetVolumePath: '/__e', readOnly: true },
      { sourceVolumePath: this.temp, targetVolumePath: '/__w/_temp', readOnly: false },
      { sourceVolumePath: join(this.work, '_actions'), targetVolumePath: '/__w/_actions', readOnly: false },
      { sourceVolumePath: join(this.work, '_tool'), targetVolumePath: '/__w/_tool', readOnly: false },
      { sourceVolumePath: join(this.temp, '_github_home'), targetVolumePath: '/github/home', readOnly: false },
      { sourceVolumePath: join(this.temp, '_github_workflow'), targetVolumePath: '/github/workflow', readOnly: false },
    ];
  }

  /** ExecuteHookScript: response file created empty, the hook run with the input on stdin, the response read and deleted. */
  async call(input: Record<string, unknown>, o: { killAfterMs?: number } = {}): Promise<HookCall> {
    const responseFile = join(this.temp, '_runner_hook_responses', `${randomUUID()}.json`);
    this.write(responseFile, '');
    // As the runner's user with its groups, as a login or a systemd unit with User= starts the runner.
    const asUser = this.uid === 0 ? [] : ['setpriv', `--reuid=${this.uid}`, `--regid=${this.gid}`, '--init-groups', '--'];
    const child = spawn('/usr/bin/env', [...asUser, 'node', HOOK], {
      cwd: this.root,
      env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: this.root, ...(this.socket ? { STOCKADE_HOOK_SOCKET: this.socket } : {}) },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stdin.end(JSON.stringify({ ...input, responseFile, state: input.command === 'prepare_job' ? {} : this.state }));
    if (o.killAfterMs) setTimeout(() => child.kill('SIGKILL'), o.killAfterMs);
    const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 137)));
    let response: Record<string, unknown> | undefined;
    const text = existsSync(responseFile) ? readFileSync(responseFile, 'utf8').trim() : '';
    if (text) response = JSON.parse(text) as Record<string, unknown>;
    rmSync(responseFile, { force: true });
    if (response?.state) this.state = response.state;
    return { code, stdout, response };
  }

  prepareJob(container: Record<string, unknown>, services: unknown[] = []): Promise<HookCall> {
    return this.call({
      command: 'prepare_job',
      args: {
        container: { image: 'stockade/base', workingDirectory: '/__w/repo/repo', createOptions: '', environmentVariables: {}, userMountVolumes: [], systemMountVolumes: this.systemMounts(), registry: null, portMappings: [], entryPointArgs: [''], ...container },
        services,
      },
    });
  }

  /** A step as ScriptHandler + FileCommandManager run it through the hook, outputs and env read back. */
  async runScript(script: string, o: { env?: Record<string, string>; entryPoint?: string; args?: string; killAfterMs?: number } = {}): Promise<StepResult> {
    const id = randomUUID();
    const file = join(this.temp, `${id}.sh`);
    this.write(file, script);
    const files: Record<string, string> = { GITHUB_OUTPUT: `set_output_${id}`, GITHUB_ENV: `set_env_${id}`, GITHUB_PATH: `add_path_${id}`, GITHUB_STATE: `save_state_${id}`, GITHUB_STEP_SUMMARY: `step_summary_${id}` };
    for (const f of Object.values(files)) this.write(join(this.temp, '_runner_file_commands', f), '');
    const env: Record<string, string> = {
      CI: 'true',
      GITHUB_ACTIONS: 'true',
      GITHUB_WORKSPACE: '/__w/repo/repo',
      GITHUB_EVENT_PATH: '/github/workflow/event.json',
      RUNNER_TEMP: '/__w/_temp',
      RUNNER_TOOL_CACHE: '/__w/_tool',
      ...Object.fromEntries(Object.entries(files).map(([k, f]) => [k, `/__w/_temp/_runner_file_commands/${f}`])),
      ...o.env,
    };
    const args = o.args ?? `--noprofile --norc -e -o pipefail /__w/_temp/${id}.sh`;
    const r = await this.call({ command: 'run_script_step', args: { entryPoint: o.entryPoint ?? 'bash', entryPointArgs: args.split(' ').map((a) => a.trim()), environmentVariables: env, prependPath: [...this.prependPath].reverse(), workingDirectory: '/__w/repo/repo' } }, o);
    const read = (f: string) => {
      const p = join(this.temp, '_runner_file_commands', f);
      // The runner reads each file that exists (File.Exists), then goes on.
      if (!existsSync(p)) return '';
      return readFileSync(p, 'utf8');
    };
    const outputs = parseFileCommand(read(files.GITHUB_OUTPUT!));
    const setEnv = parseFileCommand(read(files.GITHUB_ENV!));
    for (const line of read(files.GITHUB_PATH!).split('\n')) if (line.trim()) this.prependPath.push(line.trim());
    for (const f of Object.values(files)) if (existsSync(join(this.temp, '_runner_file_commands', f))) unlinkSync(join(this.temp, '_runner_file_commands', f));
    unlinkSync(file);
    return { ...r, outputs, env: setEnv };
  }

  /** A container action as ContainerActionHandler hands it to the hook (image form; its mounts under /github). */
  async runContainerStep(image: string | { dockerfile: string }, entryPoint: string, args: string[], env: Record<string, string> = {}): Promise<StepResult> {
    const id = randomUUID();
    const output = `set_output_${id}`;
    this.write(join(this.temp, '_runner_file_commands', output), '');
    const r = await this.call({
      command: 'run_container_step',
      args: {
        // ContainerHookManager.RunContainerStepAsync: a Dockerfile action has no image, the Dockerfile's host path.
        image: typeof image === 'string' ? image : null,
        dockerfile: typeof image === 'string' ? null : image.dockerfile,
        entryPointArgs: args,
        entryPoint,
        workingDirectory: '/github/workspace',
        createOptions: '',
        environmentVariables: { GITHUB_WORKSPACE: '/github/workspace', GITHUB_OUTPUT: `/github/file_commands/${output}`, ...env },
        prependPath: [],
        userMountVolumes: [],
        systemMountVolumes: [
          { sourceVolumePath: '/var/run/docker.sock', targetVolumePath: '/var/run/docker.sock', readOnly: false },
          { sourceVolumePath: this.temp, targetVolumePath: '/github/runner_temp', readOnly: false },
          { sourceVolumePath: join(this.temp, '_github_home'), targetVolumePath: '/github/home', readOnly: false },
          { sourceVolumePath: join(this.temp, '_github_workflow'), targetVolumePath: '/github/workflow', readOnly: false },
          { sourceVolumePath: join(this.temp, '_runner_file_commands'), targetVolumePath: '/github/file_commands', readOnly: false },
          { sourceVolumePath: join(this.work, 'repo/repo'), targetVolumePath: '/github/workspace', readOnly: false },
        ],
        registry: null,
        portMappings: [],
      },
    });
    const p = join(this.temp, '_runner_file_commands', output);
    const outputs = existsSync(p) ? parseFileCommand(readFileSync(p, 'utf8')) : {};
    rmSync(p, { force: true });
    return { ...r, outputs, env: {} };
  }

  cleanupJob(): Promise<HookCall> {
    return this.call({ command: 'cleanup_job', args: {} });
  }

  remove(): void {
    rmSync(this.root, { recursive: true, force: true });
  }

  /** Owner of a path in the work directory (what the runner would see). */
  ownerOf(rel: string): number {
    return statSync(join(this.work, rel)).uid;
  }
}
