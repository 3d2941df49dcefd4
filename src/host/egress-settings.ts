import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { StockadeError } from '../common';
import { validatePolicy, type EgressPolicy } from '../egress';
import type { EgressSettings } from '../runner';

/** The host's own addresses (every interface): the sidecar never connects to them. */
export function hostAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((a) => a.address));
}

/**
 * The resolver the sidecar asks: `--upstream-dns`, else the first nameserver of
 * /etc/resolv.conf that a container can reach (not a loopback stub such as
 * systemd-resolved's 127.0.0.53).
 */
export function upstreamDnsFrom(flag: string | undefined, resolvConf = '/etc/resolv.conf'): string {
  if (flag) {
    const host = flag.replace(/^\[|\](:\d+)?$|:\d+$/g, '');
    if (!isIP(host)) throw new StockadeError('USAGE', `--upstream-dns '${flag}' is not an address[:port]`);
    return flag;
  }
  const text = existsSync(resolvConf) ? readFileSync(resolvConf, 'utf8') : '';
  const servers = [...text.matchAll(/^\s*nameserver\s+(\S+)/gm)].map((m) => m[1]!).filter((s) => isIP(s) && !s.startsWith('127.') && s !== '::1');
  if (!servers.length) {
    throw new StockadeError('HOST_NOT_READY', `no resolver in ${resolvConf} that a container can reach`, { hint: 'pass --upstream-dns ADDRESS (the resolver the egress sidecar asks)' });
  }
  return servers[0]!;
}

export function egressSettings(packageRoot: string, policy: Partial<EgressPolicy>, upstreamDns: string): EgressSettings {
  let p: EgressPolicy;
  try {
    p = validatePolicy(policy);
  } catch (e) {
    throw new StockadeError('USAGE', (e as Error).message);
  }
  const sidecarScript = join(packageRoot, 'dist/sidecar.js');
  if ((p.allow.length || p.audit) && !existsSync(sidecarScript)) throw new StockadeError('HOST_NOT_READY', `${sidecarScript} is missing`, { hint: 'run `npm run build`' });
  return { policy: p, upstreamDns, sidecarScript, hostAddresses: hostAddresses() };
}
