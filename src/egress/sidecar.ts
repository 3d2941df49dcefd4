import { createSocket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import { networkInterfaces } from 'node:os';
import { BlockList, isIP } from 'node:net';
import { AddressGuard, validatePolicy, type EgressPolicy } from './policy';
import { Resolver } from './resolver';
import { EgressProxy } from './proxy';
import { UpstreamResolver } from './upstream';
import type { EgressEvent } from './events';
import { whenListening } from './listen';

export interface SidecarConfig extends EgressPolicy {
  /** The resolver the sidecar asks for allowlisted names. */
  upstreamDns: string;
  /** The job network's subnet: the sidecar listens only on its address there. */
  jobSubnet: string;
  /** The host's own addresses: never connected to. */
  hostAddresses: string[];
  /** Individual events printed before only counts are (keeps the log bounded). @default 2000 */
  maxEvents?: number;
  listen: { dns: number; proxy: number; http: number; tls: number };
}

export const SIDECAR_PORTS = { dns: 53, proxy: 3128, http: 80, tls: 443 } as const;

/** Finds this container's address inside `cidr`. */
export function addressIn(cidr: string): string | undefined {
  const [net, bits] = cidr.split('/');
  const list = new BlockList();
  list.addSubnet(net!, Number(bits), isIP(net!) === 6 ? 'ipv6' : 'ipv4');
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (list.check(a.address, a.family === 'IPv6' ? 'ipv6' : 'ipv4')) return a.address;
  }
  return undefined;
}

/** Starts the resolver and the proxy; resolves once every listener is bound. */
export async function startSidecar(cfg: SidecarConfig, write: (line: string) => void): Promise<{ address: string; close(): void }> {
  const policy = validatePolicy(cfg);
  const address = addressIn(cfg.jobSubnet);
  if (!address) throw new Error(`no interface in the job network ${cfg.jobSubnet}`);
  const guard = new AddressGuard(policy.deniedRanges, policy.permittedRanges, [...cfg.hostAddresses, address]);
  const upstream = new UpstreamResolver({ server: cfg.upstreamDns });
  const lookup = (name: string) => upstream.lookup(name);
  let printed = 0;
  const suppressed = { dns: 0, egress: 0 };
  const max = cfg.maxEvents ?? 2000;
  const emit = (e: EgressEvent) => {
    if (printed < max || e.ev === 'ready') {
      printed++;
      write(JSON.stringify(e));
    } else if (e.ev === 'dns' || e.ev === 'egress') suppressed[e.ev]++;
  };
  const flush = setInterval(() => {
    if (suppressed.dns || suppressed.egress) {
      write(JSON.stringify({ ev: 'suppressed', ...suppressed } satisfies EgressEvent));
      suppressed.dns = suppressed.egress = 0;
    }
  }, 2000);
  const resolver = new Resolver({ allow: policy.allow, audit: policy.audit, answerAddress: address, lookup, guard });
  const servers: Array<Server | ReturnType<typeof createSocket>> = [];

  // One DNS message from `client`, over UDP or TCP: answered, and the answer's event reported.
  const answer = (msg: Buffer, client: string, send: (reply: Buffer) => void) =>
    resolver
      .answer(msg, client)
      .then(({ reply, event }) => {
        emit(event);
        if (reply) send(reply);
      })
      .catch((e: unknown) => emit({ ev: 'dns', verdict: 'refused', name: '', qtype: '', client, reason: 'malformed', detail: (e as Error).message.slice(0, 100) }));

  const udp = createSocket('udp4');
  udp.on('message', (msg, rinfo) => void answer(msg, rinfo.address, (reply) => udp.send(reply, rinfo.port, rinfo.address)));
  servers.push(await whenListening(udp, (ready) => udp.bind(cfg.listen.dns, address, ready)));

  const tcp = createServer((s) => {
    let buf = Buffer.alloc(0);
    s.setTimeout(10_000, () => s.destroy());
    s.on('error', () => s.destroy());
    s.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        void answer(Buffer.from(msg), s.remoteAddress ?? '?', (reply) => {
          if (s.destroyed) return;
          const len = Buffer.alloc(2);
          len.writeUInt16BE(reply.length);
          s.write(Buffer.concat([len, reply]));
        });
      }
      if (buf.length > 70_000) s.destroy();
    });
  });
  servers.push(await whenListening(tcp, (ready) => tcp.listen(cfg.listen.dns, address, ready)));

  const proxy = new EgressProxy({ allow: policy.allow, audit: policy.audit, ports: policy.ports, guard, lookup, emit });
  servers.push(...(await proxy.listen(address, cfg.listen)));
  emit({ ev: 'ready', address });
  return {
    address,
    close() {
      clearInterval(flush);
      for (const s of servers) s.close();
    },
  };
}
