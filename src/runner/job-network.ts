import type { StepSpec } from '../sandbox';
import { describeRefusal, parseEgressEvent, SIDECAR_PORTS, type EgressEvent, type SidecarConfig } from '../egress';
import type { LogSink } from './step-log';
import type { EgressReport } from './types';
import type { Logger } from '../common';
import type { ResourceLimits, Sandbox } from '../sandbox';
import type { EgressSettings } from './types';
import type { StepDeps, StepRun } from './step-types';
import { startWaitingSidecar, type SidecarShape, type WaitingSidecar } from './egress-sidecar';
import { helperPoolOf, REFILL_AFTER_MS } from './helper-pool';
import type { Forwarder, ForwarderShape } from './job-results';
export { lastHostAddress } from './egress-sidecar';

export interface JobNetwork {
  network: string;
  /** Address of the egress sidecar on the job network; undefined when the job has no egress. */
  sidecar?: string;
  /** Service name → address, written to every step's /etc/hosts. */
  hosts: Record<string, string>;
  /** The network field of a container on this network. */
  spec(aliases?: string[]): StepSpec['network'];
  /** Proxy variables for steps (empty without egress). */
  env(): Record<string, string>;
  report: EgressReport;
  /** Called for every sidecar event (metrics). */
  onEvent?: (e: EgressEvent) => void;
  /** Stops the sidecar and removes the network. */
  stop(sink: LogSink): Promise<void>;
}

const MAX_REFUSALS_KEPT = 50;

/**
 * The job's own internal network (no route out, no DNS server of Podman's), and,
 * when the job may reach anything, its egress sidecar: the only member with a
 * second leg out, the only DNS server of the steps, and their only proxy.
 */
/** What a job's network needs of the job: local and app mode give it from their run, runner mode from its hook job. */
export interface JobNetworkContext {
  sandbox: Sandbox;
  logger: Logger;
  /** Names the network (`stockade-<key>`) and its sidecar. */
  key: string;
  /** The job's ownership labels (managed, owner, job). */
  labels: Record<string, string>;
  /** The image the sidecar runs in (the runner's base image). */
  image: string;
  limits: ResourceLimits;
  /** Epoch ms the job must end by: the sidecar's wall limit. */
  deadline: number;
  egress?: EgressSettings;
  nodeBinary?: string;
  /** Masks secrets in a text that leaves the job (a refused name can spell one). */
  mask(text: string): string;
  /** The job's results forwarder, when it has a results service (a network made ahead carries one). */
  forwarder?: ForwarderShape;
}

/** The network context of a local or app-mode run. */
export function networkContext(deps: StepDeps, run: StepRun): JobNetworkContext {
  const s = run.settings;
  const forwarder = s.results ? { sandbox: deps.sandbox, logger: deps.logger, settings: s.results, image: s.image, nodeBinary: s.nodeBinary, owner: run.volumes.owner } : undefined;
  return { sandbox: deps.sandbox, logger: deps.logger, key: run.volumes.key, labels: run.volumes.labels, image: s.image, limits: s.limits, deadline: run.deadline, egress: s.egress, nodeBinary: s.nodeBinary, mask: (t) => run.state.masker.mask(t), forwarder };
}

export interface JobNetworkHooks {
  /** The network exists; the sidecar is not started yet (what needs only the network can start beside it). `forwarder`: a results forwarder made ahead with it. */
  onCreated?(network: string, forwarder?: Forwarder): void;
  /** The sidecar's fixed address is chosen and its container is about to start (a step's container can be made meanwhile). */
  onSidecarAddress?(network: string, address: string): void;
}

export async function startJobNetwork(ctx: JobNetworkContext, allow: string[], sink: LogSink, onEvent?: (e: EgressEvent) => void, audit = false, hooks: JobNetworkHooks = {}): Promise<JobNetwork> {
  const engine = ctx.sandbox.deps.engine;
  const wantsEgress = allow.length > 0 || audit;
  const egress = ctx.egress;
  if (wantsEgress && !egress) throw new Error('this runner has no egress configured');
  const shape: SidecarShape | undefined = wantsEgress && egress ? { sandbox: ctx.sandbox, logger: ctx.logger, image: ctx.image, limits: ctx.limits, nodeBinary: ctx.nodeBinary, sidecarScript: egress.sidecarScript, forwarder: ctx.forwarder } : undefined;
  const pool = shape ? helperPoolOf(ctx.sandbox) : undefined;
  // A network and sidecar made ahead (long-running hosts), else this job's own.
  const prepared = shape ? pool?.takeNetwork(shape) : undefined;
  const network = prepared?.network ?? `stockade-${ctx.key}`;
  if (!prepared) {
    // One idle container keeps the rootless network namespace (and its slirp4netns) up, so this job does not leave a zombie.
    await ctx.sandbox.keepNetnsAlive(ctx.image);
    await engine.createNetwork(network, ctx.labels, { internal: true });
  }
  hooks.onCreated?.(network, prepared?.forwarder);
  const report: EgressReport = { dnsAllowed: 0, dnsRefused: 0, connectionsAllowed: 0, connectionsRefused: 0, bytesOut: 0, refusals: [] };
  let sidecar: WaitingSidecar | undefined = prepared?.sidecar;
  let refills = () => undefined as void;
  const stop = async (out: LogSink) => {
    refills();
    if (sidecar && report.dnsRefused + report.connectionsRefused) {
      out.write('stdout', `[stockade] egress: ${report.dnsRefused + report.connectionsRefused} blocked network attempts`);
      for (const r of report.refusals) out.write('stdout', `[stockade]   blocked: ${r}`);
    }
    if (prepared) return prepared.remove();
    await sidecar?.remove();
    await engine.removeNetwork(network).catch((e: unknown) => ctx.logger.error({ err: e, network }, 'network remove failed'));
  };
  const jn: JobNetwork = {
    network,
    hosts: {},
    report,
    onEvent,
    spec(aliases) {
      return { mode: 'internal', network, aliases, hosts: { ...this.hosts }, dns: [this.sidecar ?? '127.0.0.1'] };
    },
    env(): Record<string, string> {
      if (!this.sidecar) return {};
      const proxy = `http://${this.sidecar}:${SIDECAR_PORTS.proxy}`;
      const noProxy = ['localhost', '127.0.0.1', '::1', ...Object.keys(this.hosts)].join(',');
      return { HTTP_PROXY: proxy, HTTPS_PROXY: proxy, http_proxy: proxy, https_proxy: proxy, NO_PROXY: noProxy, no_proxy: noProxy };
    },
    stop,
  };
  if (!shape || !egress) return jn;
  if (audit) report.audited = [];
  try {
    const t0 = Date.now();
    sidecar ??= await startWaitingSidecar(shape, network, ctx.labels, ctx.deadline);
    const s = sidecar;
    s.container.stopAt(ctx.deadline);
    let ready: (address: string) => void = () => undefined;
    const readyP = new Promise<string>((r) => (ready = r));
    s.route((l) => {
      const e = parseEgressEvent(l.text);
      if (!e) return void ctx.logger.warn({ line: l.text }, 'egress sidecar output');
      if (e.ev === 'ready') return ready(e.address);
      // A refused name can carry a secret (a step spelling one into a DNS query): masked like every text that leaves the job.
      const described = describeRefusal(e);
      const refusal = described === undefined ? undefined : ctx.mask(described);
      count(report, e, refusal);
      if (refusal) ctx.logger.warn({ egress: { ev: e.ev, verdict: 'refused' } }, `blocked network attempt: ${refusal}`);
      else ctx.logger.debug({ egress: { ev: e.ev } }, 'egress');
      jn.onEvent?.(e);
    });
    if (s.address) hooks.onSidecarAddress?.(network, s.address);
    const config: SidecarConfig = { ...egress.policy, allow, upstreamDns: egress.upstreamDns, jobSubnet: s.subnet, hostAddresses: egress.hostAddresses, listen: { ...SIDECAR_PORTS } };
    await s.configure(config);
    const address = await Promise.race([
      readyP,
      s.container.exited.then(() => Promise.reject(new Error(`the egress sidecar exited before it was ready: ${s.tail().join(' | ') || 'no output'}`))),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the egress sidecar was not ready within 20 s')), 20_000).unref()),
    ]);
    jn.sidecar = address;
    sink.write('stdout', `[stockade] egress: ${allow.join(', ')} through the sidecar at ${address} (ready in ${Date.now() - t0} ms${prepared ? ', made ahead' : ''}); everything else is blocked`);
    ctx.logger.info({ network, sidecar: address, allow, ms: Date.now() - t0, prepared: !!prepared }, 'egress sidecar ready');
    // The next job's network is made once this job's start is behind it (or at its end, if sooner): made at once, it competes with this job's first step for Podman.
    if (pool) {
      const refill = setTimeout(() => pool.refillNetworks(shape), REFILL_AFTER_MS);
      refill.unref();
      refills = () => {
        clearTimeout(refill);
        pool.refillNetworks(shape);
      };
    }
    return jn;
  } catch (e) {
    await stop(sink);
    throw e;
  }
}

const MAX_AUDITED = 500;

function count(r: EgressReport, e: EgressEvent, refusal: string | undefined): void {
  // Audit mode: names that answered (DNS) or were reached (connections), once each.
  if (r.audited && (e.ev === 'dns' || e.ev === 'egress') && e.verdict === 'allowed' && e.name && !(e.ev === 'dns' && e.rcode === 'NXDOMAIN') && !r.audited.includes(e.name) && r.audited.length < MAX_AUDITED) {
    r.audited.push(e.name);
    r.audited.sort();
  }
  if (e.ev === 'dns') e.verdict === 'allowed' ? r.dnsAllowed++ : r.dnsRefused++;
  else if (e.ev === 'egress') {
    if (e.verdict === 'allowed') {
      r.connectionsAllowed++;
      r.bytesOut += e.bytesOut ?? 0;
    } else r.connectionsRefused++;
  } else if (e.ev === 'suppressed') {
    // Counts only: the sidecar stopped printing each event (the log stays bounded).
    r.dnsRefused += e.dns;
    r.connectionsRefused += e.egress;
  }
  if (refusal && r.refusals.length < MAX_REFUSALS_KEPT) r.refusals.push(refusal);
}
