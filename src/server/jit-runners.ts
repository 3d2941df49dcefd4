import type { ServerJob } from './plan-delivery';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../common';
import type { JobReport } from '../github';
import { describeDiskUsage, processTag, type DiskLimits, type JobDisk, type Sandbox } from '../sandbox';
import type { WorkflowJobSpec } from './plan-delivery';
import type { GitHubPort, RunnerHost } from './ports';
import { layoutRunnerDir } from './runner-dir';

/**
 * Server runner mode: each admitted `workflow_job` gets its own just-in-time runner of GitHub's
 * official runner, scoped to the job's repository (so repository quotas count live runners), in a
 * fresh directory, with Stockade as its container hook. The runner speaks GitHub's protocol (the UI,
 * secrets, the token, OIDC, caches); the hook sandboxes every step. A runner GitHub gives no job is
 * removed after `idleTimeoutMs`; a runner that dies is cleaned up and reported; a server that dies
 * has its runners ended and removed at its next start (records in `runnersDir`).
 */
export interface JitOptions {
  github: GitHubPort;
  /** The official runner as installed (`stockade setup --runner`): each runner directory links to its files. */
  installDir: string;
  /** Where runner directories and their records live. */
  runnersDir: string;
  /** The user the runner runs as (github-runner). */
  uid: number;
  gid: number;
  /** The container hook the runner runs (ACTIONS_RUNNER_CONTAINER_HOOKS). */
  hookPath: string;
  /** The broker socket the hook reaches (this server's own). */
  hookSocket: string;
  /** The cleanup of a runner's hook jobs and what Stockade saw of them. */
  host: RunnerHost;
  /** Labels the runner registers with (the server's --labels). */
  labels: string[];
  /** The sandbox, for a filesystem of its own under each runner's `_work` (its disk limit). */
  sandbox?: Sandbox;
  /** Size and inode count of each runner's `_work`; undefined: no disk limit. */
  disk?: DiskLimits;
  /** @default 600000 (10 minutes) */
  idleTimeoutMs?: number;
  /** How often GitHub is asked whether the runner is busy. @default 5000 */
  pollMs?: number;
  /** Grace between SIGTERM and SIGKILL of a runner. @default 10000 */
  killGraceMs?: number;
  logger: Logger;
}

interface RunnerRecord {
  name: string;
  runnerId: number;
  installationId: number;
  owner: string;
  repo: string;
  dir: string;
  pid?: number;
  /** `<pid>.<starttime>` of the runner process: a PID reused by another process is never signalled. */
  tag?: string;
}

const MAX_LOG_BYTES = 256 * 1024;


export class JitRunners {
  constructor(private readonly o: JitOptions) {
    mkdirSync(o.runnersDir, { recursive: true, mode: 0o755 });
  }

  /** Live runners of this server. */
  readonly live = new Map<string, RunnerRecord>();

  /** Records left by a server that died: their runner processes ended (by PID and start time), registrations deleted, directories removed. */
  async reapLeftovers(): Promise<number> {
    let n = 0;
    for (const f of readdirSync(this.o.runnersDir)) {
      if (!f.endsWith('.json') || !f.startsWith('stockade-')) continue;
      let rec: RunnerRecord;
      try {
        rec = JSON.parse(readFileSync(join(this.o.runnersDir, f), 'utf8')) as RunnerRecord;
      } catch {
        rmSync(join(this.o.runnersDir, f), { force: true });
        continue;
      }
      if (this.live.has(rec.name)) continue;
      if (rec.pid && rec.tag && processTag(rec.pid) === rec.tag) await this.kill(rec.pid);
      await this.o.host.finishRunner(rec.dir).catch(() => undefined);
      await this.o.github.deleteRunner(rec.installationId, rec.owner, rec.repo, rec.runnerId).catch((e: unknown) => this.o.logger.warn({ err: e, runner: rec.name }, 'could not delete a leftover runner registration'));
      this.removeDir(rec);
      this.o.logger.warn({ runner: rec.name, runnerId: rec.runnerId }, 'a runner of a server that stopped was ended, deleted and removed');
      n++;
    }
    return n;
  }

  /** Mints the runner, runs it until it exits (or is stopped), cleans up, and says what happened. */
  async run(row: ServerJob, spec: WorkflowJobSpec, signal: AbortSignal, log: Logger): Promise<{ report: JobReport; log: string }> {
    const name = `stockade-${randomBytes(6).toString('hex')}`;
    const lines: string[] = [];
    const say = (l: string) => lines.push(l);
    let rec: RunnerRecord | undefined;
    let disk: JobDisk | undefined;
    try {
      const jit = await this.o.github.generateJitConfig(row.installationId, spec.owner, spec.repo, { name, labels: this.o.labels });
      rec = { name, runnerId: jit.runnerId, installationId: row.installationId, owner: spec.owner, repo: spec.repo, dir: join(this.o.runnersDir, name) };
      this.writeRecord(rec);
      this.live.set(name, rec);
      layoutRunnerDir(this.o.installDir, rec.dir, { uid: this.o.uid, gid: this.o.gid });
      if (this.o.disk && this.o.sandbox) {
        // The runner's work directory is a filesystem of its own, read back where Podman binds it from.
        disk = await this.o.sandbox.createJobDisk(name, this.o.disk);
        const work = join(rec.dir, '_work');
        await disk.attach(work, 'work', { uid: this.o.uid, gid: this.o.gid });
        await disk.verify(work);
        say(`[stockade] _work is a filesystem of its own: ${this.o.disk.bytes} bytes, ${this.o.disk.inodes} files`);
      }
      say(`[stockade] just-in-time runner ${name} (id ${jit.runnerId}) for ${spec.owner}/${spec.repo}, in ${rec.dir}`);
      const outcome = await this.runProcess(rec, jit.encodedJitConfig, signal, log, say);
      const summary = await this.o.host.finishRunner(rec.dir);
      const used = disk ? await disk.usage().catch(() => undefined) : undefined;
      if (used) say(`[stockade] _work used ${describeDiskUsage(used)}`);
      const report = this.report(spec.jobName, outcome, summary, lines);
      return { report: used ? { ...report, disk: used } : report, log: lines.join('\n') };
    } catch (e) {
      say(`##[error]${(e as Error).message}`);
      return { report: { name: spec.jobName, conclusion: 'failure', steps: [], stepSummary: '', log: lines, error: (e as Error).message, annotations: [{ level: 'error', message: (e as Error).message }] }, log: lines.join('\n') };
    } finally {
      if (rec) await this.o.host.finishRunner(rec.dir).catch(() => undefined);
      await disk?.remove();
      if (rec) {
        await this.o.github.deleteRunner(rec.installationId, rec.owner, rec.repo, rec.runnerId).catch((e: unknown) => log.warn({ err: e }, 'could not delete the runner registration; GitHub removes offline JIT runners itself'));
        this.removeDir(rec);
        this.live.delete(name);
      }
    }
  }

  private runProcess(rec: RunnerRecord, jitConfig: string, signal: AbortSignal, log: Logger, say: (l: string) => void): Promise<{ code: number | null; why?: string; assigned: boolean; tail: string }> {
    return new Promise((resolve) => {
      const started = Date.now();
      // The JIT configuration is passed in the environment (the runner reads ACTIONS_RUNNER_INPUT_<NAME>),
      // never on a command line every user can read in /proc.
      // Output to a file, not a pipe: a runner outlives a server that dies (its end is the next start's work).
      const logFile = join(this.o.runnersDir, `${rec.name}.log`);
      const fd = openSync(logFile, 'w', 0o600);
      const child = spawn('setpriv', [`--reuid=${this.o.uid}`, `--regid=${this.o.gid}`, '--init-groups', '--', join(rec.dir, 'run.sh')], {
        cwd: rec.dir,
        detached: true,
        stdio: ['ignore', fd, fd],
        env: {
          PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
          HOME: rec.dir,
          LANG: 'C.UTF-8',
          ACTIONS_RUNNER_INPUT_JITCONFIG: jitConfig,
          ACTIONS_RUNNER_CONTAINER_HOOKS: this.o.hookPath,
          ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER: 'true',
          STOCKADE_HOOK_SOCKET: this.o.hookSocket,
        },
      });
      closeSync(fd);
      const readTail = () => {
        try {
          const size = statSync(logFile).size;
          const rfd = openSync(logFile, 'r');
          const buf = Buffer.alloc(Math.min(size, MAX_LOG_BYTES));
          readSync(rfd, buf, 0, buf.length, size - buf.length);
          closeSync(rfd);
          return buf.toString('utf8');
        } catch {
          return '';
        }
      };
      if (child.pid) {
        rec.pid = child.pid;
        rec.tag = processTag(child.pid);
        this.writeRecord(rec);
      }
      say(`[stockade] runner process ${child.pid ?? '?'} started in ${Date.now() - started} ms`);
      log.info({ runner: rec.name, pid: child.pid }, 'runner started');
      let assigned = false;
      let why: string | undefined;
      let stopping = false;
      const stop = (reason: string) => {
        if (stopping) return;
        stopping = true;
        why = reason;
        if (child.pid) void this.kill(child.pid);
      };
      const onAbort = () => stop('cancelled');
      signal.addEventListener('abort', onAbort, { once: true });
      const poll = setInterval(() => {
        void this.o.github.runnerBusy(rec.installationId, rec.owner, rec.repo, rec.runnerId).then(
          (busy) => {
            if (busy) assigned = true;
            if (!assigned && Date.now() - started > (this.o.idleTimeoutMs ?? 600_000)) stop(`GitHub gave the runner no job within ${Math.round((this.o.idleTimeoutMs ?? 600_000) / 1000)} s`);
          },
          (e: unknown) => log.warn({ err: e }, 'could not ask GitHub about the runner'),
        );
      }, this.o.pollMs ?? 5000);
      child.on('error', (e) => {
        why ??= `the runner could not start: ${e.message}`;
      });
      child.on('close', (code) => {
        clearInterval(poll);
        // What the runner started and left (its worker, a hook) is in the process group this server made for it.
        if (child.pid) {
          try {
            process.kill(-child.pid, 'SIGKILL');
          } catch {
            // nothing left
          }
        }
        signal.removeEventListener('abort', onAbort);
        resolve({ code, why, assigned, tail: readTail() });
      });
    });
  }

  /** Ends the runner's process group (the group this server created for it), TERM then KILL. */
  private async kill(pid: number): Promise<void> {
    const tag = processTag(pid);
    const signalGroup = (s: NodeJS.Signals) => {
      try {
        process.kill(-pid, s);
      } catch {
        // gone
      }
    };
    signalGroup('SIGTERM');
    for (let waited = 0; waited < (this.o.killGraceMs ?? 10_000); waited += 100) {
      if (processTag(pid) !== tag) return;
      await sleep(100);
    }
    signalGroup('SIGKILL');
  }

  private report(jobName: string, outcome: { code: number | null; why?: string; assigned: boolean; tail: string }, summary: Awaited<ReturnType<RunnerHost['finishRunner']>>, lines: string[]): JobReport {
    const failedSteps = summary.steps.filter((s) => s.exitCode !== 0 || s.reason !== 'exit');
    const limitStops = summary.steps.filter((s) => !['exit', 'cancelled'].includes(s.reason));
    for (const l of outcome.tail.split('\n').slice(-40)) if (l.trim()) lines.push(l);
    const peak = Math.max(0, ...summary.steps.map((s) => s.peakMemoryBytes));
    if (summary.limits) lines.push(`[stockade] limits in force for every step container: ${summary.limits}`);
    lines.push(`[stockade] ${summary.jobs} job(s), ${summary.steps.length} step container(s), ${failedSteps.length} failed, ${limitStops.length} stopped by a limit, peak memory ${(peak / 1024 ** 2).toFixed(1)} MiB, ${summary.blockedNetworkAttempts} blocked network attempts`);
    const error = outcome.why ?? (outcome.code !== 0 ? `the runner exited with ${outcome.code ?? 'a signal'}${summary.jobs ? '' : ' before it ran a job'}` : undefined);
    const refusals = [...summary.refusals, ...summary.blocked.map((b) => `blocked: ${b}`)];
    const neverGotJob = !outcome.assigned && !summary.jobs && outcome.why?.startsWith('GitHub gave');
    const conclusion: JobReport['conclusion'] = outcome.why === 'cancelled' ? 'cancelled' : neverGotJob ? 'neutral' : error || failedSteps.length || summary.refusals.length ? 'failure' : 'success';
    return {
      name: jobName,
      conclusion,
      steps: summary.steps.map((s, i) => ({ name: `step container ${i + 1}`, conclusion: s.exitCode === 0 && s.reason === 'exit' ? 'success' : 'failure', durationMs: s.durationMs, peakMemoryBytes: s.peakMemoryBytes, exitReason: s.reason })),
      stepSummary: '',
      log: lines.slice(-2000),
      ...(error ? { error } : {}),
      annotations: [...(error ? [{ level: (neverGotJob ? 'notice' : 'error') as 'notice' | 'error', message: error }] : []), ...refusals.slice(0, 40).map((m) => ({ level: 'warning' as const, message: m }))],
      ...(summary.blockedNetworkAttempts ? { network: { dnsAllowed: 0, dnsRefused: 0, connectionsAllowed: 0, connectionsRefused: summary.blockedNetworkAttempts, bytesOut: 0, refusals: summary.blocked.slice(0, 50) } } : {}),
    };
  }

  private writeRecord(rec: RunnerRecord): void {
    const p = join(this.o.runnersDir, `${rec.name}.json`);
    writeFileSync(`${p}.tmp`, JSON.stringify(rec), { mode: 0o600 });
    renameSync(`${p}.tmp`, p);
  }

  private removeDir(rec: RunnerRecord): void {
    // rmSync never follows a link; the directory is this server's own (under runnersDir).
    try {
      if (lstatSync(rec.dir).isDirectory()) rmSync(rec.dir, { recursive: true, force: true });
    } catch {
      // gone
    }
    rmSync(join(this.o.runnersDir, `${rec.name}.json`), { force: true });
    rmSync(join(this.o.runnersDir, `${rec.name}.log`), { force: true });
  }
}
