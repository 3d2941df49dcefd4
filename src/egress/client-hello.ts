/**
 * Reads the server name (SNI) from the first bytes a TLS client sends. Returns
 * `undefined` while more bytes are needed, `null` when the bytes are not a TLS
 * ClientHello or carry no host name.
 */
export function readServerName(buf: Buffer): string | null | undefined {
  // Hostile bytes: any read past a length the client lied about is a malformed hello, never a crash.
  try {
    return serverNameFromRecords(buf);
  } catch {
    return null;
  }
}

function serverNameFromRecords(buf: Buffer): string | null | undefined {
  // Handshake messages may span records: join record payloads until the ClientHello is whole.
  const payload: Buffer[] = [];
  let off = 0;
  let have = 0;
  let need = -1;
  while (need < 0 || have < need) {
    if (buf.length < off + 5) return buf.length > 5 * 16 + 16_384 * 4 ? null : undefined;
    if (buf[off] !== 0x16 || buf[off + 1] !== 0x03) return null;
    const len = buf.readUInt16BE(off + 3);
    if (len === 0 || len > 16_384) return null;
    if (buf.length < off + 5 + len) return undefined;
    payload.push(buf.subarray(off + 5, off + 5 + len));
    have += len;
    off += 5 + len;
    if (need < 0) {
      const first = payload[0]!;
      if (first.length < 4 || first[0] !== 0x01) return null;
      need = 4 + first.readUIntBE(1, 3);
      if (need > 64 * 1024) return null;
    }
    if (payload.length > 4 && have < need) return null;
  }
  return serverNameOf(Buffer.concat(payload).subarray(0, need));
}

function serverNameOf(h: Buffer): string | null {
  if (h.length < 4 + 2 + 32) return null;
  let p = 4 + 2 + 32; // handshake header, client_version, random
  const skip = (lenBytes: number): boolean => {
    if (h.length < p + lenBytes) return false;
    const n = h.readUIntBE(p, lenBytes);
    p += lenBytes + n;
    return h.length >= p;
  };
  if (!skip(1) || !skip(2) || !skip(1)) return null; // session id, cipher suites, compression methods
  if (h.length < p + 2) return null;
  const end = p + 2 + h.readUInt16BE(p);
  p += 2;
  if (end > h.length) return null;
  while (p + 4 <= end) {
    const type = h.readUInt16BE(p);
    const len = h.readUInt16BE(p + 2);
    p += 4;
    if (p + len > end) return null;
    if (type === 0) {
      // server_name: list length, then entries of (type, length, name); type 0 is host_name.
      if (len < 2) return null;
      let q = p + 2;
      const listEnd = Math.min(p + 2 + h.readUInt16BE(p), p + len);
      while (q + 3 <= listEnd) {
        const nameType = h[q]!;
        const nameLen = h.readUInt16BE(q + 1);
        q += 3;
        if (q + nameLen > listEnd) return null;
        if (nameType === 0) return h.subarray(q, q + nameLen).toString('latin1');
        q += nameLen;
      }
      return null;
    }
    p += len;
  }
  return null;
}

export interface HttpHead {
  method: string;
  target: string;
  version: string;
  headers: Array<[string, string]>;
  /** Bytes of the head, through the blank line. */
  length: number;
}

/** Parses an HTTP/1 request head; `undefined` while incomplete, `null` when malformed or over 16 KiB. */
export function readHttpHead(buf: Buffer): HttpHead | null | undefined {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return buf.length > 16 * 1024 ? null : undefined;
  if (end > 16 * 1024) return null;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^([A-Z]+) (\S+) (HTTP\/1\.[01])$/.exec(lines[0] ?? '');
  if (!m) return null;
  const headers: Array<[string, string]> = [];
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i <= 0 || /\s/.test(l.slice(0, i))) return null;
    headers.push([l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()]);
  }
  return { method: m[1]!, target: m[2]!, version: m[3]!, headers, length: end + 4 };
}

/** Splits `host[:port]` (brackets for IPv6); port undefined when absent. */
export function splitHostPort(text: string): { host: string; port?: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+))(?::(\d{1,5}))?$/.exec(text.trim());
  if (!m) return undefined;
  const port = m[3] === undefined ? undefined : Number(m[3]);
  if (port !== undefined && (port < 1 || port > 65535)) return undefined;
  return { host: (m[1] ?? m[2])!, port };
}
