import { execFile } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

/**
 * Counts a step's attempts to reach an address its network has no route to (a
 * direct connection or datagram to an IP: "Network is unreachable" in the step,
 * never seen by the sidecar). The kernel counts them per network namespace
 * (`Ip: OutNoRoutes`, `Ip6OutNoRoutes`); an open handle on the namespace keeps it
 * readable after the container is gone, through `nsenter` as the runner.
 */
export class NetnsCounters {
  private constructor(private fd: number | undefined) {}

  /** undefined when the runner may not open the namespace (not root, process gone). */
  static open(pid: number): NetnsCounters | undefined {
    try {
      return new NetnsCounters(openSync(`/proc/${pid}/ns/net`, 'r'));
    } catch {
      return undefined;
    }
  }

  /** Attempts without a route so far; undefined when they cannot be read. */
  read(): Promise<number | undefined> {
    if (this.fd === undefined) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      execFile('nsenter', [`--net=/proc/${process.pid}/fd/${this.fd}`, 'cat', '/proc/net/snmp', '/proc/net/snmp6'], { timeout: 5000, maxBuffer: 1 << 20 }, (err, out) => {
        resolve(err ? undefined : parseNoRoutes(out));
      });
    });
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
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
