/**
 * The declarative description of one sandboxed container: what runs, with which
 * resources, security and storage. Validated by `validateStepSpec`, translated to
 * Podman's fields by `toCreateOptions`; it knows nothing of workflows.
 */
export interface ResourceLimits {
  /** Memory (and memory+swap) limit in bytes. @default 4 GiB */
  memoryBytes: number;
  /** Process/thread count limit. @default 2048 */
  pids: number;
  /** CPU quota in cores (fractional allowed). @default 2 */
  cpus: number;
  /** Open file descriptors per process (RLIMIT_NOFILE), capped at the host's hard limit. @default 16384 */
  nofile: number;
  /** Wall-clock limit in milliseconds: SIGTERM, then SIGKILL of the whole container after `killGraceMs`. */
  timeoutMs: number;
  /** Grace between SIGTERM and SIGKILL at timeout or cancellation. @default 3000 */
  killGraceMs: number;
  /** stdout+stderr bytes per step; past it the output is cut with a marker and the container killed. @default 16 MiB */
  outputBytes: number;
  /** Longest line kept; longer lines are cut with a marker. @default 64 KiB */
  maxLineBytes: number;
  /** Size of each tmpfs (/tmp, /var/tmp, /run, /dev/shm); counted against memory. @default 512 MiB */
  tmpfsBytes: number;
}

export const DEFAULT_LIMITS: ResourceLimits = {
  memoryBytes: 4 * 1024 ** 3,
  pids: 2048,
  cpus: 2,
  nofile: 16384,
  timeoutMs: 360 * 60_000,
  killGraceMs: 3000,
  outputBytes: 16 * 1024 ** 2,
  maxLineBytes: 64 * 1024,
  tmpfsBytes: 512 * 1024 ** 2,
};

/** Bounds a configuration may not leave: they keep a typo from disabling a limit. */
export const LIMIT_BOUNDS: Record<keyof ResourceLimits, [number, number]> = {
  memoryBytes: [16 * 1024 ** 2, 256 * 1024 ** 3],
  pids: [16, 1_000_000],
  cpus: [0.01, 1024],
  nofile: [64, 1_048_576],
  timeoutMs: [100, 7200 * 60_000],
  killGraceMs: [0, 60_000],
  outputBytes: [1024, 16 * 1024 ** 3],
  maxLineBytes: [256, 16 * 1024 ** 2],
  tmpfsBytes: [1024 ** 2, 64 * 1024 ** 3],
};

export interface VolumeMount {
  /** Name of a Podman volume created for this job. */
  volume: string;
  /** Absolute path inside the container. */
  target: string;
  readOnly?: boolean;
}

/**
 * A host directory bound into the container: only runner mode has them (the official runner's own
 * work directories). The caller has checked the path (see hook/runner-dirs.ts); validation here
 * insists on an absolute, normalized path that is a directory reached without a symbolic link.
 */
export interface BindMount {
  hostPath: string;
  target: string;
  readOnly?: boolean;
}

export interface StepSpec {
  /** Container name; unique per step. */
  name: string;
  image: string;
  argv: string[];
  env: Record<string, string>;
  workdir: string;
  mounts: VolumeMount[];
  binds?: BindMount[];
  /**
   * 'keep-id': the container's root is the runner user's first subordinate id on the host (Podman's
   * keep-id mapping) instead of the runner user itself: runner mode, where that id is the official
   * runner's user, so what a step writes in the runner's directories belongs to the runner.
   */
  userns?: 'keep-id';
  limits: ResourceLimits;
  /**
   * 'none': loopback only. 'internal': a network Stockade created with no route
   * out (the job's network, for service containers), under `aliases` there.
   * 'container': the network namespace of another managed container (a probe of a service).
   */
  network:
    | { mode: 'none' }
    | {
        mode: 'internal';
        network: string;
        aliases?: string[];
        /** DNS servers written to resolv.conf (the job's sidecar; 127.0.0.1 for none). */
        dns?: string[];
        /** Names written to /etc/hosts (the job's services). */
        hosts?: Record<string, string>;
        /** A second, routed network: only the egress sidecar has one. */
        egressNetwork?: string;
        /** A fixed IPv4 address on `network` (the sidecar's, so steps can be made before it is ready). */
        ip?: string;
      }
    | { mode: 'container'; container: string };
  /** Only `net.ipv4.ip_unprivileged_port_start` (the sidecar binds 53, 80 and 443 without capabilities). */
  sysctls?: Record<string, string>;
  security: {
    /** Host path of the seccomp profile (OCI JSON) the engine loads. */
    seccompProfilePath: string;
    /** Root filesystem read-only; writable tmpfs at /tmp, /var/tmp, /run. @default true */
    readOnlyRoot: boolean;
  };
  /** Must include the managed and owner labels (see labels.ts). */
  labels: Record<string, string>;
}
