import { mayWarm, settleContainers, startWarm } from './prewarm';
import type { StepSpec } from '../sandbox';
import { stepShape } from './run-script';
import { join } from 'node:path';
import { chmod } from 'node:fs/promises';
import { isStockadeError, Phases, type Logger } from '../common';
import { copyTreeIntoVolume, makeVolumeDir, writeVolumeFile, type Sandbox } from '../sandbox';
import { evaluateValue, interpolate, SecretMasker, type JobModel, type JobStatus, type WorkflowModel } from '../workflow';
import { DEFAULT_IMAGE_POLICY, imageRefusal } from './image-policy';
import { runUses } from './actions';
import { runPreSteps } from './pre-steps';
import { createJobVolumes, type JobVolumes } from './job-volumes';
import { baseContexts, jobStatus, type InstanceFacts, type NeedsResult } from './job-contexts';
export type { NeedsResult } from './job-contexts';
import { evaluateEnv } from './step-env';
import { runServices, startJobServices, type JobServices } from './job-services';
import { networkContext, startJobNetwork, type JobNetwork } from './job-network';
import { startJobResults, type Forwarder, type JobResults } from './job-results';
import { takeLoopbackForwarder } from './helper-pool';
import { tokenPermissions } from './job-token';
import { egressAllowlist, egressOf, NO_EGRESS } from './job-egress';
import { imageForLabels, jobContainer } from './job-image';
import { LogSink } from './step-log';
import { runStep, toResult } from './run-step';
import type { Executed, JobState, Scope, StepDeps, StepRun } from './step-types';
import type { Conclusion, JobResult, JobSettings, RunContext, RunObserver, StepResult } from './types';

export interface JobDeps {
  sandbox: Sandbox;
  logger: Logger;
  observer?: RunObserver;
  signal?: AbortSignal;
}

/** One job to run: a job of the workflow, or one combination of its matrix. */
export interface JobInstance {
  job: JobModel;
  /** Display name (`build (18, ubuntu)` for a matrix job). */
  name: string;
  facts: InstanceFacts;
}

/** A masker knowing the run's secrets (each value, its lines and encodings). */
export function maskerFor(secrets: Record<string, string>): SecretMasker {
  const m = new SecretMasker();
  for (const v of Object.values(secrets)) m.add(v);
  return m;
}

/** Prepares the first step's container (prewarm.ts) while the job's helpers start, when that step is a script in the runner's image. */
function warmFirstStep(deps: StepDeps, run: StepRun, network: StepSpec['network']): void {
  const first = run.job.steps[0];
  if (!first || first.run === undefined || first.uses) return;
  const like = { ...stepShape(deps, run, run.image, String(first.index)), network };
  if (mayWarm(run, like)) startWarm(deps, run, like);
}

/** Runs one job: fresh volumes, one container per step, volumes removed at the end whatever happens. */
export async function runJob(deps: JobDeps, wf: WorkflowModel, instance: JobInstance, ctx: RunContext, settings: JobSettings, needs: Record<string, NeedsResult>): Promise<JobResult> {
  const { job } = instance;
  const started = Date.now();
  const contexts = baseContexts(ctx, job.id, needs, instance.facts);
  const masker = maskerFor(ctx.secrets);
  const name = masker.mask(instance.name);
  const log = deps.logger.child({ jobId: job.id });
  // Where the job's start went, to its first step (a debug line; bench/job-start.ts prints the table).
  const phases = new Phases();
  deps.observer?.jobStarted?.(job.id, name);
  let volumes: JobVolumes | undefined;
  let diskUsage: import('../sandbox').DiskUsage | undefined;
  const state: JobState = { env: {}, path: [], summary: [], results: [], masker, post: [], extraMounts: [], extraVolumes: [], actions: new Map(), actionsUsed: [], containers: 0, preState: new Map(), noRoute: [], pending: [] };
  const scope: Scope = { steps: {}, inputs: ctx.inputs, envBase: [literalEnv(settings.machineEnv), wf.env, job.env], defaults: [job.defaults, wf.defaults], status: { failed: false }, actionPath: '', depth: 0, deadline: 0 };
  let error: string | undefined;
  let continueOnError = false;
  let services: JobServices | undefined;
  let net: JobNetwork | undefined;
  let jobResults: JobResults | undefined;
  let jobToken: { token: string; revoke(): Promise<void> } | undefined;
  try {
    if (settings.jobToken) {
      // The job's own GITHUB_TOKEN: this repository only, the permissions the workflow grants.
      jobToken = await settings.jobToken.mint(tokenPermissions(wf, job, settings.jobToken.readOnly), job.id);
      phases.mark('job token');
      masker.add(jobToken.token);
      ctx = { ...ctx, secrets: { ...ctx.secrets, GITHUB_TOKEN: jobToken.token } };
      contexts.secrets = ctx.secrets;
      (contexts.github as Record<string, unknown>).token = jobToken.token;
    }
    const noSteps: JobStatus = { success: () => true, failure: () => false, cancelled: () => !!deps.signal?.aborted };
    continueOnError = Boolean(evaluateValue(job.continueOnError, contexts, noSteps));
    const timeoutMinutes = Number(evaluateValue(job.timeoutMinutes, contexts, noSteps));
    if (!(timeoutMinutes > 0)) throw new Error(`timeout-minutes evaluates to '${String(timeoutMinutes)}', not a positive number`);
    const deadline = started + timeoutMinutes * 60_000;
    scope.deadline = deadline;
    const chosen = imageForLabels(job, contexts, noSteps, settings);
    const container = jobContainer(job, contexts, noSteps, chosen.image, settings.imagePolicy);
    // An image named through an expression meets the same policy as one written out (checked before the run).
    const refused = job.container ? imageRefusal(container.image, settings.imagePolicy ?? DEFAULT_IMAGE_POLICY, settings.images) : undefined;
    if (refused) throw new Error(`container: ${refused}`);
    if (!(await deps.sandbox.deps.engine.imageExists(container.image))) {
      throw new Error(
        chosen.label && !job.container
          ? `runner image '${chosen.label}' (${container.image}) is not built on this host: run \`stockade images build ${chosen.label}\``
          : `container image ${container.image} is not present on this host (no registry is reachable; build it locally first)`,
      );
    }
    phases.mark('image check');
    volumes = await createJobVolumes(deps.sandbox, job.id, log, settings.disk);
    phases.mark('volumes + disk');
    await prepareWorkspace(volumes, settings.sourceDir, ctx.event, !!settings.disposableSource);
    phases.mark('workspace');
    if (settings.toolCacheDir) await copyTreeIntoVolume(settings.toolCacheDir, volumes.mountpoint.toolCache, volumes.owner);
    const run: StepRun = { wf, job, ctx, settings, contexts, volumes, state, image: container.image, containerEnv: container.env, deadline };
    const allow = egressAllowlist(wf, job, contexts, noSteps, settings);
    // Audit mode starts the sidecar even without an allowlist; STOCKADE_EGRESS: none still means no network.
    const audit = !!settings.egress?.policy.audit && allow !== NO_EGRESS;
    // The results service needs only the job's network, not its sidecar or services: it starts as soon as the network exists.
    let resultsStarting: Promise<JobResults> | undefined;
    const startResults = (network?: string, premade?: Forwarder) => {
      if (!settings.results || resultsStarting) return;
      const token = ctx.secrets.GITHUB_TOKEN;
      const github = settings.githubApi && token ? { upstream: settings.githubApi.rest, graphql: settings.githubApi.graphql, token } : undefined;
      // A job without a network: a forwarder made ahead (long-running hosts), whose namespace its first step then joins at once.
      const loopback = network ? undefined : takeLoopbackForwarder(deps.sandbox, { sandbox: deps.sandbox, logger: log, settings: settings.results, image: settings.image, nodeBinary: settings.nodeBinary, owner: volumes!.owner });
      if (loopback) warmFirstStep({ ...deps, logger: log }, run, { mode: 'container', container: loopback.name });
      resultsStarting = startJobResults(
        { sandbox: deps.sandbox, logger: log, settings: settings.results, key: volumes!.key, labels: volumes!.labels, image: settings.image, nodeBinary: settings.nodeBinary, owner: volumes!.owner, deadline, ctx, mask: (t) => masker.add(t), github },
        network ? { network } : undefined,
        // A job without a network: its first step shares the forwarder's namespace, so its container can be prepared while the forwarder starts.
        network ? undefined : (container) => warmFirstStep({ ...deps, logger: log }, run, { mode: 'container', container }),
        premade ?? loopback,
      );
      resultsStarting.catch(() => undefined);
    };
    if (Object.keys(job.services).length || allow.length || audit) {
      const sink = new LogSink(masker, (stream, text) => deps.observer?.line?.(job.id, 'Initialize containers', stream, text));
      deps.observer?.stepStarted?.(job.id, { index: -1, name: 'Initialize containers' });
      const t0 = Date.now();
      try {
        net = await startJobNetwork(networkContext({ ...deps, logger: log }, run), allow, sink, (e) => deps.observer?.egress?.(job.id, e), audit, {
          onCreated: startResults,
          // Without services the first step's network is known once the sidecar's address is: the step's container is made while the sidecar starts.
          onSidecarAddress: Object.keys(job.services).length ? undefined : (network, address) => warmFirstStep({ ...deps, logger: log }, run, { mode: 'internal', network, hosts: {}, dns: [address] }),
        });
        run.net = net;
        if (Object.keys(job.services).length) {
          const req = runServices({ ...deps, logger: log }, run, job.services, contexts, noSteps);
          services = await startJobServices(req.ctx, net, req.services, sink);
        }
      } catch (e) {
        // Nothing of the job runs: the network goes now, so no "Stop containers" step is shown.
        await resultsStarting?.then((r) => r.stop()).catch((err: unknown) => log.error({ err }, 'results service stop failed'));
        resultsStarting = undefined;
        await net?.stop(sink);
        net = run.net = undefined;
        const r = toResult(run, -1, undefined, 'Initialize containers', sink, { ...failed((e as Error).message), durationMs: Date.now() - t0 }, false);
        state.results.push(r);
        deps.observer?.stepFinished?.(job.id, r);
        throw e;
      }
      phases.mark('network + sidecar + services');
      const r = toResult(run, -1, undefined, 'Initialize containers', sink, { outcome: 'success', exitCode: 0, reason: 'exit', outputs: {}, durationMs: Date.now() - t0, peakMemoryBytes: 0, cpuSeconds: 0 }, false);
      state.results.push(r);
      deps.observer?.stepFinished?.(job.id, r);
    }
    if (settings.results) {
      startResults(net?.network);
      const results = await resultsStarting!;
      run.results = jobResults = results;
      phases.mark('results service');
      if (results.env.GITHUB_API_URL) Object.assign(contexts.github as Record<string, unknown>, { api_url: results.env.GITHUB_API_URL, graphql_url: results.env.GITHUB_GRAPHQL_URL });
    }
    for (const r of await runPreSteps({ ...deps, logger: log }, run, scope, job.steps)) {
      state.results.push(r);
      deps.observer?.stepFinished?.(job.id, r);
    }
    phases.mark('pre steps');
    log.debug({ phases: phases.ms }, 'job phases before its first step');
    for (const [i, step] of job.steps.entries()) {
      // No container is prepared behind the job's last step when nothing runs after it (one-step jobs pay nothing for the prewarm).
      state.lastStep = i === job.steps.length - 1 && !state.post.length;
      const r = await runStep({ ...deps, logger: log }, run, scope, step, runUses);
      state.results.push(r);
      deps.observer?.stepFinished?.(job.id, r);
    }
    for (const [i, post] of [...state.post].reverse().entries()) {
      state.lastStep = i === state.post.length - 1;
      const r = await post.run();
      if (r.conclusion === 'failure') scope.status.failed = true;
      state.results.push(r);
      deps.observer?.stepFinished?.(job.id, r);
    }
  } catch (e) {
    error = masker.mask(isStockadeError(e) ? e.describe() : (e as Error).message);
    log.error({ err: e }, 'job failed before its steps completed');
    scope.status.failed = true;
  } finally {
    // The prepared container no step took, and the step containers whose removal was deferred, go first.
    await settleContainers({ sandbox: deps.sandbox, logger: log }, { state });
    diskUsage = await volumes?.disk?.usage().catch(() => undefined);
    if (volumes && settings.collectWorkspace) await settings.collectWorkspace(volumes.mountpoint.workspace).catch((e: unknown) => log.error({ err: e }, 'collecting files from the workspace failed'));
    // The job's volumes are mounted by no service or sidecar: they go while those stop.
    const removeVolumes = (async () => {
      await volumes?.remove();
      for (const v of state.extraVolumes) await deps.sandbox.deps.engine.removeVolume(v).catch((e: unknown) => log.error({ err: e, volume: v }, 'volume remove failed'));
    })();
    removeVolumes.catch(() => undefined);
    await jobResults?.stop().catch((e: unknown) => log.error({ err: e }, 'results service stop failed'));
    // Revoked as the job ends, as GitHub's runner does: a copy a step kept is worth nothing after it.
    await jobToken?.revoke().catch((e: unknown) => log.warn({ err: e }, 'the job token could not be revoked (it expires within an hour)'));
    if (services || net) {
      const sink = new LogSink(masker, (stream, text) => deps.observer?.line?.(job.id, 'Stop containers', stream, text));
      const t0 = Date.now();
      await services?.stop(sink);
      await net?.stop(sink);
      const r: StepResult = { index: -1, name: 'Stop containers', conclusion: 'success', outcome: 'success', reason: 'exit', exitCode: 0, durationMs: Date.now() - t0, peakMemoryBytes: 0, cpuSeconds: 0, outputs: {}, annotations: [], log: sink.lines, logDroppedLines: sink.droppedLines };
      state.results.push(r);
      deps.observer?.stepFinished?.(job.id, r);
    }
    await removeVolumes;
  }
  const status = volumes ? jobStatus(scope.status, deps.signal) : undefined;
  const outcome: Conclusion = deps.signal?.aborted ? 'cancelled' : scope.status.failed ? 'failure' : 'success';
  const outputs: Record<string, string> = {};
  let outputEnv: Record<string, string> = {};
  try {
    outputEnv = evaluateEnv([literalEnv(settings.machineEnv), wf.env, job.env], contexts, jobStatus(scope.status, deps.signal));
  } catch {
    // an env value that fails to evaluate already failed the job's steps
  }
  for (const [k, v] of Object.entries(job.outputs)) {
    const value = safeInterpolate(v, { ...contexts, steps: scope.steps, env: outputEnv }, status);
    // GitHub drops an output that holds a secret rather than publish it.
    if (masker.contains(value)) log.warn({ output: k }, `Skip output '${k}' since it may contain secret.`);
    else outputs[k] = value;
  }
  const conclusion: Conclusion = outcome === 'failure' && continueOnError ? 'success' : outcome;
  const result: JobResult = {
    id: job.id,
    name,
    conclusion,
    outcome,
    matrix: instance.facts.matrix,
    outputs,
    steps: state.results,
    durationMs: Date.now() - started,
    summary: state.summary.join('\n'),
    error,
    ...egressOf(net, state),
    ...(diskUsage ? { disk: diskUsage } : {}),
    ...(jobResults ? { results: jobResults.report() } : {}),
    ...(state.actionsUsed.length ? { actions: state.actionsUsed } : {}),
  };
  deps.observer?.jobFinished?.(result);
  return result;
}

/** Literal values as `env:` entries: a `${{` in one stays text (the expression `${{ '${{' }}`), never evaluated. */
function literalEnv(env: Record<string, string> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(env ?? {}).map(([k, v]) => [k, v.replaceAll('${{', "${{ '${{' }}")]));
}

function failed(error: string): Executed {
  return { outcome: 'failure', exitCode: null, reason: 'error', error, outputs: {}, durationMs: 0, peakMemoryBytes: 0, cpuSeconds: 0 };
}

function safeInterpolate(text: string, contexts: Record<string, unknown>, status?: JobStatus): string {
  try {
    return interpolate(text, contexts, status);
  } catch {
    return '';
  }
}

async function prepareWorkspace(v: JobVolumes, sourceDir: string, event: Record<string, unknown>, link: boolean): Promise<void> {
  await copyTreeIntoVolume(sourceDir, v.mountpoint.workspace, v.owner, { link });
  // Like a machine's /tmp: every user may write, only the owner may remove (sticky).
  await chmod(v.mountpoint.tmp, 0o1777);
  await makeVolumeDir(v.mountpoint.temp, '_github_workflow', v.owner);
  await writeVolumeFile(join(v.mountpoint.temp, '_github_workflow'), 'event.json', JSON.stringify(event), v.owner);
}

