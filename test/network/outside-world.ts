import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A network namespace this test creates (`ip netns add` + a veth pair) holding the
 * test's "outside world" on the benchmarking range 198.18.N.0/24 (never routed on
 * the internet), one link-local host 169.254.N.2 (standing in for a metadata
 * service), and an IPv6 ULA host. Everything is removed by `stop()`.
 */
export interface OutsideWorld {
  ns: string;
  subnet: string;
  dns: string;
  allowed: string;
  other: string;
  linkLocal: string;
  ipv6: string;
  certFile: string;
  /** Every DNS query, connection and request the world received. */
  events(): Array<{ ev: string; name?: string; type?: string; address?: string; from?: string; host?: string; path?: string }>;
  stop(): void;
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

/** Removes worlds left by test processes that died before their clean-up (namespaces named after their PID). */
function removeStaleWorlds(): void {
  for (const line of ip('netns', 'list').split('\n')) {
    const m = /^stkw(\d+)\b/.exec(line);
    if (!m || Number(m[1]) === process.pid) continue;
    try {
      process.kill(Number(m[1]), 0);
      continue;
    } catch {
      /* its creator is gone */
    }
    for (const args of [['route', 'flush', 'dev', `stkw${m[1]}a`.slice(0, 15)], ['link', 'del', `stkw${m[1]}a`.slice(0, 15)], ['netns', 'del', `stkw${m[1]}`]]) {
      try {
        ip(...args);
      } catch {
        /* already gone */
      }
    }
  }
}

export async function startOutsideWorld(): Promise<OutsideWorld> {
  removeStaleWorlds();
  const n = 20 + (process.pid % 200);
  const ns = `stkw${process.pid}`;
  const hostIf = `stkw${process.pid}a`.slice(0, 15);
  const nsIf = `stkw${process.pid}b`.slice(0, 15);
  const net = `198.18.${n}`;
  const linkLocal = `169.254.${n}.2`;
  const ipv6 = `fd00:5718:${n}::2`;
  const dir = mkdtempSync(join(tmpdir(), 'stk-world-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  const logFile = join(dir, 'events.jsonl');
  writeFileSync(logFile, '');
  let child: ChildProcess | undefined;
  const stop = () => {
    if (child?.pid && child.exitCode === null) child.kill('SIGTERM');
    try {
      ip('route', 'del', `${linkLocal}/32`, 'dev', hostIf);
    } catch {
      /* gone with the link */
    }
    try {
      ip('link', 'del', hostIf);
    } catch {
      /* gone with the namespace */
    }
    try {
      ip('netns', 'del', ns);
    } catch {
      /* never made */
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=allowed.test', '-addext', 'subjectAltName=DNS:allowed.test,DNS:other.test,DNS:loopback.test,DNS:meta.test', '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' });
    ip('netns', 'add', ns);
    ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf);
    ip('link', 'set', nsIf, 'netns', ns);
    ip('addr', 'add', `${net}.1/24`, 'dev', hostIf);
    ip('-6', 'addr', 'add', `fd00:5718:${n}::1/64`, 'dev', hostIf, 'nodad');
    ip('link', 'set', hostIf, 'up');
    const inNs = (...args: string[]) => ip('netns', 'exec', ns, 'ip', ...args);
    inNs('link', 'set', 'lo', 'up');
    for (const a of [`${net}.2/24`, `${net}.3/24`, `${net}.53/24`, `${linkLocal}/32`]) inNs('addr', 'add', a, 'dev', nsIf);
    inNs('-6', 'addr', 'add', `${ipv6}/64`, 'dev', nsIf, 'nodad');
    inNs('link', 'set', nsIf, 'up');
    inNs('route', 'add', 'default', 'via', `${net}.1`);
    ip('route', 'add', `${linkLocal}/32`, 'dev', hostIf);
    const cfg = {
      logFile,
      keyFile,
      certFile,
      dnsAddress: `${net}.53`,
      serverAddresses: [`${net}.2`, `${net}.3`, `${net}.53`, linkLocal],
      zone: { 'allowed.test': `${net}.2`, 'other.test': `${net}.3`, 'loopback.test': '127.0.0.1', 'meta.test': linkLocal },
    };
    const script = join(process.cwd(), 'test/network/world-server.mjs');
    if (!existsSync(script)) throw new Error(`${script} is missing (run the tests from the repository root)`);
    child = spawn('ip', ['netns', 'exec', ns, process.execPath, script, JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child!.once('exit', (code) => reject(new Error(`world server exited (${code})`)));
      child!.stdout!.once('data', () => resolve());
    });
  } catch (e) {
    stop();
    throw e;
  }
  return {
    ns,
    subnet: `${net}.0/24`,
    dns: `${net}.53`,
    allowed: `${net}.2`,
    other: `${net}.3`,
    linkLocal,
    ipv6,
    certFile,
    events: () =>
      readFileSync(logFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as ReturnType<OutsideWorld['events']>[number]),
    stop,
  };
}
