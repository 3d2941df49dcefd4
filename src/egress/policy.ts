import { BlockList, isIP } from 'node:net';

/**
 * What a job may reach. An empty allowlist means no network at all. Names are exact
 * (`registry.npmjs.org`) or wildcards for sub-names (`*.pythonhosted.org` matches
 * `files.pythonhosted.org`, not `pythonhosted.org` itself).
 */
export interface EgressPolicy {
  allow: string[];
  /** Destination ports the proxy forwards to. @default [80, 443] */
  ports: number[];
  /** Addresses never connected to, whatever DNS answers (CIDR). @default DEFAULT_DENIED_RANGES */
  deniedRanges: string[];
  /** Exceptions carved out of `deniedRanges` (a test's own outside world). @default [] */
  permittedRanges: string[];
  /**
   * Audit mode: every name resolves and is reached (the denied ranges and ports still hold), and
   * each is recorded so the job's summary can propose the allowlist. @default false (enforce)
   */
  audit?: boolean;
}

// IPv4-mapped IPv6 (::ffff:0:0/96) is not listed: Node's BlockList would then match every
// IPv4 address. Mapped addresses are unmapped and checked as IPv4 instead (AddressGuard).
/** Private, loopback, link-local (cloud metadata), shared, documentation, benchmarking, multicast and reserved ranges. */
export const DEFAULT_DENIED_RANGES: readonly string[] = [
  '0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12', '192.0.0.0/24', '192.0.2.0/24',
  '192.88.99.0/24', '192.168.0.0/16', '198.18.0.0/15', '198.51.100.0/24', '203.0.113.0/24', '224.0.0.0/4', '240.0.0.0/4',
  '::/128', '::1/128', '64:ff9b::/96', '100::/64', '2001:db8::/32', 'fc00::/7', 'fe80::/10', 'ff00::/8',
];

export const DEFAULT_PORTS: readonly number[] = [80, 443];

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/** Lower-cases and checks one allowlist entry; throws a message naming the entry. */
export function normalizeDomainPattern(raw: string): string {
  const p = raw.trim().toLowerCase().replace(/\.$/, '');
  const name = p.startsWith('*.') ? p.slice(2) : p;
  if (isIP(name)) throw new Error(`allowed domain '${raw}' is an address: allow names, the sidecar resolves them`);
  if (!name || name.length > 253 || !name.split('.').every((l) => LABEL.test(l))) {
    throw new Error(`allowed domain '${raw}' is not a host name or a '*.suffix' wildcard`);
  }
  if (p.startsWith('*.') && !name.includes('.')) throw new Error(`allowed domain '${raw}' is too wide: a wildcard needs at least two labels after '*.'`);
  return p;
}

/** Canonical form of a queried or requested name, or undefined when it is not a host name. */
export function canonicalName(raw: string): string | undefined {
  const n = raw.toLowerCase().replace(/\.$/, '');
  if (!n || n.length > 253 || !n.split('.').every((l) => LABEL.test(l))) return undefined;
  return n;
}

export function isAllowed(name: string, allow: readonly string[]): boolean {
  const n = canonicalName(name);
  if (!n) return false;
  return allow.some((p) => (p.startsWith('*.') ? n.endsWith(p.slice(1)) : n === p));
}

/** True when every name `inner` admits is admitted by `outer`. */
function covered(inner: string, outer: readonly string[]): boolean {
  if (!inner.startsWith('*.')) return isAllowed(inner, outer);
  const suffix = inner.slice(1);
  return outer.some((p) => p === inner || (p.startsWith('*.') && suffix.endsWith(p.slice(1))));
}

/**
 * A workflow's own allowlist narrowed by what its administrator allows: every
 * entry must be covered by `maximum`, or the whole request is refused with the
 * entries that are not (nothing half-applied).
 */
export function narrowAllowlist(maximum: readonly string[], requested: readonly string[]): string[] {
  const wanted = requested.map(normalizeDomainPattern);
  const outside = wanted.filter((w) => !covered(w, maximum));
  if (outside.length) {
    throw new Error(`egress to ${outside.join(', ')} is not allowed here: the administrator allows ${maximum.length ? maximum.join(', ') : 'no egress at all'}`);
  }
  return [...new Set(wanted)];
}

/** Splits `a.org, *.b.org c.org` (commas or white space). */
export function parseDomainList(text: string): string[] {
  return text.split(/[\s,]+/).filter(Boolean).map(normalizeDomainPattern);
}

/** Decides whether the sidecar may connect to an address. */
export class AddressGuard {
  private readonly denied = new BlockList();
  private readonly permitted = new BlockList();

  constructor(deniedRanges: readonly string[], permittedRanges: readonly string[], ownAddresses: readonly string[] = []) {
    for (const r of deniedRanges) addRange(this.denied, r);
    for (const r of permittedRanges) addRange(this.permitted, r);
    for (const a of ownAddresses) {
      const fam = isIP(a);
      if (fam) this.denied.addAddress(a, fam === 6 ? 'ipv6' : 'ipv4');
    }
  }

  allows(address: string): boolean {
    const a = unmapV4(address);
    const fam = isIP(a);
    if (!fam) return false;
    const type = fam === 6 ? 'ipv6' : 'ipv4';
    if (this.permitted.check(a, type)) return true;
    return !this.denied.check(a, type);
  }
}

function unmapV4(a: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  return m ? m[1]! : a;
}

function addRange(list: BlockList, cidr: string): void {
  const [net, bits] = cidr.split('/');
  const fam = isIP(net ?? '');
  const prefix = Number(bits);
  if (!fam || !Number.isInteger(prefix) || prefix < 0 || prefix > (fam === 6 ? 128 : 32)) throw new Error(`address range '${cidr}' is not a CIDR range`);
  list.addSubnet(net!, prefix, fam === 6 ? 'ipv6' : 'ipv4');
}

/** Checks a whole policy (configuration input); returns it normalized. */
export function validatePolicy(p: Partial<EgressPolicy>): EgressPolicy {
  const allow = (p.allow ?? []).map(normalizeDomainPattern);
  const ports = p.ports ?? [...DEFAULT_PORTS];
  for (const port of ports) if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`egress port '${port}' is not a port number`);
  const deniedRanges = p.deniedRanges ?? [...DEFAULT_DENIED_RANGES];
  const permittedRanges = p.permittedRanges ?? [];
  new AddressGuard(deniedRanges, permittedRanges);
  return { allow: [...new Set(allow)], ports, deniedRanges, permittedRanges, ...(p.audit ? { audit: true } : {}) };
}
