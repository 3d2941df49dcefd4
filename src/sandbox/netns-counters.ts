import { execFile, spawn, type ChildProcessByStdio } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';

const MAX_COUNTERS_BYTES = 1 << 20;
/** Waits for the go on its stdin, then prints both files. */
const READER = 'read -r _ && exec cat /proc/net/snmp /proc/net/snmp6';

/**
 * Counts a step's attempts to reach an address its network has no route to (a
 * direct connection or datagram to an IP: "Network is unreachable" in the step,
 * never seen by the sidecar). The kernel counts them per network namespace
 * (`Ip: OutNoRoutes`, `Ip6OutNoRoutes`); an open handle on the namespace keeps it
 * readable after the container is gone, through `nsenter` as the runner.
 *
 * The reader is started when the handle is opened (while the step's container is
 * prepared) and waits on its stdin: at the step's end one newline makes it print
 * the counters, so no process start (about 10 ms) is on the step's critical path
 * (issue 17). It is this runner's own child, ended by its PID at close.
 */
export class NetnsCounters {
  private reader?: ChildProcessByStdio<Writable, Readable, null>;
  private out: Buffer[] = [];
  private outBytes = 0;
  private done?: Promise<string | undefined>;

  private constructor(private fd: number | undefined) {
    try {
      const child = spawn('nsenter', [`--net=/proc/${process.pid}/fd/${fd}`, 'sh', '-c', READER], { stdio: ['pipe', 'pipe', 'ignore'] });
      this.reader = child;
      child.stdin.on('error', () => undefined);
      child.stdout.on('data', (b: Buffer) => {
        if (this.outBytes < MAX_COUNTERS_BYTES) this.out.push(b);
        this.outBytes += b.length;
      });
      this.done = new Promise((resolve) => {
        child.once('error', () => resolve(undefined));
        child.once('close', (code) => resolve(code === 0 && this.outBytes <= MAX_COUNTERS_BYTES ? Buffer.concat(this.out).toString() : undefined));
      });
      this.done.then(() => (this.reader = undefined), () => undefined);
    } catch {
      this.reader = undefined;
    }
  }

  /** undefined when the runner may not open the namespace (not root, process gone). */
  static open(pid: number): NetnsCounters | undefined {
    try {
      return new NetnsCounters(openSync(`/proc/${pid}/ns/net`, 'r'));
    } catch {
      return undefined;
    }
  }

  /** Attempts without a route so far; undefined when they cannot be read. Once per handle: the prepared reader serves one read, later ones start `nsenter`. */
  async read(): Promise<number | undefined> {
    if (this.fd === undefined) return undefined;
    const reader = this.reader;
    if (reader && this.done) {
      this.reader = undefined;
      reader.stdin.end('\n');
      const text = await withTimeout(this.done, 5000);
      if (text !== undefined) return parseNoRoutes(text);
      reader.kill('SIGKILL');
    }
    return this.readOnce();
  }

  private readOnce(): Promise<number | undefined> {
    return new Promise((resolve) => {
      execFile('nsenter', [`--net=/proc/${process.pid}/fd/${this.fd}`, 'cat', '/proc/net/snmp', '/proc/net/snmp6'], { timeout: 5000, maxBuffer: MAX_COUNTERS_BYTES }, (err, out) => {
        resolve(err ? undefined : parseNoRoutes(out));
      });
    });
  }

  close(): void {
    // The waiting reader is this runner's child: ended by its PID (it holds only the namespace).
    this.reader?.kill('SIGKILL');
    this.reader = undefined;
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]).finally(() => clearTimeout(timer));
}

/** `Ip: OutNoRoutes` (header and value rows of /proc/net/snmp) plus `Ip6OutNoRoutes` of /proc/net/snmp6. */
export function parseNoRoutes(text: string): number | undefined {
  const ip = text.split('\n').filter((l) => l.startsWith('Ip:'));
  const header = ip[0]?.trim().split(/\s+/) ?? [];
  const values = ip[1]?.trim().split(/\s+/) ?? [];
  const i = header.indexOf('OutNoRoutes');
  if (i < 0 || values[i] === undefined) return undefined;
  const v6 = /^Ip6OutNoRoutes\s+(\d+)/m.exec(text)?.[1];
  return Number(values[i]) + Number(v6 ?? 0);
}
