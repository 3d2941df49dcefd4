import { DEFAULT_IMAGE_POLICY, imageRefusal, mapImage } from './image-policy';
import { LABEL_STEP, runStepContainer, startServiceContainer, type ServiceContainer } from '../sandbox';
import { interpolate, type ContainerModel, type JobStatus } from '../workflow';
import type { LogSink } from './step-log';
import type { StepDeps, StepRun } from './step-types';
import type { JobNetwork } from './job-network';
import type { Logger } from '../common';
import type { ResourceLimits, Sandbox } from '../sandbox';
import type { ImagePolicy } from './image-policy';

/** One service as the job names it, its expressions already evaluated. */
export interface ServiceRequest {
  name: string;
  image: string;
  env: Record<string, string>;
  options?: string;
  ports: string[];
  volumes: string[];
}

/** What starting a job's services needs of the job (local and app mode from their run, runner mode from its hook job). */
export interface ServicesContext {
  sandbox: Sandbox;
  logger: Logger;
  imagePolicy?: ImagePolicy;
  images?: Record<string, string>;
  limits: ResourceLimits;
  deadline: number;
  labels: Record<string, string>;
  mask(text: string): string;
  signal?: AbortSignal;
}

/** The services of a local or app-mode job, interpolated, and the context they start in. */
export function runServices(deps: StepDeps, run: StepRun, services: Record<string, ContainerModel>, contexts: Record<string, unknown>, status: JobStatus): { ctx: ServicesContext; services: ServiceRequest[] } {
  const s = run.settings;
  return {
    ctx: { sandbox: deps.sandbox, logger: deps.logger, imagePolicy: s.imagePolicy, images: s.images, limits: s.limits, deadline: run.deadline, labels: run.volumes.labels, mask: (t) => run.state.masker.mask(t), signal: deps.signal },
    services: Object.entries(services).map(([name, svc]) => ({
      name,
      image: interpolate(svc.image, contexts, status).trim(),
      env: Object.fromEntries(Object.entries(svc.env).map(([k, v]) => [k, interpolate(v, contexts, status)])),
      options: svc.options === undefined ? undefined : interpolate(svc.options, contexts, status),
      ports: svc.ports,
      volumes: svc.volumes,
    })),
  };
}

/** Service output lines kept per service for the "Stop containers" log. */
const SERVICE_LOG_TAIL = 200;

export interface HealthCheck {
  cmd: string;
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
}

/** Splits `options:` like a shell would (quotes group words). */
export function splitOptions(text: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  let cur = '';
  let last = -1;
  for (const m of text.matchAll(re)) {
    const piece = m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] ?? m[3]!);
    if (m.index === last && cur) cur += piece;
    else {
      if (cur || last !== -1) out.push(cur);
      cur = piece;
    }
    last = m.index + m[0].length;
  }
  if (last !== -1) out.push(cur);
  return out;
}

function durationMs(v: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v.trim());
  if (!m) throw new Error(`${flag} '${v}' is not a duration such as 10s`);
  const n = Number(m[1]);
  return n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
}

/**
 * The `options:` of a service. Only health-check options are honoured (the
 * sandbox decides everything else); any other option is refused by name.
 */
export function parseServiceOptions(options: string | undefined): HealthCheck | undefined {
  if (!options?.trim()) return undefined;
  const words = splitOptions(options);
  const values: Record<string, string> = {};
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    const eq = w.indexOf('=');
    const flag = eq > 0 ? w.slice(0, eq) : w;
    if (!['--health-cmd', '--health-interval', '--health-timeout', '--health-retries', '--health-start-period'].includes(flag)) {
      throw new Error(`service option '${flag}' is not supported: only --health-cmd, --health-interval, --health-timeout, --health-retries and --health-start-period are; the sandbox sets the rest`);
    }
    const value = eq > 0 ? w.slice(eq + 1) : words[++i];
    if (value === undefined) throw new Error(`service option ${flag} needs a value`);
    values[flag] = value;
  }
  if (!values['--health-cmd']) return undefined;
  const retries = Number(values['--health-retries'] ?? 3);
  if (!Number.isInteger(retries) || retries < 1 || retries > 100) throw new Error(`--health-retries '${values['--health-retries']}' is not a whole number from 1 to 100`);
  return {
    cmd: values['--health-cmd'],
    intervalMs: durationMs(values['--health-interval'] ?? '2s', '--health-interval'),
    timeoutMs: durationMs(values['--health-timeout'] ?? '30s', '--health-timeout'),
    retries,
    startPeriodMs: durationMs(values['--health-start-period'] ?? '0s', '--health-start-period'),
  };
}

export interface JobServices {
  /** Stops every service; writes each service's log tail to `sink`. */
  stop(sink: LogSink): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts the job's service containers on its internal network (no route out),
 * reachable by their service names (written to the /etc/hosts of later
 * containers); waits for the health command of each when there is one. On any
 * failure everything started is removed.
 */
export async function startJobServices(ctx: ServicesContext, net: JobNetwork, services: ServiceRequest[], sink: LogSink): Promise<JobServices & { ids: string[] }> {
  const deps = ctx;
  const network = net.network;
  const engine = ctx.sandbox.deps.engine;
  const started: Array<{ name: string; c: ServiceContainer; tail: string[] }> = [];
  const stop = async (out: LogSink) => {
    for (const s of started) {
      await s.c.stop();
      out.write('stdout', `##[group]Service ${s.name}: last ${s.tail.length} lines`);
      for (const l of s.tail) out.write('stdout', l);
      out.write('stdout', '##[endgroup]');
    }
  };
  try {
    for (const svc of services) {
      const name = svc.name;
      if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/.test(name)) throw new Error(`service name '${name}' is not a valid host name`);
      const image = svc.image.trim() ? mapImage(svc.image, ctx.imagePolicy) : '';
      // GitHub: "If you assign an empty string to image, the service will not start" (conditional services).
      if (!image) {
        sink.write('stdout', `[stockade] service ${name}: its image is empty, so it is not started (as on GitHub)`);
        continue;
      }
      const refused = imageRefusal(image, ctx.imagePolicy ?? DEFAULT_IMAGE_POLICY, ctx.images);
      if (refused) throw new Error(`service ${name}: ${refused}`);
      if (svc.volumes.length) throw new Error(`service ${name}: volumes are not supported: host paths are never mounted`);
      const health = parseServiceOptions(svc.options);
      if (!(await engine.imageExists(image))) throw new Error(`service ${name}: image ${image} is not present on this host (no registry is reachable; build it locally first)`);
      if (svc.ports.length) sink.write('stdout', `[stockade] service ${name}: ports ${svc.ports.join(', ')} need no mapping; steps reach ${name} on the job network`);
      const cmd = await engine.imageCommand(image);
      if (!cmd.argv.length) throw new Error(`service ${name}: image ${image} has no command to run`);
      const env: Record<string, string> = { ...svc.env };
      const tail: string[] = [];
      sink.write('stdout', `[stockade] starting service ${name} (${image}) on network ${network}`);
      const c = await startServiceContainer(
        { ...deps.sandbox.deps, logger: deps.logger.child({ service: name }) },
        {
          name: `${network}-svc-${name.toLowerCase()}`,
          image,
          argv: cmd.argv,
          env,
          workdir: cmd.workdir,
          mounts: [],
          limits: { ...ctx.limits, timeoutMs: Math.max(1000, ctx.deadline - Date.now()) },
          network: net.spec([name]),
          security: { seccompProfilePath: deps.sandbox.seccompProfilePath, readOnlyRoot: false },
          labels: { ...ctx.labels, [LABEL_STEP]: `service-${name}` },
        },
        (l) => {
          tail.push(ctx.mask(l.text));
          if (tail.length > SERVICE_LOG_TAIL) tail.shift();
        },
      );
      started.push({ name, c, tail });
      net.hosts[name] = await engine.containerAddress(c.id, network);
      if (health) await waitHealthy(ctx, name, image, `${network}-svc-${name.toLowerCase()}`, health, c, sink);
    }
  } catch (e) {
    await stop(sink);
    throw e;
  }
  return { stop, ids: started.map((s) => s.c.id) };
}

async function waitHealthy(ctx: ServicesContext, name: string, image: string, container: string, h: HealthCheck, svc: ServiceContainer, sink: LogSink): Promise<void> {
  const deps = ctx;
  let ended = false;
  void svc.exited.then(() => (ended = true));
  if (h.startPeriodMs) await sleep(h.startPeriodMs);
  for (let attempt = 1; attempt <= h.retries; attempt++) {
    if (ended) throw new Error(`service ${name} exited before it was healthy`);
    const lines: string[] = [];
    // The probe is a sandboxed container of its own that shares only the service's network namespace.
    const o = await runStepContainer(
      { ...deps.sandbox.deps, logger: deps.logger.child({ service: name, probe: attempt }) },
      {
        name: `${container}-probe-${attempt}`,
        image,
        argv: ['/bin/sh', '-c', h.cmd],
        env: {},
        workdir: '/',
        mounts: [],
        limits: { ...ctx.limits, timeoutMs: Math.max(100, Math.min(h.timeoutMs, ctx.deadline - Date.now())) },
        network: { mode: 'container', container },
        security: { seccompProfilePath: deps.sandbox.seccompProfilePath, readOnlyRoot: true },
        labels: { ...ctx.labels, [LABEL_STEP]: `probe-${name}` },
      },
      (l) => lines.push(l.text),
      deps.signal,
    );
    if (o.ok) {
      sink.write('stdout', `[stockade] service ${name} is healthy (attempt ${attempt})`);
      return;
    }
    sink.write('stdout', `[stockade] service ${name} is not healthy yet (attempt ${attempt}/${h.retries}, ${o.reason} ${String(o.exitCode)})${lines.length ? `: ${lines.slice(-1)[0]}` : ''}`);
    if (deps.signal?.aborted) throw new Error('cancelled');
    if (attempt < h.retries) await sleep(h.intervalMs);
  }
  throw new Error(`service ${name} is unhealthy after ${h.retries} health checks`);
}
