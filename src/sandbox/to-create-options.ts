import type { StepSpec } from './step-spec';

export type CgroupMode = 'v1' | 'v2';

export interface HostRlimits {
  /** Hard RLIMIT_NOFILE of the engine: containers fail to start above it. */
  nofileHard: number;
  /** Hard RLIMIT_NPROC of the engine. */
  nprocHard: number;
}

/** The Docker-compatible create body Podman accepts (subset we set). */
export interface CreateOptions {
  name: string;
  Image: string;
  Cmd: string[];
  Entrypoint: string[];
  Env: string[];
  WorkingDir: string;
  Labels: Record<string, string>;
  User?: string;
  Hostname: string;
  Tty: false;
  OpenStdin: false;
  AttachStdin: false;
  AttachStdout: true;
  AttachStderr: true;
  NetworkDisabled: boolean;
  HostConfig: Record<string, unknown>;
  NetworkingConfig?: { EndpointsConfig: Record<string, { Aliases: string[]; IPAMConfig?: { IPv4Address: string } }> };
}

/**
 * Pure translation of a validated spec to Podman's create fields. On cgroup v1
 * rootless, Podman ignores memory/pids/cpu flags, so they are left out here and
 * enforced by writing the step's own cgroups (cgroup-v1-limits.ts); on v2 Podman sets them.
 */
export function toCreateOptions(spec: StepSpec, mode: CgroupMode, host: HostRlimits): CreateOptions {
  const tmpfs = `rw,nosuid,nodev,size=${spec.limits.tmpfsBytes}`;
  const nofile = Math.min(spec.limits.nofile, host.nofileHard);
  // RLIMIT_NPROC counts every process of the (shared) rootless user, across all
  // containers, so it cannot be the per-step limit: the pids cgroup is. Keep it at
  // the hard limit so the runtime can apply it.
  const nproc = host.nprocHard;
  const hostConfig: Record<string, unknown> = {
    CapDrop: ['ALL'],
    CapAdd: [],
    Privileged: false,
    SecurityOpt: ['no-new-privileges', `seccomp=${spec.security.seccompProfilePath}`],
    ReadonlyRootfs: spec.security.readOnlyRoot,
    // A job's /tmp is one of its volumes (kept between its steps); otherwise each container has its own.
    Tmpfs: { ...(spec.mounts.some((m) => m.target === '/tmp') || spec.binds?.some((b) => b.target === '/tmp') ? {} : { '/tmp': tmpfs }), '/var/tmp': tmpfs, '/run': tmpfs },
    ShmSize: spec.limits.tmpfsBytes,
    NetworkMode: spec.network.mode === 'none' ? 'none' : spec.network.mode === 'internal' ? spec.network.network : `container:${spec.network.container}`,
    IpcMode: 'private',
    PidMode: 'private',
    Init: true,
    Mounts: [
      ...spec.mounts.map((m) => ({ Type: 'volume', Source: m.volume, Target: m.target, ReadOnly: !!m.readOnly })),
      ...(spec.binds ?? []).map((b) => ({ Type: 'bind', Source: b.hostPath, Target: b.target, ReadOnly: !!b.readOnly, BindOptions: { Propagation: 'rprivate' } })),
    ],
    Ulimits: [
      { Name: 'nofile', Soft: nofile, Hard: nofile },
      { Name: 'nproc', Soft: nproc, Hard: nproc },
      { Name: 'core', Soft: 0, Hard: 0 },
    ],
    LogConfig: { Type: 'none', Config: {} },
    AutoRemove: false,
    Devices: [],
  };
  const net = spec.network;
  if (net.mode === 'internal') {
    if (net.dns) hostConfig.Dns = net.dns;
    if (net.hosts) hostConfig.ExtraHosts = Object.entries(net.hosts).map(([name, ip]) => `${name}:${ip}`);
  }
  if (spec.sysctls) hostConfig.Sysctls = spec.sysctls;
  if (spec.userns) hostConfig.UsernsMode = spec.userns;
  if (mode === 'v2') {
    hostConfig.Memory = spec.limits.memoryBytes;
    hostConfig.MemorySwap = spec.limits.memoryBytes;
    hostConfig.PidsLimit = spec.limits.pids;
    hostConfig.NanoCpus = Math.round(spec.limits.cpus * 1e9);
  }
  return {
    name: spec.name,
    Image: spec.image,
    Entrypoint: [spec.argv[0]!],
    Cmd: spec.argv.slice(1),
    Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    WorkingDir: spec.workdir,
    // keep-id would otherwise run the step as the runner user's own uid inside the container.
    ...(spec.userns ? { User: '0:0' } : {}),
    Labels: spec.labels,
    Hostname: 'stockade',
    Tty: false,
    OpenStdin: false,
    AttachStdin: false,
    AttachStdout: true,
    AttachStderr: true,
    NetworkDisabled: spec.network.mode === 'none',
    HostConfig: hostConfig,
    ...(net.mode === 'internal'
      ? { NetworkingConfig: { EndpointsConfig: { [net.network]: { Aliases: net.aliases ?? [], ...(net.ip ? { IPAMConfig: { IPv4Address: net.ip } } : {}) }, ...(net.egressNetwork ? { [net.egressNetwork]: { Aliases: [] } } : {}) } } }
      : {}),
  };
}
