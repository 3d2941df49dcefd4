import { createSocket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import { isIP } from 'node:net';
import * as dnsPacket from 'dns-packet';

export interface Lookup {
  /** 'NOERROR' with addresses, 'NXDOMAIN', or 'SERVFAIL' when the upstream did not answer usefully. */
  rcode: 'NOERROR' | 'NXDOMAIN' | 'SERVFAIL';
  addresses: string[];
  ttlSeconds: number;
}

export interface UpstreamOptions {
  /** `ip` or `ip:port` of the resolver the sidecar asks (never the step). */
  server: string;
  timeoutMs?: number;
  tries?: number;
}

const MIN_TTL = 5;
const MAX_TTL = 300;

/**
 * Asks one upstream resolver for the A records of an allowlisted name, over UDP
 * with a random id and a fresh query (nothing of the step's query is forwarded).
 * Answers are cached for their TTL (5 to 300 s).
 */
export class UpstreamResolver {
  private readonly host: string;
  private readonly port: number;
  private readonly cache = new Map<string, { at: number; value: Lookup }>();
  private readonly inflight = new Map<string, Promise<Lookup>>();
  queries = 0;

  constructor(private readonly options: UpstreamOptions) {
    const text = options.server.trim();
    const m = /^\[([0-9a-fA-F:.]+)\](?::(\d{1,5}))?$/.exec(text) ?? /^([0-9.]+)(?::(\d{1,5}))?$/.exec(text) ?? (isIP(text) === 6 ? [text, text] : null);
    const host = m?.[1] ?? '';
    if (!isIP(host)) throw new Error(`upstream DNS '${options.server}' is not an address[:port]`);
    this.host = host;
    this.port = m?.[2] ? Number(m[2]) : 53;
  }

  async lookup(name: string, now = Date.now()): Promise<Lookup> {
    const hit = this.cache.get(name);
    if (hit && now - hit.at < hit.value.ttlSeconds * 1000) return hit.value;
    const running = this.inflight.get(name);
    if (running) return running;
    const p = this.ask(name).finally(() => this.inflight.delete(name));
    this.inflight.set(name, p);
    const value = await p;
    if (value.rcode !== 'SERVFAIL') this.cache.set(name, { at: now, value });
    if (this.cache.size > 10_000) this.cache.delete(this.cache.keys().next().value!);
    return value;
  }

  private async ask(name: string): Promise<Lookup> {
    const tries = this.options.tries ?? 2;
    for (let i = 0; i < tries; i++) {
      const answer = await this.once(name).catch(() => undefined);
      if (answer) return answer;
    }
    return { rcode: 'SERVFAIL', addresses: [], ttlSeconds: 0 };
  }

  private once(name: string): Promise<Lookup> {
    this.queries++;
    const id = randomInt(0, 65536);
    const query = dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', class: 'IN', name }] });
    const socket = createSocket(isIP(this.host) === 6 ? 'udp6' : 'udp4');
    return new Promise<Lookup>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error('upstream DNS timed out')), this.options.timeoutMs ?? 2000);
      let settled = false;
      const done = (err: Error | undefined, value?: Lookup) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.close();
        if (err) reject(err);
        else resolve(value!);
      };
      socket.on('error', (e) => done(e));
      socket.on('message', (msg, rinfo) => {
        if (rinfo.address !== this.host || rinfo.port !== this.port) return;
        let res: dnsPacket.Packet;
        try {
          res = dnsPacket.decode(msg);
        } catch {
          return;
        }
        const q = res.questions?.[0];
        if (res.type !== 'response' || res.id !== id || q?.name.toLowerCase() !== name || q.type !== 'A') return;
        const rcode = (res as { rcode?: string }).rcode ?? 'NOERROR';
        if (rcode === 'NXDOMAIN') return done(undefined, { rcode: 'NXDOMAIN', addresses: [], ttlSeconds: MIN_TTL });
        if (rcode !== 'NOERROR') return done(undefined, { rcode: 'SERVFAIL', addresses: [], ttlSeconds: 0 });
        const a = (res.answers ?? []).filter((r): r is dnsPacket.StringAnswer => r.type === 'A');
        const ttl = Math.min(MAX_TTL, Math.max(MIN_TTL, ...a.map((r) => r.ttl ?? MIN_TTL)));
        done(undefined, { rcode: a.length ? 'NOERROR' : 'NXDOMAIN', addresses: a.map((r) => r.data), ttlSeconds: a.length ? ttl : MIN_TTL });
      });
      socket.send(query, this.port, this.host, (e) => e && done(e));
    });
  }
}
