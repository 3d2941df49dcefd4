import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer as createNetServer, connect as netConnect } from 'node:net';
import { createServer as createHttp, request as httpRequest } from 'node:http';
import { connect as tlsConnect } from 'node:tls';
import * as dnsPacket from 'dns-packet';
import { AddressGuard, DEFAULT_DENIED_RANGES, isAllowed, narrowAllowlist, normalizeDomainPattern, parseDomainList } from '../../src/egress';
import { Resolver } from '../../src/egress/resolver';
import { UpstreamResolver } from '../../src/egress/upstream';
import { EgressProxy } from '../../src/egress/proxy';
import { readServerName } from '../../src/egress/client-hello';
import type { EgressEvent } from '../../src/egress';

test('allowlist entries: exact names and *.suffix wildcards; addresses and bare wildcards refused', () => {
  assert.equal(normalizeDomainPattern(' Registry.NPMJS.org. '), 'registry.npmjs.org');
  assert.throws(() => normalizeDomainPattern('1.2.3.4'), /is an address/);
  assert.throws(() => normalizeDomainPattern('*.org'), /too wide/);
  assert.throws(() => normalizeDomainPattern('*'), /not a host name/);
  assert.throws(() => normalizeDomainPattern('a..b'), /not a host name/);
  const allow = parseDomainList('registry.npmjs.org, *.pythonhosted.org');
  assert.ok(isAllowed('REGISTRY.npmjs.org.', allow));
  assert.ok(isAllowed('files.pythonhosted.org', allow));
  assert.ok(!isAllowed('pythonhosted.org', allow));
  assert.ok(!isAllowed('evilpythonhosted.org', allow));
  assert.ok(!isAllowed('registry.npmjs.org.evil.com', allow));
  assert.ok(!isAllowed('x'.repeat(64) + '.pythonhosted.org', allow));
});

test('a workflow narrows the allowlist and cannot widen it', () => {
  const max = ['registry.npmjs.org', '*.pythonhosted.org'];
  assert.deepEqual(narrowAllowlist(max, ['files.pythonhosted.org', '*.a.pythonhosted.org']), ['files.pythonhosted.org', '*.a.pythonhosted.org']);
  assert.throws(() => narrowAllowlist(max, ['registry.npmjs.org', 'evil.com']), /egress to evil\.com is not allowed here/);
  assert.throws(() => narrowAllowlist(max, ['*.org']), /too wide/);
  assert.throws(() => narrowAllowlist([], ['a.org']), /allows no egress at all/);
});

test('denied ranges: private, loopback, link-local, mapped and the host\'s own addresses; carve-outs for a test world', () => {
  const g = new AddressGuard(DEFAULT_DENIED_RANGES, [], ['203.0.114.7']);
  for (const a of ['169.254.169.254', '127.0.0.1', '10.1.2.3', '172.20.0.1', '192.168.1.1', '100.64.0.1', '0.0.0.0', '::1', '::ffff:127.0.0.1', '::ffff:169.254.169.254', 'fe80::1', 'fd00::1', '224.0.0.1', '198.18.0.1', '203.0.114.7', 'not-an-ip']) {
    assert.ok(!g.allows(a), `${a} must be denied`);
  }
  for (const a of ['93.184.215.14', '2606:4700::1111']) assert.ok(g.allows(a), `${a} must be allowed`);
  const t = new AddressGuard(DEFAULT_DENIED_RANGES, ['198.18.7.0/24']);
  assert.ok(t.allows('198.18.7.2'));
  assert.ok(!t.allows('198.18.8.2'));
  assert.throws(() => new AddressGuard(['10.0.0.0/33'], []), /not a CIDR/);
});

/** A real UDP resolver on loopback that records every query and answers from a zone. */
async function recordingUpstream(zone: Record<string, string>): Promise<{ server: string; seen: string[]; socket: UdpSocket }> {
  const socket = createSocket('udp4');
  const seen: string[] = [];
  socket.on('message', (msg, r) => {
    const q = dec(msg);
    const question = q.questions![0]!;
    seen.push(`${question.type} ${question.name}`);
    const addr = zone[question.name];
    socket.send(dnsPacket.encode({ type: 'response', id: q.id, flags: addr ? 0 : 3, questions: q.questions, answers: addr ? [{ type: 'A', name: question.name, ttl: 60, data: addr }] : [] }), r.port, r.address);
  });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  return { server: `127.0.0.1:${socket.address().port}`, seen, socket };
}

const dec = (b: Buffer) => dnsPacket.decode(b) as dnsPacket.DecodedPacket & { rcode: string };

function query(name: string, type: string, extra: Partial<dnsPacket.Packet> = {}): Buffer {
  return dnsPacket.encode({ type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: type as 'A', class: 'IN', name }], ...extra });
}

test('resolver: allowlisted names answer with the sidecar; the rest get NXDOMAIN or REFUSED and are never forwarded', async (t) => {
  const up = await recordingUpstream({ 'allowed.test': '93.184.215.14', 'inside.test': '10.0.0.5' });
  t.after(() => up.socket.close());
  const upstream = new UpstreamResolver({ server: up.server });
  let now = 0;
  const r = new Resolver({ allow: ['allowed.test', 'missing.test', 'inside.test'], answerAddress: '10.89.9.2', lookup: (n) => upstream.lookup(n), guard: new AddressGuard(DEFAULT_DENIED_RANGES, []), ratePerSecond: 30, now: () => now });
  const ask = async (buf: Buffer) => {
    const a = await r.answer(buf, '10.89.9.3');
    return { res: a.reply ? dec(a.reply) : undefined, event: a.event };
  };
  let a = await ask(query('Allowed.Test', 'A'));
  assert.equal(a.res!.rcode, 'NOERROR');
  assert.equal(a.res!.id, 4242);
  assert.deepEqual(a.res!.answers!.map((x) => (x as dnsPacket.StringAnswer).data), ['10.89.9.2']);
  a = await ask(query('allowed.test', 'AAAA'));
  assert.equal(a.res!.rcode, 'NOERROR');
  assert.equal(a.res!.answers!.length, 0);
  assert.equal((await ask(query('missing.test', 'A'))).res!.rcode, 'NXDOMAIN');
  const inside = await ask(query('inside.test', 'A'));
  assert.equal(inside.res!.rcode, 'NXDOMAIN');
  assert.equal((inside.event as { reason?: string }).reason, 'denied-address');
  const tunnel = `${'ab'.repeat(31)}.${'cd'.repeat(31)}.other.test`;
  for (const [name, type, rcode, reason] of [
    ['other.test', 'A', 'NXDOMAIN', 'not-allowlisted'],
    [tunnel, 'TXT', 'NXDOMAIN', 'not-allowlisted'],
    ['allowed.test', 'ANY', 'REFUSED', 'query-type'],
    ['allowed.test', 'AXFR', 'REFUSED', 'query-type'],
  ] as const) {
    const x = await ask(query(name, type));
    assert.equal(x.res!.rcode, rcode, `${type} ${name}`);
    assert.equal((x.event as { reason?: string }).reason, reason);
  }
  // EDNS options (client subnet) are never forwarded: the upstream gets a fresh query.
  const ecs = await ask(query('allowed.test', 'A', { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096, flags: 0, options: [{ code: 8, family: 1, sourcePrefixLength: 24, scopePrefixLength: 0, ip: '1.2.3.0' }] } as unknown as dnsPacket.Answer] }));
  assert.equal(ecs.res!.rcode, 'NOERROR');
  assert.equal(ecs.res!.additionals?.length ?? 0, 0);
  // Malformed and multi-question packets.
  assert.equal(dec((await r.answer(Buffer.from([1, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 99]), 'c')).reply!).rcode, 'FORMERR');
  const two = dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'allowed.test' }, { type: 'A', name: 'other.test' }] });
  assert.equal((await ask(two)).res!.rcode, 'FORMERR');
  // Over the rate: REFUSED, until the bucket refills.
  let refused = 0;
  for (let i = 0; i < 40; i++) if ((await ask(query('other.test', 'A'))).res!.rcode === 'REFUSED') refused++;
  assert.ok(refused >= 10, `refused ${refused}`);
  now += 1000;
  assert.equal((await ask(query('other.test', 'A'))).res!.rcode, 'NXDOMAIN');
  // The upstream saw only allowlisted names, one query each (cached).
  assert.deepEqual(up.seen.sort(), ['A allowed.test', 'A inside.test', 'A missing.test']);
});

test('the TLS server name is read from a real ClientHello, whole or in pieces', async () => {
  const hello = await new Promise<Buffer>((resolve) => {
    const srv = createNetServer((s) => s.once('data', (d: Buffer) => (resolve(d), s.destroy(), srv.close())));
    srv.listen(0, '127.0.0.1', () => {
      const c = tlsConnect({ host: '127.0.0.1', port: (srv.address() as { port: number }).port, servername: 'files.pythonhosted.org' });
      c.on('error', () => undefined);
    });
  });
  assert.equal(readServerName(hello), 'files.pythonhosted.org');
  assert.equal(readServerName(hello.subarray(0, 40)), undefined);
  assert.equal(readServerName(Buffer.from('GET / HTTP/1.1\r\n\r\n')), null);
});

test('proxy: CONNECT and absolute-form requests reach allowlisted names only, at resolved addresses the guard allows', async (t) => {
  const origin = createHttp((q, s) => s.end(`origin saw ${q.method} ${q.url} host=${q.headers.host} proxy-auth=${q.headers['proxy-authorization'] ?? '-'}`));
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  const originPort = (origin.address() as { port: number }).port;
  const events: EgressEvent[] = [];
  const zone: Record<string, string[]> = { 'allowed.test': ['127.0.0.1'], 'meta.test': ['169.254.169.254'] };
  const proxy = new EgressProxy({
    allow: ['allowed.test', 'meta.test'],
    ports: [originPort],
    guard: new AddressGuard(DEFAULT_DENIED_RANGES, ['127.0.0.0/8']),
    lookup: async (n) => ({ rcode: zone[n] ? 'NOERROR' : 'NXDOMAIN', addresses: zone[n] ?? [], ttlSeconds: 5 }),
    emit: (e) => events.push(e),
  });
  const [srv, httpSrv, tlsSrv] = await proxy.listen('127.0.0.1', { proxy: 0, http: 0, tls: 0 });
  t.after(() => {
    for (const s of [srv, httpSrv, tlsSrv, origin]) s!.close();
  });
  const pport = (srv!.address() as { port: number }).port;
  const get = (path: string, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: pport, path, headers }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      req.end();
    });
  const ok = await get(`http://allowed.test:${originPort}/x?y=1`, { 'proxy-authorization': 'Basic c2VjcmV0' });
  assert.equal(ok.status, 200);
  assert.equal(ok.body, `origin saw GET /x?y=1 host=allowed.test:${originPort} proxy-auth=-`);
  assert.equal((await get(`http://meta.test:${originPort}/`)).status, 403);
  assert.equal((await get(`http://127.0.0.1:${originPort}/`)).status, 403);
  assert.equal((await get(`http://other.test:${originPort}/`)).status, 403);
  assert.equal((await get(`http://allowed.test:1/`)).status, 403);
  const connect = (target: string) =>
    new Promise<string>((resolve) => {
      const s = netConnect(pport, '127.0.0.1', () => s.write(`CONNECT ${target} HTTP/1.1\r\nhost: ${target}\r\n\r\n`));
      let got = '';
      s.on('data', (c: Buffer) => {
        got += c;
        if (got.includes('\r\n\r\n')) {
          if (got.startsWith('HTTP/1.1 200')) s.write(`GET /tunnel HTTP/1.1\r\nhost: allowed.test\r\nconnection: close\r\n\r\n`);
          else s.end();
        }
      });
      s.on('close', () => resolve(got));
      s.on('error', () => resolve(got));
    });
  assert.match(await connect(`allowed.test:${originPort}`), /origin saw GET \/tunnel host=allowed\.test/);
  assert.match(await connect(`other.test:${originPort}`), /^HTTP\/1\.1 403[^]*x-stockade-refused: not-allowlisted/);
  assert.match(await connect(`[::1]:${originPort}`), /x-stockade-refused: address-literal/);
  const reasons = events.filter((e) => e.ev === 'egress' && e.verdict === 'refused').map((e) => (e as { reason: string }).reason);
  assert.deepEqual(reasons, ['denied-address', 'address-literal', 'not-allowlisted', 'port', 'not-allowlisted', 'address-literal']);
  const allowed = events.filter((e) => e.ev === 'egress' && e.verdict === 'allowed');
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(allowed.length >= 1);
});

test('resolver: a question that cannot be answered as asked is refused, never an exception', async () => {
  const r = new Resolver({ allow: ['allowed.test'], answerAddress: '10.89.9.2', lookup: async () => ({ rcode: 'NXDOMAIN', addresses: [], ttlSeconds: 5 }), guard: new AddressGuard(DEFAULT_DENIED_RANGES, []) });
  // A label of 64 bytes and a name of 300 bytes: encoders may refuse to write them back.
  for (const name of [`${'a'.repeat(64)}.test`, `${'b.'.repeat(150)}test`]) {
    const raw = Buffer.concat([Buffer.from([0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), ...name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0, 0, 1, 0, 1])]);
    const a = await r.answer(raw, '10.89.9.3').catch((e: unknown) => ({ reply: undefined, event: { ev: 'threw', message: String(e) } }));
    assert.notEqual((a.event as { ev: string }).ev, 'threw', JSON.stringify(a.event));
  }
});

test('a kept-alive connection carries one request: a second request with another Host never reaches the server (issue 13, item 18)', async (t) => {
  const seen: string[] = [];
  const origin = createHttp((q, s) => {
    let body = '';
    q.on('data', (c: Buffer) => (body += c));
    q.on('end', () => {
      seen.push(`${q.method} ${q.url} host=${q.headers.host} body=${body}`);
      s.end(`ok ${q.url}`);
    });
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  const originPort = (origin.address() as { port: number }).port;
  const events: EgressEvent[] = [];
  const proxy = new EgressProxy({
    allow: ['allowed.test'],
    ports: [originPort, 80],
    guard: new AddressGuard(DEFAULT_DENIED_RANGES, ['127.0.0.0/8']),
    lookup: async (n) => ({ rcode: n === 'allowed.test' ? 'NOERROR' : 'NXDOMAIN', addresses: n === 'allowed.test' ? ['127.0.0.1'] : [], ttlSeconds: 5 }),
    emit: (e) => events.push(e),
  });
  const [srv, httpSrv, tlsSrv] = await proxy.listen('127.0.0.1', { proxy: 0, http: 0, tls: 0 });
  t.after(() => {
    for (const s of [srv, httpSrv, tlsSrv, origin]) s!.close();
  });
  const send = (port: number, bytes: string) =>
    new Promise<string>((resolve) => {
      const s = netConnect(port, '127.0.0.1', () => s.write(bytes));
      let got = '';
      s.on('data', (c: Buffer) => (got += c));
      s.on('close', () => resolve(got));
      s.on('error', () => resolve(got));
      setTimeout(() => s.destroy(), 3000);
    });
  const hport = (httpSrv!.address() as { port: number }).port;
  const pport = (srv!.address() as { port: number }).port;
  const host = `allowed.test:${originPort}`;
  // Transparent HTTP: a chunked first request, then a pipelined one naming another host.
  const two = `POST /first HTTP/1.1\r\nhost: ${host}\r\ntransfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /second HTTP/1.1\r\nhost: other.test\r\n\r\n`;
  const got = await send(hport, two);
  assert.match(got, /ok \/first/);
  assert.doesNotMatch(got, /ok \/second/);
  // Through the proxy, absolute form, with a length-framed body.
  await send(pport, `POST http://${host}/third HTTP/1.1\r\nhost: ${host}\r\ncontent-length: 3\r\n\r\nabcGET http://${host}/fourth HTTP/1.1\r\nhost: other.test\r\n\r\n`);
  assert.deepEqual(seen, [`POST /first host=${host} body=hello`, `POST /third host=${host} body=abc`]);
  const reasons = events.filter((e) => e.ev === 'egress' && e.verdict === 'refused').map((e) => (e as { reason: string }).reason);
  assert.deepEqual(reasons, ['second-request-on-connection', 'second-request-on-connection']);
  // Ambiguous framing (request smuggling) is refused outright.
  assert.match(await send(hport, `POST / HTTP/1.1\r\nhost: ${host}\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\nabc`), /x-stockade-refused: ambiguous-body-framing/);
  assert.match(await send(hport, `GET / HTTP/1.1\r\nhost: ${host}\r\nhost: other.test\r\n\r\n`), /x-stockade-refused: no-host-header/);
});

test('malformed TLS ClientHellos never throw or end the sidecar: 5,000 mutations of a real one', async (t) => {
  const hello = await new Promise<Buffer>((resolve) => {
    const srv = createNetServer((s) => s.once('data', (d: Buffer) => (resolve(d), s.destroy(), srv.close())));
    srv.listen(0, '127.0.0.1', () => {
      const c = tlsConnect({ host: '127.0.0.1', port: (srv.address() as { port: number }).port, servername: 'allowed.test' });
      c.on('error', () => undefined);
    });
  });
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed);
  const mutants: Buffer[] = [];
  for (let i = 0; i < 5000; i++) {
    const m = Buffer.from(hello.subarray(0, i % 3 === 0 ? rnd() % hello.length : hello.length));
    for (let k = 0; k < 1 + (i % 4); k++) if (m.length) m[rnd() % m.length] = rnd() & 0xff;
    mutants.push(m);
  }
  // A server_name extension of length 0 as the last bytes of the hello: the name list's length was read past the end.
  const body = Buffer.concat([Buffer.from([0x03, 0x03]), Buffer.alloc(32), Buffer.from([0x00, 0x00, 0x02, 0x13, 0x01, 0x01, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00])]);
  const hs = Buffer.concat([Buffer.from([0x01, 0x00, body.length >> 8, body.length & 0xff]), body]);
  const crafted = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, hs.length >> 8, hs.length & 0xff]), hs]);
  assert.equal(readServerName(crafted), null);
  mutants.unshift(crafted);
  for (const m of mutants) assert.doesNotThrow(() => readServerName(m));
  const events: EgressEvent[] = [];
  const proxy = new EgressProxy({ allow: ['allowed.test'], ports: [443], guard: new AddressGuard(DEFAULT_DENIED_RANGES, []), lookup: async () => ({ rcode: 'NXDOMAIN', addresses: [], ttlSeconds: 5 }), emit: (e) => events.push(e), headTimeoutMs: 500 });
  const [srv, httpSrv, tlsSrv] = await proxy.listen('127.0.0.1', { proxy: 0, http: 0, tls: 0 });
  t.after(() => {
    for (const s of [srv, httpSrv, tlsSrv]) s!.close();
  });
  const tport = (tlsSrv!.address() as { port: number }).port;
  for (let i = 0; i < 300; i += 20) {
    await Promise.all(
      mutants.slice(i, i + 20).map(
        (m) =>
          new Promise<void>((resolve) => {
            const s = netConnect(tport, '127.0.0.1', () => s.end(m));
            s.on('error', () => resolve());
            s.on('close', () => resolve());
            s.resume();
            setTimeout(() => (s.destroy(), resolve()), 1500);
          }),
      ),
    );
  }
  // Still serving: a well-formed hello for a name off the list is refused by name.
  await new Promise<void>((resolve) => {
    const c = tlsConnect({ host: '127.0.0.1', port: tport, servername: 'other.test' });
    c.on('error', () => resolve());
    c.on('close', () => resolve());
  });
  assert.ok(events.some((e) => e.ev === 'egress' && e.name === 'other.test' && (e as { reason?: string }).reason === 'not-allowlisted'), 'the TLS listener still answers after the malformed hellos');
});

test("the sidecar's fixed address is the subnet's last host address, never its network, gateway or broadcast address", async () => {
  const { lastHostAddress } = await import('../../src/runner/egress-sidecar');
  assert.equal(lastHostAddress('10.89.3.0/24'), '10.89.3.254');
  assert.equal(lastHostAddress('10.89.3.7/24'), '10.89.3.254');
  assert.equal(lastHostAddress('172.16.0.0/12'), '172.31.255.254');
  assert.equal(lastHostAddress('192.168.4.0/28'), '192.168.4.14');
  for (const bad of ['10.89.3.0/30', '10.0.0.0/7', 'fd00::/64', '10.89.3.0', '300.1.1.1/24', '']) assert.equal(lastHostAddress(bad), undefined, bad);
});
