import { EGRESS_NETWORK, LABEL_STEP, ensureEgressNetwork, startServiceContainer, type ServiceContainer, type StepSpec } from '../sandbox';
import { describeRefusal, parseEgressEvent, SIDECAR_PORTS, type EgressEvent, type SidecarConfig } from '../egress';
import type { LogSink } from './step-log';
import type { EgressReport } from './types';
import type { Logger } from '../common';
import type { ResourceLimits, Sandbox } from '../sandbox';
import type { EgressSettings } from './types';
import type { StepDeps, StepRun } from './step-types';
import { NODE_EXTERNALS, nodeVolumeFor, sidecarVolumeFor } from './externals-volumes';

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

const SIDECAR_DIR = '/__s';
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
}

/** The network context of a local or app-mode run. */
export function networkContext(deps: StepDeps, run: StepRun): JobNetworkContext {
  const s = run.settings;
  return { sandbox: deps.sandbox, logger: deps.logger, key: run.volumes.key, labels: run.volumes.labels, image: s.image, limits: s.limits, deadline: run.deadline, egress: s.egress, nodeBinary: s.nodeBinary, mask: (t) => run.state.masker.mask(t) };
}

export interface JobNetworkHooks {
  /** The network exists; the sidecar is not started yet (what needs only the network can start beside it). */
  onCreated?(network: string): void;
  /** The sidecar's fixed address is chosen and its container is about to start (a step's container can be made meanwhile). */
  onSidecarAddress?(network: string, address: string): void;
}

export async function startJobNetwork(ctx: JobNetworkContext, allow: string[], sink: LogSink, onEvent?: (e: EgressEvent) => void, audit = false, hooks: JobNetworkHooks = {}): Promise<JobNetwork> {
  const deps = ctx;
  const network = `stockade-${ctx.key}`;
  const engine = ctx.sandbox.deps.engine;
  // One idle container keeps the rootless network namespace (and its slirp4netns) up, so this job does not leave a zombie.
  await ctx.sandbox.keepNetnsAlive(ctx.image);
  await engine.createNetwork(network, ctx.labels, { internal: true });
  hooks.onCreated?.(network);
  const report: EgressReport = { dnsAllowed: 0, dnsRefused: 0, connectionsAllowed: 0, connectionsRefused: 0, bytesOut: 0, refusals: [] };
  let sidecar: ServiceContainer | undefined;
  const tail: string[] = [];
  const stop = async (out: LogSink) => {
    if (sidecar) {
      await sidecar.stop();
      if (report.dnsRefused + report.connectionsRefused) {
        out.write('stdout', `[stockade] egress: ${report.dnsRefused + report.connectionsRefused} blocked network attempts`);
        for (const r of report.refusals) out.write('stdout', `[stockade]   blocked: ${r}`);
      }
    }
    await engine.removeNetwork(network).catch((e: unknown) => deps.logger.error({ err: e, network }, 'network remove failed'));
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
  if (!allow.length && !audit) return jn;
  const egress = ctx.egress;
  if (audit) report.audited = [];
  if (!egress) throw new Error('this runner has no egress configured');
  try {
    const t0 = Date.now();
    await ensureEgressNetwork(engine);
    const subnet = await engine.networkSubnet(network);
    if (!subnet) throw new Error(`network ${network} has no IPv4 subnet`);
    const node = await nodeVolumeFor(ctx.sandbox, ctx.nodeBinary);
    const scriptVolume = await sidecarVolumeFor(ctx.sandbox, egress.sidecarScript);
    const config: SidecarConfig = { ...egress.policy, allow, upstreamDns: egress.upstreamDns, jobSubnet: subnet, hostAddresses: egress.hostAddresses, listen: { ...SIDECAR_PORTS } };
    // A fixed address at the top of the subnet (the IPAM hands out addresses from the bottom): known before the sidecar is ready.
    const fixed = lastHostAddress(subnet);
    let ready: (address: string) => void = () => undefined;
    const readyP = new Promise<string>((r) => (ready = r));
    const name = `${network}-egress`;
    sidecar = await startServiceContainer(
      { ...deps.sandbox.deps, logger: deps.logger.child({ service: 'egress' }) },
      {
        name,
        image: ctx.image,
        argv: [`${NODE_EXTERNALS}/bin/node`, '--max-old-space-size=96', `${SIDECAR_DIR}/sidecar.js`],
        env: { STOCKADE_EGRESS_CONFIG: JSON.stringify(config) },
        workdir: '/',
        mounts: [
          { volume: node, target: NODE_EXTERNALS, readOnly: true },
          { volume: scriptVolume, target: SIDECAR_DIR, readOnly: true },
        ],
        limits: { ...ctx.limits, memoryBytes: 256 * 1024 ** 2, pids: 64, cpus: Math.min(1, ctx.limits.cpus), tmpfsBytes: 16 * 1024 ** 2, outputBytes: 64 * 1024 ** 2, timeoutMs: Math.max(1000, ctx.deadline - Date.now()) },
        network: { mode: 'internal', network, egressNetwork: EGRESS_NETWORK, ip: fixed },
        sysctls: { 'net.ipv4.ip_unprivileged_port_start': '0' },
        security: { seccompProfilePath: ctx.sandbox.seccompProfilePath, readOnlyRoot: true },
        labels: { ...ctx.labels, [LABEL_STEP]: 'egress' },
      },
      (l) => {
        const e = parseEgressEvent(l.text);
        if (!e) {
          tail.push(l.text);
          if (tail.length > 20) tail.shift();
          deps.logger.warn({ line: l.text }, 'egress sidecar output');
          return;
        }
        if (e.ev === 'ready') return ready(e.address);
        // A refused name can carry a secret (a step spelling one into a DNS query): masked like every text that leaves the job.
        const described = describeRefusal(e);
        const refusal = described === undefined ? undefined : ctx.mask(described);
        count(report, e, refusal);
        if (refusal) deps.logger.warn({ egress: { ev: e.ev, verdict: 'refused' } }, `blocked network attempt: ${refusal}`);
        else deps.logger.debug({ egress: { ev: e.ev } }, 'egress');
        jn.onEvent?.(e);
      },
    );
    if (fixed) hooks.onSidecarAddress?.(network, fixed);
    const address = await Promise.race([
      readyP,
      sidecar.exited.then(() => Promise.reject(new Error(`the egress sidecar exited before it was ready: ${tail.join(' | ') || 'no output'}`))),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the egress sidecar was not ready within 20 s')), 20_000).unref()),
    ]);
    jn.sidecar = address;
    sink.write('stdout', `[stockade] egress: ${allow.join(', ')} through the sidecar at ${address} (ready in ${Date.now() - t0} ms); everything else is blocked`);
    deps.logger.info({ network, sidecar: address, allow, ms: Date.now() - t0 }, 'egress sidecar ready');
    return jn;
  } catch (e) {
    await stop(sink);
    throw e;
  }
}

const MAX_AUDITED = 500;

/** The last host address of an IPv4 subnet below its broadcast (`10.89.3.0/24` → `10.89.3.254`); undefined for a subnet too small or not IPv4. */
export function lastHostAddress(subnet: string): string | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(subnet);
  if (!m) return undefined;
  const bits = Number(m[5]);
  const octets = m.slice(1, 5).map(Number);
  if (bits < 8 || bits > 28 || octets.some((o) => o > 255)) return undefined;
  const base = octets.reduce((a, o) => a * 256 + o, 0);
  const size = 2 ** (32 - bits);
  const last = Math.floor(base / size) * size + size - 2;
  return [24, 16, 8, 0].map((s) => Math.floor(last / 2 ** s) % 256).join('.');
}

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
