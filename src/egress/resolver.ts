import * as dnsPacket from 'dns-packet';
import { canonicalName, isAllowed, type AddressGuard } from './policy';
import type { EgressEvent } from './events';
import type { Lookup } from './upstream';

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
type Rcode = keyof typeof RCODE;

/** Types refused outright, whatever the name: zone transfers and ANY. */
const REFUSED_TYPES = new Set(['ANY', 'AXFR', 'IXFR', 'MAILA', 'MAILB']);

export interface ResolverOptions {
  allow: readonly string[];
  /** Audit mode: every name is allowed (and reported as allowed). */
  audit?: boolean;
  /** The sidecar's own address on the job network: what allowlisted names resolve to. */
  answerAddress: string;
  lookup: (name: string) => Promise<Lookup>;
  guard: AddressGuard;
  /** Queries per second per client before answers become REFUSED. @default 50 */
  ratePerSecond?: number;
  /** Longest name answered (RFC 1035 limit 253). @default 253 */
  maxNameLength?: number;
  now?: () => number;
}

export interface Answered {
  reply: Buffer | undefined;
  event: EgressEvent;
}

/**
 * The job's only DNS server. Allowlisted names that exist upstream resolve to the
 * sidecar (the proxy then connects to the name's real address); everything else
 * is answered here and never forwarded, so nothing can leave in a query name.
 */
export class Resolver {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly o: ResolverOptions) {}

  async answer(message: Buffer, client: string): Promise<Answered> {
    let q: dnsPacket.DecodedPacket;
    try {
      q = dnsPacket.decode(message);
    } catch {
      return { reply: headerOnly(message, 'FORMERR'), event: refused(client, '', '', 'malformed') };
    }
    const question = q.questions?.[0];
    const name = (question?.name ?? '').slice(0, 300);
    const type = String(question?.type ?? '');
    const reply = (rcode: Rcode, answers: dnsPacket.Answer[] = []) =>
      dnsPacket.encode({
        type: 'response',
        id: q.id,
        flags: (q.flag_rd ? dnsPacket.RECURSION_DESIRED : 0) | dnsPacket.RECURSION_AVAILABLE | RCODE[rcode],
        questions: question ? [question] : [],
        answers,
      });
    if (q.type !== 'query' || (q as { opcode?: string }).opcode !== 'QUERY') return { reply: reply('NOTIMP'), event: refused(client, name, type, 'not-a-query') };
    if (q.questions?.length !== 1 || !question) return { reply: reply('FORMERR'), event: refused(client, name, type, 'question-count') };
    if (!this.take(client)) return { reply: reply('REFUSED'), event: refused(client, name, type, 'rate-limit') };
    if (name.length > (this.o.maxNameLength ?? 253) || !canonicalName(name)) return { reply: reply('REFUSED'), event: refused(client, name, type, 'bad-name') };
    if (REFUSED_TYPES.has(type)) return { reply: reply('REFUSED'), event: refused(client, name, type, 'query-type') };
    if (question.class !== 'IN') return { reply: reply('REFUSED'), event: refused(client, name, type, 'query-class') };
    const canonical = canonicalName(name)!;
    if (!this.o.audit && !isAllowed(canonical, this.o.allow)) return { reply: reply('NXDOMAIN'), event: refused(client, canonical, type, 'not-allowlisted') };
    const found = await this.o.lookup(canonical);
    if (found.rcode === 'SERVFAIL') return { reply: reply('SERVFAIL'), event: { ev: 'dns', verdict: 'allowed', name: canonical, qtype: type, client, rcode: 'SERVFAIL' } };
    if (found.rcode === 'NXDOMAIN') return { reply: reply('NXDOMAIN'), event: { ev: 'dns', verdict: 'allowed', name: canonical, qtype: type, client, rcode: 'NXDOMAIN' } };
    if (!found.addresses.some((a) => this.o.guard.allows(a))) {
      return { reply: reply('NXDOMAIN'), event: refused(client, canonical, type, 'denied-address', found.addresses.slice(0, 4).join(' ')) };
    }
    // A: the sidecar. AAAA and every other type: no data (IPv6 and other records are not offered to steps).
    const answers: dnsPacket.Answer[] = type === 'A' ? [{ type: 'A', class: 'IN', name: question.name, ttl: Math.min(found.ttlSeconds, 60), data: this.o.answerAddress }] : [];
    return { reply: reply('NOERROR', answers), event: { ev: 'dns', verdict: 'allowed', name: canonical, qtype: type, client, rcode: 'NOERROR' } };
  }

  private take(client: string): boolean {
    const now = (this.o.now ?? Date.now)();
    const rate = this.o.ratePerSecond ?? 50;
    const b = this.buckets.get(client) ?? { tokens: rate, at: now };
    b.tokens = Math.min(rate, b.tokens + ((now - b.at) / 1000) * rate);
    b.at = now;
    this.buckets.set(client, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

function refused(client: string, name: string, qtype: string, reason: string, detail?: string): EgressEvent {
  return { ev: 'dns', verdict: 'refused', name, qtype, client, reason, ...(detail ? { detail } : {}) };
}

/** A reply to a message that did not decode: its id and the rcode, nothing else. */
function headerOnly(message: Buffer, rcode: Rcode): Buffer | undefined {
  if (message.length < 12) return undefined;
  const out = Buffer.alloc(12);
  message.copy(out, 0, 0, 2);
  out.writeUInt16BE(0x8000 | RCODE[rcode], 2);
  return out;
}
