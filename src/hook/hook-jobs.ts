import { randomBytes, timingSafeEqual } from 'node:crypto';
import { posix } from 'node:path';
import type { Logger } from '../common';
import { LABEL_JOB, LABEL_STEP, managedLabels, runStepContainer, type BindMount, type ResourceLimits, type Sandbox, type StepOutcome, type StepSpec } from '../sandbox';
import { LogSink, type EgressSettings, type ImagePolicy, type JobNetwork, type JobServices, type RunnerSummary } from '../runner';
import { RunnerSummaries } from './runner-summaries';
import { startHookNetwork } from './hook-network';
import { SecretMasker } from '../workflow';
import type { HookContainer, HookInput, ScriptStepArgs } from './hook-input';
import { planJobContainer, type JobContainerPlan } from './job-plan';
import { planContainerStep, planServices } from './step-plan';
import { buildActionImage } from '../runner';
import { checkRunnerMounts, checkRunnerReads, handOver, recheckBinds, type RunnerDirs } from './runner-dirs';

/** What one hook call answers: lines for the runner's log, the exit code, the response file's content. */
export interface HookResult {
  exitCode: number;
  response?: Record<string, unknown>;
}

export type Emit = (line: string) => void;


export interface HookJobsOptions {
  sandbox: Sandbox;
  /** Runner images by name (`stockade/<name>`). */
  images: Record<string, string>;
  policy: ImagePolicy;
  limits: ResourceLimits;
  /** The host uid a container's root is under Podman's keep-id mapping: the official runner's user. */
  runnerUid: number;
  logger: Logger;
  /**
   * Names every job may reach through its egress sidecar: the GitHub endpoints of the broker's
   * configuration (`--github-url`; never names a step could put in its environment) and the
   * operator's `--allow-domain`. Empty: steps have no network at all.
   */
  allow: string[];
  egress?: EgressSettings;
  /** The image the egress sidecar runs in, and the Node binary it runs with. */
  sidecarImage: string;
  nodeBinary: string;
  /** argv running a command as the Podman user: with it, Dockerfile actions are built (build-action.ts). */
  asPodmanUser?: (args: string[]) => [string, string[]];
}

interface HookJob {
  key: string;
  token: Buffer;
  plan: JobContainerPlan;
  binds: BindMount[];
  dirs: RunnerDirs;
  steps: number;
  running?: AbortController;
  net?: JobNetwork;
  services?: JobServices;
  outcomes: RunnerSummary['steps'];
  refusals: string[];
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const MAX_JOBS = 256;

const inside = (root: string, p: string) => p === root || p.startsWith(`${root}/`);

/**
 * The four commands of a container hook (the contract of actions/runner-container-hooks), served by
 * the broker: prepare_job plans and checks the job, run_script_step and run_container_step run each
 * step in a fresh sandboxed container, cleanup_job removes what is left. Jobs are known by a key and a
 * secret token the runner keeps in its hook state; a call without the token acts on nothing.
 */
export class HookJobs {
  private readonly jobs = new Map<string, HookJob>();
  private readonly summaries = new RunnerSummaries();

  constructor(private readonly o: HookJobsOptions) {}

  get activeJobs(): number {
    return this.jobs.size;
  }

  async handle(input: HookInput, emit: Emit, signal: AbortSignal): Promise<HookResult> {
    switch (input.command) {
      case 'prepare_job':
        return this.prepare(input.args, emit);
      case 'run_script_step':
        return this.withJob(input.state, emit, (job) => this.runScript(job, input.args, emit, signal));
      case 'run_container_step':
        return this.withJob(input.state, emit, (job) => this.runContainer(job, input.args, emit, signal));
      case 'cleanup_job':
        return this.cleanup(input.state, emit);
    }
  }

  private fail(emit: Emit, errors: string[]): HookResult {
    for (const e of errors) emit(`##[error]Stockade: ${e}`);
    return { exitCode: 1 };
  }

  private async prepare(args: { container?: HookContainer; services: HookContainer[] }, emit: Emit): Promise<HookResult> {
    if (!args.container) {
      return this.fail(emit, ['the job has no container: Stockade runs every step in a fresh container of the job image; add `container: stockade/base` (or another runner image) to the job']);
    }
    const services = planServices(args.services, { images: this.o.images, policy: this.o.policy });
    for (const n of 'notices' in services ? services.notices : []) emit(`[stockade] ${n}`);
    if ('errors' in services) return this.fail(emit, services.errors);
    if (this.jobs.size >= MAX_JOBS) return this.fail(emit, [`this host already runs ${MAX_JOBS} hook jobs`]);
    const planned = planJobContainer(args.container, { images: this.o.images, policy: this.o.policy });
    for (const n of planned.notices) emit(`[stockade] ${n}`);
    if (!planned.plan) return this.fail(emit, planned.errors);
    const checked = checkRunnerMounts(planned.plan.mounts, { expectedUid: this.o.runnerUid });
    if ('errors' in checked) return this.fail(emit, checked.errors);
    if (!(await this.o.sandbox.deps.engine.imageExists(planned.plan.image))) {
      return this.fail(emit, [`the image ${planned.plan.image} is not on this host; Stockade's runner images are built with \`stockade images build\`, others are pulled by the operator`]);
    }
    if (checked.dirs.rootRunner) {
      const n = handOver(checked.dirs.work, this.o.runnerUid, { deep: true });
      emit(`[stockade] the runner runs as root: its work directory (${n} entries) is handed to uid ${this.o.runnerUid}, the uid steps write as`);
    }
    const key = randomBytes(6).toString('hex');
    const token = randomBytes(24);
    const job: HookJob = { key, token, plan: planned.plan, binds: checked.binds, dirs: checked.dirs, steps: 0, outcomes: [], refusals: [] };
    // The image is probed once in the sandbox: it runs, and the runner learns whether it is Alpine (musl).
    const lines: string[] = [];
    const probe = await this.runIn(job, { argv: ['/bin/sh', '-c', 'cat /etc/os-release 2>/dev/null; true'], env: {}, workdir: '/', binds: [] }, (l) => lines.length < 64 && lines.push(l));
    if (!probe.ok) return this.fail(emit, [`the job image ${planned.plan.image} does not run a shell: ${probe.error ?? `exit ${probe.exitCode}`}`]);
    const isAlpine = lines.some((l) => /^ID="?alpine"?$/.test(l.trim()));
    let serviceIds: string[] = [];
    if (this.o.allow.length || services.list.length) {
      const started = await startHookNetwork(this.o, key, services.list, emit);
      if ('errors' in started) return this.fail(emit, started.errors);
      job.net = started.net;
      job.services = started.services;
      serviceIds = started.services?.ids ?? [];
    }
    this.jobs.set(key, job);
    emit(`[stockade] job ${key}: image ${planned.plan.image}; every step in a fresh container: ${this.limitsText(job)}`);
    return {
      exitCode: 0,
      response: {
        state: { stockade: { job: key, token: token.toString('hex') } },
        context: {
          container: { id: `stockade-hook-${key}`, network: job.net?.network ?? 'none', ports: {} },
          // In the order the runner listed them (it matches them by position); steps reach a service by its
          // name and its own port on the job network, so each port maps to itself.
          services: serviceIds.map((id, i) => ({ id, network: job.net!.network, ports: services.ports[i] })),
        },
        isAlpine,
      },
    };
  }

  private lookup(state: unknown): HookJob | undefined {
    const s = (state as { stockade?: { job?: unknown; token?: unknown } } | null)?.stockade;
    if (!s || typeof s.job !== 'string' || typeof s.token !== 'string' || !/^[0-9a-f]{48}$/.test(s.token)) return undefined;
    const job = this.jobs.get(s.job);
    if (!job) return undefined;
    const given = Buffer.from(s.token, 'hex');
    return given.length === job.token.length && timingSafeEqual(given, job.token) ? job : undefined;
  }

  private async withJob(state: unknown, emit: Emit, f: (job: HookJob) => Promise<HookResult>): Promise<HookResult> {
    const job = this.lookup(state);
    if (!job) return this.fail(emit, ['this hook call names no job this broker prepared (prepare_job failed, the broker restarted, or the state is not its own)']);
    if (job.running) return this.fail(emit, [`job ${job.key} already runs a step`]);
    return f(job);
  }

  private async runScript(job: HookJob, a: ScriptStepArgs, emit: Emit, signal: AbortSignal): Promise<HookResult> {
    const wd = posix.normalize(a.workingDirectory);
    if (!inside('/__w', wd) && !inside('/github', wd)) return this.fail(emit, [`the step's working directory ${a.workingDirectory} is outside /__w`]);
    const env = this.stepEnv(job, a.environmentVariables, a.prependPath);
    return this.step(job, { argv: [a.entryPoint, ...a.entryPointArgs], env, workdir: wd, binds: job.binds }, emit, signal);
  }

  private async runContainer(job: HookJob, c: HookContainer, emit: Emit, signal: AbortSignal): Promise<HookResult> {
    const planned = planContainerStep(c, job.dirs, { images: this.o.images, policy: this.o.policy, runnerUid: this.o.runnerUid, canBuild: !!this.o.asPodmanUser });
    if ('errors' in planned) return this.fail(emit, planned.errors);
    const binds = planned.binds;
    let image = planned.image;
    if (c.dockerfile && this.o.asPodmanUser) {
      const built = await buildActionImage(
        { sandbox: this.o.sandbox, policy: this.o.policy, images: this.o.images, asPodmanUser: this.o.asPodmanUser, seccompProfilePath: this.o.sandbox.seccompProfilePath, limits: this.o.limits },
        c.dockerfile,
        posix.join(job.dirs.work, '_actions'),
        emit,
        signal,
      );
      if ('error' in built) {
        job.refusals.push(built.error);
        return this.fail(emit, [built.error]);
      }
      image = built.image;
    }
    if (!(await this.o.sandbox.deps.engine.imageExists(image))) return this.fail(emit, [`the image ${image} is not on this host; the operator pulls images (no registry is reached from a job)`]);
    const env = this.stepEnv(job, c.environmentVariables, []);
    // Docker's rule: an entry point given replaces the image's (and its command); arguments given replace its command.
    const cfg = await this.o.sandbox.deps.engine.imageCommand(image);
    const argv = c.entryPoint ? [c.entryPoint, ...c.entryPointArgs] : [...cfg.entrypoint, ...(c.entryPointArgs.length ? c.entryPointArgs : cfg.cmd)];
    if (!argv.length) return this.fail(emit, ['the container step has no entry point and its image has no command']);
    const wd = posix.normalize(c.workingDirectory ?? '/github/workspace');
    return this.step(job, { argv, env, workdir: inside('/github', wd) ? wd : '/github/workspace', binds, image }, emit, signal);
  }

  private stepEnv(job: HookJob, given: Record<string, string>, prependPath: string[]): Record<string, string> {
    const env: Record<string, string> = { HOME: '/github/home', ...job.plan.env, ...given, ...(job.net?.env() ?? {}) };
    const base = env.PATH ?? DEFAULT_PATH;
    env.PATH = prependPath.length ? `${prependPath.join(':')}:${base}` : base;
    return env;
  }

  private async step(job: HookJob, run: { argv: string[]; env: Record<string, string>; workdir: string; binds: BindMount[]; image?: string }, emit: Emit, signal: AbortSignal): Promise<HookResult> {
    const stale = recheckBinds(run.binds);
    if (stale.length) {
      job.refusals.push(...stale);
      return this.fail(emit, stale);
    }
    if (job.dirs.rootRunner) handOver(job.dirs.work, this.o.runnerUid, { deep: false });
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    signal.addEventListener('abort', onAbort);
    job.running = controller;
    let outcome: StepOutcome;
    try {
      outcome = await this.runIn(job, run, emit, controller.signal);
    } finally {
      job.running = undefined;
      signal.removeEventListener('abort', onAbort);
    }
    const problems = checkRunnerReads(job.binds, job.dirs.work, run.env);
    for (const p of problems) emit(`##[error]Stockade: ${p}`);
    job.refusals.push(...problems.slice(0, 20));
    if (job.outcomes.length < 10_000) job.outcomes.push({ exitCode: outcome.exitCode, reason: outcome.reason, durationMs: outcome.durationMs, peakMemoryBytes: outcome.usage.peakMemoryBytes });
    const l = this.o.limits;
    const why: Record<string, string> = {
      timeout: `the step ran past its time limit (${Math.round(l.timeoutMs / 1000)} s) and was stopped`,
      'out-of-memory': `the step ran out of memory (limit ${Math.round(l.memoryBytes / 1024 ** 2)} MiB)`,
      'process-limit': `the step hit its process limit (${l.pids})`,
      'output-limit': `the step wrote more than ${Math.round(l.outputBytes / 1024 ** 2)} MiB of output and was stopped`,
      cancelled: 'the step was cancelled',
      'sandbox-error': `the sandbox could not run the step: ${outcome.error ?? 'unknown error'}`,
    };
    if (why[outcome.reason]) emit(`##[error]Stockade: ${why[outcome.reason]}`);
    emit(`[stockade] step: ${outcome.reason} ${outcome.exitCode ?? '-'} in ${(outcome.durationMs / 1000).toFixed(2)} s, peak memory ${(outcome.usage.peakMemoryBytes / 1024 ** 2).toFixed(1)} MiB`);
    const code = outcome.reason === 'exit' && outcome.exitCode !== null ? outcome.exitCode : outcome.exitCode || 1;
    return { exitCode: problems.length && code === 0 ? 1 : code };
  }

  private runIn(job: HookJob, run: { argv: string[]; env: Record<string, string>; workdir: string; binds: BindMount[]; image?: string }, onLine: (text: string) => void, signal?: AbortSignal): Promise<StepOutcome> {
    const sb = this.o.sandbox;
    const n = job.steps++;
    const spec: StepSpec = {
      name: `stockade-hook-${job.key}-${n}`,
      image: run.image ?? job.plan.image,
      argv: run.argv,
      env: run.env,
      workdir: run.workdir,
      mounts: [],
      binds: run.binds,
      userns: 'keep-id',
      limits: this.o.limits,
      network: job.net ? job.net.spec() : { mode: 'none' },
      security: { seccompProfilePath: sb.seccompProfilePath, readOnlyRoot: true },
      labels: managedLabels(sb.ownerTag, { [LABEL_JOB]: `hook-${job.key}`, [LABEL_STEP]: String(n) }),
    };
    return runStepContainer(sb.deps, spec, (l) => onLine(l.text), signal);
  }

  private async cleanup(state: unknown, emit: Emit): Promise<HookResult> {
    const job = this.lookup(state);
    if (!job) {
      emit('[stockade] cleanup_job: no job of this broker to clean up');
      return { exitCode: 0 };
    }
    await this.end(job, emit);
    return { exitCode: 0 };
  }

  private limitsText(job: HookJob): string {
    const l = this.o.limits;
    return `memory ${Math.round(l.memoryBytes / 1024 ** 2)} MiB, ${l.pids} processes, ${l.cpus} CPUs, ${Math.round(l.timeoutMs / 1000)} s, output ${Math.round(l.outputBytes / 1024 ** 2)} MiB, ${job.net ? `network only to ${this.o.allow.join(', ') || 'its services'}` : 'no network'}`;
  }

  /** Stops what runs, removes the job's containers and network, keeps its summary for its runner directory. */
  private async end(job: HookJob, emit: Emit): Promise<void> {
    job.running?.abort();
    this.jobs.delete(job.key);
    const report = job.net?.report;
    if (job.services) await job.services.stop(new LogSink(new SecretMasker(), (_stream, text) => emit(text))).catch((e: unknown) => this.o.logger.error({ err: e }, 'hook job services stop failed'));
    if (job.net) await job.net.stop(new LogSink(new SecretMasker(), (_stream, text) => emit(text))).catch((e: unknown) => this.o.logger.error({ err: e }, 'hook job network stop failed'));
    const engine = this.o.sandbox.deps.engine;
    const left = await engine.listContainers(`${LABEL_JOB}=hook-${job.key}`).catch(() => []);
    for (const c of left) await engine.removeContainer(c.id).catch((e: unknown) => this.o.logger.error({ err: e, container: c.id }, 'hook job container remove failed'));
    emit(`[stockade] job ${job.key}: ${job.steps} containers run, ${left.length} left over removed`);
    this.summaries.add({ root: job.dirs.root, outcomes: job.outcomes, refusals: job.refusals, limits: this.limitsText(job), network: report });
  }

  /**
   * The runner of this directory is gone (it finished, died or was stopped): whatever of its jobs is
   * left is removed (a runner killed mid-job never calls cleanup_job), and what Stockade saw is returned.
   */
  async finishRunner(root: string): Promise<RunnerSummary> {
    for (const job of [...this.jobs.values()]) if (job.dirs.root === root) await this.end(job, () => undefined);
    return this.summaries.take(root);
  }
}
