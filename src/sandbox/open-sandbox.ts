import { chmodSync, existsSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { StockadeError, sha256Hex, type Logger } from '../common';
import { detectCgroupHost, type CgroupHost } from './cgroup-host';
import { CgroupV1Limits } from './cgroup-v1-limits';
import { CgroupV2Limits } from './cgroup-v2-limits';
import type { ContainerEngine } from './engine';
import { readHostRlimits } from './host-rlimits';
import { isOwnerAlive, processTag } from './labels';
import { JobDisk, reapJobDisks, type DiskLimits } from './job-disk';
import { ensureNetnsKeeper } from './netns-keeper';
import type { LimitEnforcer } from './limit-enforcer';
import { PodmanEngine } from './podman-engine';
import { reapLeftovers, type ReapReport } from './reaper';
import type { SandboxDeps } from './run-step-container';

export interface SandboxOptions {
  /** Podman API socket (rootless service of the runner user). */
  socketPath: string;
  /** Directory for files the engine must read (the seccomp profile); readable by the runner user. */
  stateDir: string;
  /** The OCI seccomp profile (JSON text) every step gets. */
  seccompProfileJson: string;
  logger: Logger;
  /** The runner user's runtime directory (where rootless Podman keeps its pause.pid). @default the socket's directory */
  runtimeDir?: string;
  /** Injected for tests. */
  engine?: ContainerEngine;
  cgroupHost?: CgroupHost;
}

export interface Sandbox {
  deps: SandboxDeps;
  ownerTag: string;
  seccompProfilePath: string;
  reap(): Promise<ReapReport>;
  /** Keys (LABEL_JOB) of this process's jobs that are running: registered when a job's volumes are made, removed when they are. */
  activeJobs: Set<string>;
  /** reap() plus this process's own objects of jobs that have ended (left behind while the engine was unreachable). */
  reapFinished(): Promise<ReapReport>;
  /** A job's own filesystem of a fixed size and inode count (root only; see job-disk.ts). */
  createJobDisk(key: string, limits: DiskLimits): Promise<JobDisk>;
  /** Keeps rootless Podman's network namespace up with one idle container (see netns-keeper.ts); idempotent, once per process. */
  keepNetnsAlive(image: string): Promise<void>;
}

/** Connects to the engine, picks the limit enforcer for this host's cgroups, installs the seccomp profile. */
export async function openSandbox(o: SandboxOptions): Promise<Sandbox> {
  const ownerTag = processTag();
  if (!ownerTag) throw new StockadeError('INTERNAL', 'cannot read /proc/self/stat');
  const engine = o.engine ?? new PodmanEngine(o.socketPath);
  await engine.ping();
  const cg = o.cgroupHost ?? detectCgroupHost();
  const limits: LimitEnforcer = cg.mode === 'v1' ? new CgroupV1Limits(cg, ownerTag) : new CgroupV2Limits(cg);
  const seccompProfilePath = installProfile(o.stateDir, o.seccompProfileJson);
  const deps: SandboxDeps = { engine, limits, host: readHostRlimits(), logger: o.logger };
  let keeper: Promise<void> | undefined;
  const diskDir = join(o.stateDir, 'disks');
  const activeJobs = new Set<string>();
  return {
    deps,
    ownerTag,
    seccompProfilePath,
    activeJobs,
    reapFinished: () => reapLeftovers(engine, limits, o.logger, isOwnerAlive, () => reapJobDisks(diskDir, o.logger, podmanMountNamespace(o.runtimeDir ?? dirname(o.socketPath))), { owner: ownerTag, active: activeJobs }),
    // Disks first: a volume's data directory with a job disk bound onto it cannot be removed.
    reap: () => reapLeftovers(engine, limits, o.logger, isOwnerAlive, () => reapJobDisks(diskDir, o.logger, podmanMountNamespace(o.runtimeDir ?? dirname(o.socketPath)))),
    createJobDisk: (key, diskLimits) => JobDisk.create({ dir: diskDir, ownerTag, key, limits: diskLimits, podmanMountNs: podmanMountNamespace(o.runtimeDir ?? dirname(o.socketPath)), logger: o.logger }),
    keepNetnsAlive: (image) => {
      keeper ??= ensureNetnsKeeper(deps, { image, seccompProfilePath }).catch((e: unknown) => {
        keeper = undefined;
        o.logger.warn({ err: e }, 'the network namespace keeper could not start; each job with a network will leave a slirp4netns zombie');
      });
      return keeper;
    },
  };
}

/** Rootless Podman's mount namespace (its pause process's), or undefined when it is this process's own. */
function podmanMountNamespace(runtimeDir: string): string | undefined {
  try {
    const pid = Number(readFileSync(join(runtimeDir, 'libpod/tmp/pause.pid'), 'utf8').trim());
    const ns = `/proc/${pid}/ns/mnt`;
    return readlinkSync(ns) === readlinkSync('/proc/self/ns/mnt') ? undefined : ns;
  } catch {
    return undefined;
  }
}

function installProfile(stateDir: string, json: string): string {
  try {
    JSON.parse(json);
  } catch (e) {
    throw new StockadeError('CONFIG_INVALID', `seccomp profile is not valid JSON: ${(e as Error).message}`);
  }
  const dir = join(stateDir, 'seccomp');
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  chmodSync(stateDir, 0o755);
  chmodSync(dir, 0o755);
  const path = join(dir, `profile-${sha256Hex(json).slice(0, 16)}.json`);
  if (!existsSync(path) || readFileSync(path, 'utf8') !== json) writeFileSync(path, json, { mode: 0o644 });
  return path;
}
