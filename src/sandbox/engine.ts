import type { Readable } from 'node:stream';
import type { CreateOptions } from './to-create-options';

export interface ManagedObject {
  id: string;
  labels: Record<string, string>;
  /** Containers only: whether it runs now. */
  running?: boolean;
}

/**
 * The container engine as the sandbox uses it. One adapter talks to Podman's API
 * socket (podman-engine.ts); unit tests use a fake.
 */
export interface ContainerEngine {
  ping(): Promise<void>;
  imageExists(ref: string): Promise<boolean>;
  /** Size of an image in bytes. */
  imageSize(ref: string): Promise<number>;
  /** The image's configured command and working directory (what `podman run IMAGE` would run). */
  /** The image's command (entrypoint then cmd), each part, its working directory and its size. */
  imageCommand(ref: string): Promise<{ argv: string[]; workdir: string; entrypoint: string[]; cmd: string[]; sizeBytes: number }>;
  createContainer(options: CreateOptions): Promise<string>;
  /** Creates the container's process, stopped before exec, so limits can be applied first. Returns its host PID. */
  initContainer(id: string): Promise<number>;
  /** Multiplexed stdout/stderr stream (Docker framing); attach before start so no output is lost. */
  attach(id: string): Promise<Readable>;
  start(id: string): Promise<void>;
  /** Waits for exit without busy-polling (libpod wait); returns the exit code. */
  wait(id: string): Promise<number>;
  kill(id: string, signal: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  removeContainer(id: string): Promise<void>;
  createVolume(name: string, labels: Record<string, string>): Promise<{ mountpoint: string }>;
  /** Mountpoint of an existing volume, or undefined when there is none by that name. */
  inspectVolume(name: string): Promise<{ mountpoint: string } | undefined>;
  removeVolume(name: string): Promise<void>;
  /**
   * A network. `internal`: no route out, and no DNS server on it (aardvark-dns
   * before 1.11 forwards queries from internal networks to the host's resolvers,
   * a way out for data). Not internal: routed out (only the egress sidecar joins one).
   */
  createNetwork(name: string, labels: Record<string, string>, options?: { internal: boolean }): Promise<void>;
  /** The network's first IPv4 subnet (CIDR), or undefined when there is no such network. */
  networkSubnet(name: string): Promise<string | undefined>;
  /** The container's address on a network. */
  containerAddress(id: string, network: string): Promise<string>;
  removeNetwork(name: string): Promise<void>;
  listNetworks(label: string): Promise<ManagedObject[]>;
  listContainers(label: string): Promise<ManagedObject[]>;
  listVolumes(label: string): Promise<ManagedObject[]>;
}
