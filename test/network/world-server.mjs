// The test's own "outside world", run inside a network namespace the test created
// (`ip netns exec NS node world-server.mjs CONFIG_JSON`): an upstream DNS resolver
// that records every query, HTTP and HTTPS servers, and a log of every connection.
// Nothing here listens on or talks to any address the test did not create.
import { createSocket } from 'node:dgram';
import { createServer as createHttp } from 'node:http';
import { createServer as createHttps } from 'node:https';
import { appendFileSync, readFileSync } from 'node:fs';
import dnsPacket from 'dns-packet';

const cfg = JSON.parse(process.argv[2]);
const log = (o) => appendFileSync(cfg.logFile, JSON.stringify({ at: Date.now(), ...o }) + '\n');

const dns = createSocket('udp4');
dns.on('message', (msg, r) => {
  let q;
  try { q = dnsPacket.decode(msg); } catch { log({ ev: 'dns-malformed', from: r.address }); return; }
  const question = q.questions?.[0];
  log({ ev: 'dns', from: r.address, name: question?.name, type: question?.type });
  const addr = cfg.zone[question?.name?.toLowerCase()];
  const answers = addr && question.type === 'A' ? [{ type: 'A', class: 'IN', name: question.name, ttl: 30, data: addr }] : [];
  dns.send(dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.RECURSION_AVAILABLE | (addr ? 0 : 3), questions: q.questions, answers }), r.port, r.address);
});
dns.bind(53, cfg.dnsAddress);

const big = Buffer.alloc(1024 * 1024, 'x');
const handler = (scheme, address) => (req, res) => {
  log({ ev: 'request', scheme, address, from: req.socket.remoteAddress, host: req.headers.host, path: req.url });
  if (req.url?.startsWith('/big/')) {
    const mib = Math.min(1024, Number(req.url.slice(5)) || 1);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(mib * big.length) });
    let sent = 0;
    const more = () => {
      while (sent < mib) {
        sent++;
        if (!res.write(big)) return res.once('drain', more);
      }
      res.end();
    };
    return more();
  }
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`hello from ${address} over ${scheme} (host ${req.headers.host})\n`);
};
const tls = { key: readFileSync(cfg.keyFile), cert: readFileSync(cfg.certFile) };
for (const address of cfg.serverAddresses) {
  for (const [srv, port, scheme] of [[createHttp(handler('http', address)), 80, 'http'], [createHttps(tls, handler('https', address)), 443, 'https']]) {
    srv.on('connection', (s) => log({ ev: 'connection', scheme, address, from: s.remoteAddress }));
    srv.listen(port, address);
  }
}
process.on('SIGTERM', () => process.exit(0));
setTimeout(() => process.stdout.write('ready\n'), 300);
