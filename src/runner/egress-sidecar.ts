import type { FileHandle } from 'node:fs/promises';
import { EGRESS_NETWORK, LABEL_STEP, ensureEgressNetwork, makeVolumeFifo, openFifoWriter, startServiceContainer, volumeOwner, writeFifoAndClose, type OutputLine, type ResourceLimits, type Sandbox, type ServiceContainer, type StepSpec } from '../sandbox';
import type { SidecarConfig } from '../egress';
import type { Logger } from '../common';
import { forwarderFingerprint, type ForwarderShape } from './job-results';
import { NODE_EXTERNALS, nodeVolumeFor, sidecarVolumeFor } from './externals-volumes';

/** What a sidecar's container depends on: two jobs of one shape can use each other's (made ahead, helper-pool.ts). */
export interface SidecarShape {
  sandbox: Sandbox;
  logger: Logger;
  /** The image it runs in (the runner's base image). */
  image: string;
  /** The job's limits, from which the sidecar's are derived. */
  limits: ResourceLimits;
  nodeBinary?: string;
  /** dist/sidecar.js. */
  sidecarScript: string;
  /** The job's results forwarder, when its jobs have a results service: made ahead with the network too. */
  forwarder?: ForwarderShape;
}

/**
 * An egress sidecar started on a job network, its listeners not bound yet: it waits, blocked on a
 * FIFO in a volume only it mounts (read-only), for the job's allowlist. No step exists on the
 * network until the job that takes it has written its configuration.
 */
export interface WaitingSidecar {
  container: ServiceContainer;
  /** Its fixed address on the job network (the subnet's last host address), when the subnet has one. */
  address?: string;
  subnet: string;
  /** Where its output lines go from now on. */
  route(onLine: (line: OutputLine) => void): void;
  /** Its last lines that were not events (why it failed). */
  tail(): string[];
  /** Hands it the job's configuration (once): it binds its listeners and prints its ready event. */
  configure(config: SidecarConfig): Promise<void>;
  /** Stops it and removes its control volume (the network is its owner's). */
  remove(): Promise<void>;
}

const SIDECAR_DIR = '/__s';
const CONTROL_DIR = '/__c';
const CONFIG_FIFO = 'config';
/** How long a started sidecar may take to open its FIFO (Node's start-up and the bundle's load). */
const FIFO_WAIT_MS = 15_000;

/** The limits of a job's sidecar, from the job's. */
export function sidecarLimits(job: ResourceLimits, timeoutMs: number): ResourceLimits {
  return { ...job, memoryBytes: 256 * 1024 ** 2, pids: 64, cpus: Math.min(1, job.cpus), tmpfsBytes: 16 * 1024 ** 2, outputBytes: 64 * 1024 ** 2, timeoutMs: Math.max(1000, timeoutMs) };
}

/** Equal for two shapes whose sidecar containers would be the same container. */
export function sidecarFingerprint(s: SidecarShape): string {
  const forwarder = s.forwarder ? forwarderFingerprint(s.forwarder) : undefined;
  return JSON.stringify({ image: s.image, limits: sidecarLimits(s.limits, 0), node: s.nodeBinary ?? '', script: s.sidecarScript, seccomp: s.sandbox.seccompProfilePath, forwarder });
}

/** Starts a sidecar on `network` (labelled `labels`, stopped at `deadline` at the latest) that waits for its configuration. */
export async function startWaitingSidecar(shape: SidecarShape, network: string, labels: Record<string, string>, deadline: number): Promise<WaitingSidecar> {
  const engine = shape.sandbox.deps.engine;
  const name = `${network}-egress`;
  const control = `${network}-egressctl`;
  let made = false;
  let container: ServiceContainer | undefined;
  const remove = async () => {
    await container?.stop();
    if (made) await engine.removeVolume(control).catch((e: unknown) => shape.logger.error({ err: e, volume: control }, 'volume remove failed'));
  };
  try {
    const [, subnet, node, script, volume] = await Promise.all([
      ensureEgressNetwork(engine),
      engine.networkSubnet(network),
      nodeVolumeFor(shape.sandbox, shape.nodeBinary),
      sidecarVolumeFor(shape.sandbox, shape.sidecarScript),
      engine.createVolume(control, labels).then((v) => ((made = true), v)),
    ]);
    if (!subnet) throw new Error(`network ${network} has no IPv4 subnet`);
    await makeVolumeFifo(volume.mountpoint, CONFIG_FIFO, await volumeOwner(volume.mountpoint));
    // A fixed address at the top of the subnet (the IPAM hands out addresses from the bottom): known before the sidecar is ready.
    const address = lastHostAddress(subnet);
    const tail: string[] = [];
    let onLine = (l: OutputLine) => shape.logger.warn({ line: l.text }, 'egress sidecar output');
    const take = (l: OutputLine) => {
      // Its events are JSON lines; anything else is kept (why it failed, if it does).
      if (!l.text.startsWith('{')) {
        tail.push(l.text);
        if (tail.length > 20) tail.shift();
      }
      onLine(l);
    };
    const spec: StepSpec = {
      name,
      image: shape.image,
      argv: [`${NODE_EXTERNALS}/bin/node`, '--max-old-space-size=96', `${SIDECAR_DIR}/sidecar.js`],
      env: { STOCKADE_EGRESS_CONFIG_FIFO: `${CONTROL_DIR}/${CONFIG_FIFO}` },
      workdir: '/',
      mounts: [
        { volume: node, target: NODE_EXTERNALS, readOnly: true },
        { volume: script, target: SIDECAR_DIR, readOnly: true },
        // Read-only: the FIFO is read, nothing is written there.
        { volume: control, target: CONTROL_DIR, readOnly: true },
      ],
      limits: sidecarLimits(shape.limits, deadline - Date.now()),
      network: { mode: 'internal', network, egressNetwork: EGRESS_NETWORK, ip: address },
      sysctls: { 'net.ipv4.ip_unprivileged_port_start': '0' },
      security: { seccompProfilePath: shape.sandbox.seccompProfilePath, readOnlyRoot: true },
      labels: { ...labels, [LABEL_STEP]: 'egress' },
    };
    container = await startServiceContainer({ ...shape.sandbox.deps, logger: shape.logger.child({ service: 'egress' }) }, spec, take);
    const started = container;
    const fifo: FileHandle | undefined = await openFifoWriter(volume.mountpoint, CONFIG_FIFO, () => started.ended(), FIFO_WAIT_MS);
    if (!fifo) throw new Error(`the egress sidecar did not wait for its configuration within ${FIFO_WAIT_MS} ms: ${tail.join(' | ') || 'no output'}`);
    let configured = false;
    return {
      container,
      address,
      subnet,
      route: (f) => (onLine = f),
      tail: () => [...tail],
      configure: async (config) => {
        if (configured) throw new Error('the sidecar is configured already');
        configured = true;
        await writeFifoAndClose(fifo, `${JSON.stringify(config)}\n`);
      },
      // The container goes before the FIFO is closed: closed first, the sidecar would exit while Podman removes it, a race Podman 4.3 can hang on (prewarm.ts, discardHeld).
      remove: async () => {
        try {
          await remove();
        } finally {
          if (!configured) await fifo.close().catch(() => undefined);
        }
      },
    };
  } catch (e) {
    await remove();
    throw e;
  }
}

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
