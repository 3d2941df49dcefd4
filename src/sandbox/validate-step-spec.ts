import { existsSync, lstatSync } from 'node:fs';
import { isIP } from 'node:net';
import { isAbsolute, normalize } from 'node:path';
import { StockadeError } from '../common';
import { EGRESS_NETWORK, LABEL_MANAGED, LABEL_OWNER } from './labels';
import { LIMIT_BOUNDS, type ResourceLimits, type StepSpec } from './step-spec';

const FORBIDDEN_TARGETS = ['/', '/proc', '/sys', '/dev', '/etc', '/usr', '/bin', '/sbin', '/lib', '/lib64', '/run/podman'];

/** Rejects a spec that would weaken the sandbox, before anything is created. */
export function validateStepSpec(spec: StepSpec): void {
  const reject = (message: string) => {
    throw new StockadeError('SPEC_REJECTED', `step container ${spec.name}: ${message}`);
  };
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/.test(spec.name)) reject(`invalid container name '${spec.name}'`);
  if (!spec.image) reject('no image');
  if (!spec.argv.length) reject('no command');
  if (!isAbsolute(spec.workdir)) reject(`working directory '${spec.workdir}' is not absolute`);
  for (const [k, v] of Object.entries(spec.env)) {
    if (!/^[^=\0]+$/.test(k) || v.includes('\0')) reject(`invalid environment variable name or value for '${k.slice(0, 40)}'`);
  }
  for (const m of spec.mounts) {
    const t = normalize(m.target);
    if (!isAbsolute(t)) reject(`mount target '${m.target}' is not absolute`);
    if (FORBIDDEN_TARGETS.some((f) => t === f || (f !== '/' && t.startsWith(`${f}/`)))) reject(`mount target '${m.target}' would shadow a system path`);
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(m.volume)) reject(`mount source '${m.volume}' is not a named volume; host paths are never mounted`);
  }
  for (const b of spec.binds ?? []) {
    const t = normalize(b.target);
    if (!isAbsolute(t) || FORBIDDEN_TARGETS.some((f) => t === f || (f !== '/' && t.startsWith(`${f}/`)))) reject(`bind target '${b.target}' is not absolute or would shadow a system path`);
    const why = bindSourceProblem(b.hostPath);
    if (why) reject(`bind source '${b.hostPath}' ${why}`);
  }
  if (spec.userns !== undefined && spec.userns !== 'keep-id') reject(`user namespace mode '${String(spec.userns)}' is not allowed`);
  validateLimits(spec.limits, reject);
  const net = spec.network;
  if (net.mode === 'internal') {
    if (!/^stockade-[a-z0-9][a-z0-9-]{0,100}$/.test(net.network)) reject(`network '${net.network}' is not a Stockade job network`);
    for (const a of net.aliases ?? []) if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(a)) reject(`network alias '${a}' is not a valid host name`);
    for (const d of net.dns ?? []) if (!isIP(d)) reject(`DNS server '${d}' is not an address`);
    for (const [h, ip] of Object.entries(net.hosts ?? {})) if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(h) || !isIP(ip)) reject(`host entry '${h}:${ip}' is not a name and an address`);
    if (net.ip !== undefined && isIP(net.ip) !== 4) reject(`address '${net.ip}' is not an IPv4 address`);
    if (net.egressNetwork !== undefined && net.egressNetwork !== EGRESS_NETWORK) reject(`network '${net.egressNetwork}' is not the egress network`);
  } else if (net.mode === 'container') {
    if (!/^stockade-[A-Za-z0-9_.-]+$/.test(net.container)) reject(`container '${net.container}' is not a Stockade container`);
  } else if (net.mode !== 'none') reject(`network mode '${(net as { mode: string }).mode}' is not allowed`);
  for (const [k, v] of Object.entries(spec.sysctls ?? {})) {
    if (k !== 'net.ipv4.ip_unprivileged_port_start' || !/^\d{1,5}$/.test(v)) reject(`sysctl ${k}=${v} is not allowed`);
    if (net.mode !== 'internal') reject('sysctls need a network namespace of the container\'s own');
  }
  if (!spec.security.seccompProfilePath || !existsSync(spec.security.seccompProfilePath)) {
    reject(`seccomp profile '${spec.security.seccompProfilePath}' does not exist`);
  }
  if (spec.labels[LABEL_MANAGED] !== 'true' || !spec.labels[LABEL_OWNER]) reject('missing ownership labels');
}

export function validateLimits(limits: ResourceLimits, reject: (m: string) => never): void {
  for (const [key, [min, max]] of Object.entries(LIMIT_BOUNDS) as Array<[keyof ResourceLimits, [number, number]]>) {
    const v = limits[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
      reject(`limit ${key}=${String(v)} is out of range [${min}, ${max}]`);
    }
  }
}

/** Why a host path may not be bound: not absolute and normalized, or some component is a link or not a directory. */
export function bindSourceProblem(p: string): string | undefined {
  if (!isAbsolute(p) || normalize(p) !== p || p === '/' || p.endsWith('/')) return 'is not an absolute, normalized path below /';
  let at = '';
  for (const part of p.split('/').slice(1)) {
    at += `/${part}`;
    let st;
    try {
      st = lstatSync(at);
    } catch {
      return `does not exist (${at})`;
    }
    if (st.isSymbolicLink()) return `passes through the symbolic link ${at}; links are never followed`;
    if (!st.isDirectory()) return `is not a directory (${at})`;
  }
  return undefined;
}
