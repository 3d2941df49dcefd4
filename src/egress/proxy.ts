import { connect, createServer, isIP, type Server, type Socket } from 'node:net';
import { isAllowed, canonicalName, type AddressGuard } from './policy';
import { readHttpHead, readServerName, splitHostPort, type HttpHead } from './client-hello';
import type { EgressEvent } from './events';
import type { Lookup } from './upstream';
import { whenListening } from './listen';
import { bodyFraming, OneRequestBody, type BodyFraming } from './one-request';

type Via = 'connect' | 'http-proxy' | 'tls' | 'http';

export interface ProxyOptions {
  allow: readonly string[];
  /** Audit mode: every name is allowed (addresses and ports are still checked). */
  audit?: boolean;
  ports: readonly number[];
  guard: AddressGuard;
  lookup: (name: string) => Promise<Lookup>;
  emit: (e: EgressEvent) => void;
  connectTimeoutMs?: number;
  /** Time a client has to send its request head or ClientHello. @default 10 s */
  headTimeoutMs?: number;
}

/**
 * The job's only way out: an HTTP proxy (CONNECT, and absolute-form requests) for
 * tools that honour HTTP(S)_PROXY, and transparent listeners on 80 and 443 for
 * tools that do not (allowlisted names resolve to the sidecar; the Host header or
 * TLS SNI names the destination). Every destination is a name on the allowlist,
 * resolved here, and only to addresses the guard allows.
 */
export class EgressProxy {
  constructor(private readonly o: ProxyOptions) {}

  /** Listeners: proxy on `proxyPort`, transparent HTTP on `httpPort`, TLS on `tlsPort`. */
  listen(address: string, ports: { proxy: number; http: number; tls: number }): Promise<Server[]> {
    const servers = [
      createServer((s) => this.accept(s, 'proxy')),
      createServer((s) => this.accept(s, 'http')),
      createServer((s) => this.accept(s, 'tls')),
    ];
    const list = [ports.proxy, ports.http, ports.tls];
    return Promise.all(
      servers.map((srv, i) => whenListening(srv, (ready) => srv.listen(list[i], address, ready))),
    );
  }

  private accept(client: Socket, kind: 'proxy' | 'http' | 'tls'): void {
    const from = client.remoteAddress ?? '?';
    let buf = Buffer.alloc(0);
    let decided = false;
    client.setNoDelay(true);
    client.on('error', () => client.destroy());
    const timer = setTimeout(() => client.destroy(), this.o.headTimeoutMs ?? 10_000);
    const onData = (chunk: Buffer) => {
      try {
        decide(chunk);
      } catch {
        // Whatever a client sends, the sidecar answers it or drops it; it never ends on it.
        if (!decided) finish();
        decided = true;
        client.destroy();
      }
    };
    const decide = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (decided) return;
      if (kind === 'tls') {
        const sni = readServerName(buf);
        if (sni === undefined) return;
        decided = true;
        finish();
        if (sni === null) return this.refuse(client, 'tls', '(no SNI)', 443, from, 'no-server-name');
        void this.forward(client, 'tls', sni, 443, from, buf);
        return;
      }
      const head = readHttpHead(buf);
      if (head === undefined) return;
      decided = true;
      finish();
      if (head === null) return this.refuse(client, kind === 'http' ? 'http' : 'http-proxy', '(malformed)', 0, from, 'malformed-request');
      if (kind === 'http') return this.transparentHttp(client, head, buf, from);
      return this.proxyRequest(client, head, buf, from);
    };
    const finish = () => {
      clearTimeout(timer);
      client.off('data', onData);
      client.pause();
    };
    client.on('data', onData);
  }

  private transparentHttp(client: Socket, head: HttpHead, buf: Buffer, from: string): void {
    const hosts = head.headers.filter(([k]) => k === 'host');
    const hp = hosts.length === 1 ? splitHostPort(hosts[0]![1]) : undefined;
    if (!hp) return this.refuse(client, 'http', hosts.length > 1 ? '(several Host headers)' : '(no Host)', 80, from, 'no-host-header');
    const framing = bodyFraming(head);
    if (!framing) return this.refuse(client, 'http', hp.host, hp.port ?? 80, from, 'ambiguous-body-framing');
    // One request per connection: the Host of a second request on a kept-alive connection would never be checked.
    const headers = head.headers.filter(([k]) => k !== 'connection' && k !== 'keep-alive' && k !== 'proxy-connection');
    const lines = [`${head.method} ${head.target} ${head.version}`, ...headers.map(([k, v]) => `${k}: ${v}`), 'connection: close', '', ''];
    void this.forward(client, 'http', hp.host, hp.port ?? 80, from, Buffer.from(lines.join('\r\n'), 'latin1'), false, { framing, rest: buf.subarray(head.length) });
  }

  private proxyRequest(client: Socket, head: HttpHead, buf: Buffer, from: string): void {
    if (head.method === 'CONNECT') {
      const hp = splitHostPort(head.target);
      if (!hp || hp.port === undefined) return this.refuse(client, 'connect', head.target.slice(0, 255), 0, from, 'bad-connect-target');
      void this.forward(client, 'connect', hp.host, hp.port, from, buf.subarray(head.length), true);
      return;
    }
    let url: URL;
    try {
      url = new URL(head.target);
    } catch {
      return this.refuse(client, 'http-proxy', head.target.slice(0, 255), 0, from, 'not-absolute-form');
    }
    if (url.protocol !== 'http:') return this.refuse(client, 'http-proxy', url.hostname, 0, from, 'scheme');
    // Origin-form towards the server, Host from the request target (RFC 9112 §3.2.2: a
    // proxy replaces the received Host), Proxy-* headers dropped, one request per connection.
    const headers: Array<[string, string]> = [['host', url.host], ...head.headers.filter(([k]) => !k.startsWith('proxy-') && k !== 'connection' && k !== 'keep-alive' && k !== 'host')];
    const lines = [`${head.method} ${url.pathname}${url.search} ${head.version}`, ...headers.map(([k, v]) => `${k}: ${v}`), 'connection: close', '', ''];
    const framing = bodyFraming(head);
    if (!framing) return this.refuse(client, 'http-proxy', url.hostname, 0, from, 'ambiguous-body-framing');
    void this.forward(client, 'http-proxy', url.hostname.replace(/^\[|\]$/g, ''), url.port ? Number(url.port) : 80, from, Buffer.from(lines.join('\r\n'), 'latin1'), false, { framing, rest: buf.subarray(head.length) });
  }

  private refuse(client: Socket, via: Via, name: string, port: number, from: string, reason: string): void {
    this.o.emit({ ev: 'egress', verdict: 'refused', via, name, port, client: from, reason });
    if (via === 'connect' || via === 'http-proxy' || via === 'http') {
      client.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\nconnection: close\r\nx-stockade-refused: ${reason}\r\n\r\nstockade: egress to ${name}:${port} refused (${reason})\n`);
    } else client.destroy();
  }

  /**
   * Connects to an allowlisted name and splices the client to it. With `body`, `first` is one
   * request head and only that request's body follows it: the connection carries one request.
   */
  private async forward(client: Socket, via: Via, rawName: string, port: number, from: string, first: Buffer, connectReply = false, body?: { framing: BodyFraming; rest: Buffer }): Promise<void> {
    const name = canonicalName(rawName);
    const shown = (name ?? rawName).slice(0, 255);
    if (isIP(rawName)) return this.refuse(client, via, shown, port, from, 'address-literal');
    if (!name || (!this.o.audit && !isAllowed(name, this.o.allow))) return this.refuse(client, via, shown, port, from, 'not-allowlisted');
    if (!this.o.ports.includes(port)) return this.refuse(client, via, shown, port, from, 'port');
    const found = await this.o.lookup(name);
    const address = found.addresses.find((a) => this.o.guard.allows(a));
    if (!address) return this.refuse(client, via, shown, port, from, found.addresses.length ? 'denied-address' : 'does-not-resolve');
    const upstream = connect({ host: address, port, noDelay: true });
    const timer = setTimeout(() => upstream.destroy(new Error('connect timeout')), this.o.connectTimeoutMs ?? 10_000);
    let bytesOut = 0;
    let bytesIn = 0;
    let opened = false;
    let closed = false;
    const close = (reason?: string) => {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      if (!opened) {
        this.refuse(client, via, shown, port, from, reason ?? 'connect-failed');
        return;
      }
      client.destroy();
      upstream.destroy();
    };
    upstream.on('error', (e) => close(`connect-failed: ${(e as NodeJS.ErrnoException).code ?? e.message}`));
    client.once('error', () => upstream.destroy());
    upstream.once('connect', () => {
      clearTimeout(timer);
      opened = true;
      if (connectReply) client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (first.length) {
        bytesOut += first.length;
        upstream.write(first);
      }
      upstream.on('data', (c: Buffer) => (bytesIn += c.length));
      if (body) {
        const limiter = new OneRequestBody(
          body.framing,
          (c) => {
            bytesOut += c.length;
            if (!upstream.write(c)) {
              client.pause();
              upstream.once('drain', () => client.resume());
            }
          },
          () => this.o.emit({ ev: 'egress', verdict: 'refused', via, name: shown, port, client: from, reason: 'second-request-on-connection' }),
        );
        limiter.on('error', () => close('malformed-body'));
        if (body.rest.length) limiter.write(body.rest);
        client.pipe(limiter);
      } else {
        client.on('data', (c: Buffer) => (bytesOut += c.length));
        client.pipe(upstream);
      }
      upstream.pipe(client);
      client.resume();
      let reported = false;
      const report = () => {
        if (reported) return;
        reported = true;
        this.o.emit({ ev: 'egress', verdict: 'allowed', via, name: shown, port, client: from, address, bytesOut, bytesIn });
      };
      upstream.once('close', () => (report(), client.destroy()));
      client.once('close', () => (report(), upstream.destroy()));
    });
  }
}
