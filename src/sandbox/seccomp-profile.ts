import YAML from 'yaml';

/** errno numbers used by the policy (x86_64 Linux). */
const ERRNO: Record<string, number> = { EPERM: 1, ENOSYS: 38, EAFNOSUPPORT: 97 };

export interface SeccompPolicy {
  defaultErrno: string;
  architectures: string[];
  allow: Record<string, { why: string; names: string[] }>;
  conditional: Array<{
    name: string;
    why: string;
    allowWhenArg0MaskedEquals?: { mask: number; value: number };
    denyWhenArg0HasAnyBit?: number[];
    allowWhenArg0In?: number[];
    denyWhenArg0In?: number[];
    allowWhenArg1NotIn?: number[];
  }>;
  deny: Record<string, { why: string; names: string[]; errno?: string }>;
}

export interface SeccompArg {
  index: number;
  value: number;
  valueTwo: number;
  op: string;
}
export interface SeccompRule {
  names: string[];
  action: 'SCMP_ACT_ALLOW' | 'SCMP_ACT_ERRNO';
  errnoRet?: number;
  args?: SeccompArg[];
  comment?: string;
}
export interface SeccompProfile {
  defaultAction: 'SCMP_ACT_ERRNO';
  defaultErrnoRet: number;
  architectures: string[];
  syscalls: SeccompRule[];
}

export function parseSeccompPolicy(text: string): SeccompPolicy {
  return YAML.parse(text) as SeccompPolicy;
}

function errnoOf(name: string | undefined, fallback: string): number {
  const n = ERRNO[name ?? fallback];
  if (n === undefined) throw new Error(`unknown errno ${name} in seccomp policy`);
  return n;
}

function conditionalRules(c: SeccompPolicy['conditional'][number]): SeccompRule[] {
  const rules: SeccompRule[] = [];
  const allow = (args: SeccompArg[]): SeccompRule => ({ names: [c.name], action: 'SCMP_ACT_ALLOW', args, comment: c.why });
  const eperm = (args: SeccompArg[]): SeccompRule => ({ names: [c.name], action: 'SCMP_ACT_ERRNO', errnoRet: 1, args, comment: c.why });
  if (c.allowWhenArg0MaskedEquals) {
    const { mask, value } = c.allowWhenArg0MaskedEquals;
    rules.push(allow([{ index: 0, value: mask, valueTwo: value, op: 'SCMP_CMP_MASKED_EQ' }]));
  }
  for (const bit of c.denyWhenArg0HasAnyBit ?? []) {
    rules.push(eperm([{ index: 0, value: bit, valueTwo: bit, op: 'SCMP_CMP_MASKED_EQ' }]));
  }
  for (const v of unique(c.allowWhenArg0In ?? [])) rules.push(allow([{ index: 0, value: v, valueTwo: 0, op: 'SCMP_CMP_EQ' }]));
  for (const v of unique(c.denyWhenArg0In ?? [])) rules.push(eperm([{ index: 0, value: v, valueTwo: 0, op: 'SCMP_CMP_EQ' }]));
  if (c.allowWhenArg1NotIn) {
    // Conditions inside one rule are ANDed: allowed when arg1 differs from every value.
    rules.push(allow(unique(c.allowWhenArg1NotIn).map((v) => ({ index: 1, value: v, valueTwo: 0, op: 'SCMP_CMP_NE' }))));
    for (const v of unique(c.allowWhenArg1NotIn)) rules.push(eperm([{ index: 1, value: v, valueTwo: 0, op: 'SCMP_CMP_EQ' }]));
  }
  return rules;
}

function unique<T>(xs: T[]): T[] {
  return [...new Set(xs)];
}

/** Pure: the policy (readable data) → the OCI seccomp profile Podman and runc take. */
export function buildSeccompProfile(policy: SeccompPolicy): SeccompProfile {
  const seen = new Map<string, string>();
  const claim = (name: string, where: string) => {
    const before = seen.get(name);
    if (before) throw new Error(`seccomp policy names ${name} twice (${before} and ${where})`);
    seen.set(name, where);
  };
  const syscalls: SeccompRule[] = [];
  for (const [group, g] of Object.entries(policy.allow)) {
    g.names.forEach((n) => claim(n, `allow.${group}`));
    syscalls.push({ names: [...g.names].sort(), action: 'SCMP_ACT_ALLOW', comment: `${group}: ${g.why}` });
  }
  for (const c of policy.conditional) {
    claim(c.name, `conditional.${c.name}`);
    syscalls.push(...conditionalRules(c));
  }
  for (const [group, g] of Object.entries(policy.deny)) {
    g.names.forEach((n) => claim(n, `deny.${group}`));
    syscalls.push({ names: [...g.names].sort(), action: 'SCMP_ACT_ERRNO', errnoRet: errnoOf(g.errno, 'EPERM'), comment: `${group}: ${g.why}` });
  }
  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: errnoOf(policy.defaultErrno, 'ENOSYS'),
    architectures: policy.architectures,
    syscalls,
  };
}

/** Syscall names the profile allows unconditionally or under conditions. */
export function allowedSyscalls(profile: SeccompProfile): string[] {
  return unique(profile.syscalls.filter((r) => r.action === 'SCMP_ACT_ALLOW').flatMap((r) => r.names)).sort();
}

/** A rule of a Docker/Podman-style profile, as far as counting needs it. */
export interface ProfileRule {
  names: string[];
  action: string;
  includes?: { caps?: string[]; arches?: string[] };
  excludes?: { caps?: string[]; arches?: string[] };
}

/**
 * Names a profile lets a container with no capabilities call on x86_64 (rules that
 * need a capability or another architecture do not count; argument-filtered rules do).
 * `known`: the x86_64 syscall names, so 32-bit-only names are not counted.
 */
export function allowedWithoutCapabilities(profile: { syscalls: ProfileRule[] }, known: ReadonlySet<string>): Set<string> {
  const out = new Set<string>();
  const x86 = (a: string) => a === 'amd64' || a === 'x86_64' || a === 'SCMP_ARCH_X86_64';
  for (const r of profile.syscalls) {
    if (r.action !== 'SCMP_ACT_ALLOW') continue;
    if (r.includes?.caps?.length) continue;
    if (r.includes?.arches?.length && !r.includes.arches.some(x86)) continue;
    if (r.excludes?.arches?.some(x86)) continue;
    for (const n of r.names) if (known.has(n)) out.add(n);
  }
  return out;
}
