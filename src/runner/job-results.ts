import { createHash, randomUUID } from 'node:crypto';
import { chownSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { isOwnerAlive, LABEL_STEP, startServiceContainer, type ServiceContainer, type Sandbox, type StepSpec } from '../sandbox';
import { GATEWAY_PREFIX, mintRuntimeToken, ResultsServer, type GatewayTarget, type ResultsEvent, type ResultsJob, type ResultsStore } from '../results';
import type { Logger } from '../common';
import { NODE_EXTERNALS, nodeVolumeFor, sidecarVolumeFor } from './externals-volumes';
import type { JobNetwork } from './job-network';
import type { ResultsReport, RunContext } from './types';

/** Where the runner keeps caches and artifacts, and how its forwarder reaches them. */
export interface ResultsSettings {
  store: ResultsStore;
  /** Host directory for the jobs' service sockets (one directory per job inside it). */
  socketDir: string;
  /** Host path of the bundled helper program (dist/sidecar.js). */
  sidecarScript: string;
}

export interface JobResults {
  /** Name of the forwarder container, whose network namespace a job without a network shares. */
  container: string;
  /** ACTIONS_* variables for every step. */
  env: Record<string, string>;
  token: string;
  report(): ResultsReport;
  stop(): Promise<void>;
}

/** Port the forwarder listens on: above Linux's ephemeral range, so no step's client port takes it. */
export const RESULTS_PORT = 61873;
const HELPER_DIR = '/__s';
const SOCKET_DIR = '/__r';

/** The job's cache and artifact scopes, as GitHub draws them: its ref writes; its ref, its base and the default branch read. */
export function resultsJobFor(ctx: RunContext, jobBackendId: string): ResultsJob {
  const ev = ctx.event as { pull_request?: { base?: { ref?: string } }; repository?: { default_branch?: string } };
  const base = ev.pull_request?.base?.ref;
  const defaultBranch = ev.repository?.default_branch ?? 'main';
  const readScopes = [...new Set([ctx.ref, ...(base ? [`refs/heads/${base}`] : []), `refs/heads/${defaultBranch}`])];
  const h = createHash('sha256').update(`${ctx.repository}\n${ctx.runId}\n${ctx.runAttempt}\n${ctx.workflowName}`).digest('hex');
  const runBackendId = `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
  return { repository: ctx.repository, runBackendId, jobBackendId, writeScope: ctx.ref, readScopes };
}

export interface JobResultsContext {
  sandbox: Sandbox;
  logger: Logger;
  settings: ResultsSettings;
  key: string;
  labels: Record<string, string>;
  image: string;
  nodeBinary?: string;
  /** uid/gid the job's containers run as on the host (the forwarder connects as it). */
  owner: { uid: number; gid: number };
  deadline: number;
  ctx: RunContext;
  /** Registers the token with the job's secret masker. */
  mask(secret: string): void;
  /** The GitHub API and the job's GITHUB_TOKEN, offered to steps through the service (GITHUB_API_URL). */
  github?: GatewayTarget;
}

/** What a forwarder container depends on (a job network made ahead can carry one: helper-pool.ts). */
export interface ForwarderShape {
  sandbox: Sandbox;
  logger: Logger;
  settings: Pick<ResultsSettings, 'socketDir' | 'sidecarScript'>;
  image: string;
  nodeBinary?: string;
  /** uid/gid the job's containers run as on the host (the forwarder connects as it). */
  owner: { uid: number; gid: number };
}

/** Equal for two shapes whose forwarder containers would be the same container (one made ahead can serve either). */
export function forwarderFingerprint(f: ForwarderShape): string {
  return JSON.stringify({ image: f.image, node: f.nodeBinary ?? '', owner: f.owner, socketDir: f.settings.socketDir, script: f.settings.sidecarScript, seccomp: f.sandbox.seccompProfilePath });
}

/** A running, ready forwarder: from the job network (or its own loopback) to `dir`/results.sock, where no service listens yet. */
export interface Forwarder {
  container: ServiceContainer;
  name: string;
  /** Host directory bound into it, where the results service's socket goes. */
  dir: string;
  address: string;
  /** Stops it and removes its directory (idempotent). */
  stop(): Promise<void>;
}

/**
 * Starts a forwarder container: on `net` when the job has a network, else with loopback only (its
 * network namespace then shared by the job's steps). `onStarted` is called with its name once it
 * runs, before it is ready (a step sharing its namespace can be prepared meanwhile).
 */
export async function startForwarder(f: ForwarderShape, key: string, labels: Record<string, string>, net: Pick<JobNetwork, 'network'> | undefined, deadline: number, onStarted?: (container: string) => void): Promise<Forwarder> {
  // Per runner process, so what a killed runner left is known as its own and removed by the next.
  const mine = join(f.settings.socketDir, f.sandbox.ownerTag);
  mkdirSync(f.settings.socketDir, { recursive: true, mode: 0o711 });
  removeDeadOwners(f.settings.socketDir);
  mkdirSync(mine, { recursive: true, mode: 0o711 });
  const dir = join(mine, key);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { mode: 0o700 });
  if (process.getuid?.() === 0) chownSync(dir, f.owner.uid, f.owner.gid);
  let container: ServiceContainer | undefined;
  const stop = async () => {
    await container?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const name = `stockade-${key}-results`;
    let ready: (address: string) => void = () => undefined;
    const readyP = new Promise<string>((r) => (ready = r));
    const tail: string[] = [];
    const [subnet, node, script] = await Promise.all([net ? f.sandbox.deps.engine.networkSubnet(net.network) : undefined, nodeVolumeFor(f.sandbox, f.nodeBinary), sidecarVolumeFor(f.sandbox, f.settings.sidecarScript)]);
    if (net && !subnet) throw new Error(`network ${net.network} has no IPv4 subnet`);
    const spec: StepSpec = {
      name,
      image: f.image,
      argv: [`${NODE_EXTERNALS}/bin/node`, '--max-old-space-size=48', `${HELPER_DIR}/sidecar.js`],
      env: { STOCKADE_FORWARD_CONFIG: JSON.stringify({ port: RESULTS_PORT, socket: `${SOCKET_DIR}/results.sock`, jobSubnet: subnet }) },
      workdir: '/',
      mounts: [
        { volume: node, target: NODE_EXTERNALS, readOnly: true },
        { volume: script, target: HELPER_DIR, readOnly: true },
      ],
      binds: [{ hostPath: dir, target: SOCKET_DIR }],
      limits: { memoryBytes: 128 * 1024 ** 2, pids: 32, cpus: 1, nofile: 1024, timeoutMs: Math.max(1000, deadline - Date.now() + 60_000), killGraceMs: 1000, outputBytes: 1024 ** 2, maxLineBytes: 4096, tmpfsBytes: 1024 ** 2 },
      network: net ? { mode: 'internal', network: net.network } : { mode: 'none' },
      security: { seccompProfilePath: f.sandbox.seccompProfilePath, readOnlyRoot: true },
      labels: { ...labels, [LABEL_STEP]: 'results' },
    };
    container = await startServiceContainer({ ...f.sandbox.deps, logger: f.logger.child({ service: 'results' }) }, spec, (l) => {
      const m = /^\{"ev":"ready","address":"([0-9a-f.:]+)"\}$/.exec(l.text);
      if (m) return ready(m[1]!);
      tail.push(l.text);
      if (tail.length > 20) tail.shift();
    });
    onStarted?.(name);
    const started = container;
    const address = await Promise.race([
      readyP,
      started.exited.then(() => Promise.reject(new Error(`the results forwarder exited before it was ready: ${tail.join(' | ') || 'no output'}`))),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the results forwarder was not ready within 20 s')), 20_000).unref()),
    ]);
    return { container: started, name, dir, address, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * Starts the job's results service (on a Unix socket of its own) behind its forwarder container
 * (`premade`, made ahead with the job's network, or started now). Nothing else can reach the service.
 */
export async function startJobResults(c: JobResultsContext, net: Pick<JobNetwork, 'network'> | undefined, onStarted?: (container: string) => void, premade?: Forwarder): Promise<JobResults> {
  const t0 = Date.now();
  const job = resultsJobFor(c.ctx, randomUUID());
  const token = await mintRuntimeToken(job, Math.max(60, (c.deadline - Date.now()) / 1000 + 3600));
  c.mask(token);
  const root = process.getuid?.() === 0;
  let server: ResultsServer | undefined;
  let forwarder: Forwarder | undefined = premade;
  const stop = async () => {
    await forwarder?.container.stop();
    await server?.close().catch((e: unknown) => c.logger.error({ err: e }, 'results service close failed'));
    await forwarder?.stop();
  };
  try {
    if (premade) premade.container.stopAt(c.deadline + 60_000);
    forwarder ??= await startForwarder(c, c.key, c.labels, net, c.deadline, onStarted);
    const url = `http://${forwarder.address}:${RESULTS_PORT}/`;
    server = new ResultsServer({ store: c.settings.store, job, token, publicUrl: url, logger: c.logger.child({ service: 'results' }), github: c.github });
    await server.listen(join(forwarder.dir, 'results.sock'), root ? c.owner : undefined);
    c.logger.info({ url, ms: Date.now() - t0, premade: !!premade }, 'results service ready');
    const env: Record<string, string> = {
      ACTIONS_RUNTIME_TOKEN: token,
      ACTIONS_RUNTIME_URL: url,
      ACTIONS_RESULTS_URL: url,
      ACTIONS_CACHE_URL: url,
      ACTIONS_CACHE_SERVICE_V2: 'True',
      ...(c.github ? { GITHUB_API_URL: `${url}${GATEWAY_PREFIX.slice(1)}`, GITHUB_GRAPHQL_URL: `${url}${GATEWAY_PREFIX.slice(1)}/graphql` } : {}),
    };
    const s = server;
    return { container: forwarder.name, env, token, report: () => summarize(s.events), stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Socket directories of runner processes that are gone (killed mid-job). */
function removeDeadOwners(socketDir: string): void {
  for (const owner of readdirSync(socketDir)) {
    if (!isOwnerAlive(owner)) rmSync(join(socketDir, owner), { recursive: true, force: true });
  }
}

function summarize(events: readonly ResultsEvent[]): ResultsReport {
  const r: ResultsReport = { cacheHits: 0, cachePartialHits: 0, cacheMisses: 0, cachesSaved: 0, cacheBytesSaved: 0, cacheBytesRestored: 0, artifactsUploaded: 0, artifactBytesUploaded: 0, artifactsDownloaded: 0, refused: 0 };
  for (const e of events) {
    if (e.kind === 'cache-hit' || e.kind === 'cache-partial') {
      e.kind === 'cache-hit' ? r.cacheHits++ : r.cachePartialHits++;
      r.cacheBytesRestored += e.bytes ?? 0;
    } else if (e.kind === 'cache-miss') r.cacheMisses++;
    else if (e.kind === 'cache-save') {
      r.cachesSaved++;
      r.cacheBytesSaved += e.bytes ?? 0;
    } else if (e.kind === 'artifact-upload') {
      r.artifactsUploaded++;
      r.artifactBytesUploaded += e.bytes ?? 0;
    } else if (e.kind === 'artifact-download') r.artifactsDownloaded++;
    else if (e.kind === 'refused') r.refused++;
  }
  return r;
}
