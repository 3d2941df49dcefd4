import { Writable } from 'node:stream';
import type { HttpHead } from './client-hello';

/** How the body of a request is framed (RFC 9112 §6): chunked, a length, or none. */
export type BodyFraming = { kind: 'chunked' } | { kind: 'length'; bytes: number } | { kind: 'none' };

/** The framing of a request's body from its head; undefined when it is ambiguous (both, or a bad length): refused. */
export function bodyFraming(head: HttpHead): BodyFraming | undefined {
  const te = head.headers.filter(([k]) => k === 'transfer-encoding').map(([, v]) => v.toLowerCase());
  const cl = head.headers.filter(([k]) => k === 'content-length').map(([, v]) => v);
  // Request smuggling guards: both headers, several lengths or a coding other than chunked are refused.
  if (te.length && cl.length) return undefined;
  if (te.length) return te.length === 1 && te[0] === 'chunked' ? { kind: 'chunked' } : undefined;
  if (cl.length > 1 || (cl.length === 1 && !/^\d{1,15}$/.test(cl[0]!))) return undefined;
  return cl.length ? { kind: 'length', bytes: Number(cl[0]) } : { kind: 'none' };
}

/**
 * Passes on the body of exactly one request and nothing after it: a kept-alive connection
 * cannot carry a second request (with another Host) past the check of the first. Bytes that
 * come after the first request's end are dropped and reported once through `onExtra`.
 */
export class OneRequestBody extends Writable {
  private state: 'length' | 'size' | 'data' | 'data-crlf' | 'trailer' | 'done';
  private left = 0;
  private line = '';
  private reported = false;

  constructor(framing: BodyFraming, private readonly out: (chunk: Buffer) => void, private readonly onExtra: () => void) {
    super();
    this.state = framing.kind === 'chunked' ? 'size' : framing.kind === 'length' && framing.bytes > 0 ? 'length' : 'done';
    if (framing.kind === 'length') this.left = framing.bytes;
  }

  get done(): boolean {
    return this.state === 'done';
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    try {
      const passed = this.take(chunk);
      if (passed.length) this.out(passed);
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  /** The part of `chunk` that belongs to the first request's body. */
  take(chunk: Buffer): Buffer {
    let i = 0;
    while (i < chunk.length && this.state !== 'done') {
      if (this.state === 'length' || this.state === 'data') {
        const n = Math.min(this.left, chunk.length - i);
        i += n;
        this.left -= n;
        if (this.left === 0) this.state = this.state === 'length' ? 'done' : 'data-crlf';
        continue;
      }
      // Line-oriented parts of chunked framing: size lines, the CRLF after data, trailers.
      const c = chunk[i++]!;
      if (c !== 0x0a) {
        if (c !== 0x0d) this.line += String.fromCharCode(c);
        if (this.line.length > 4096) throw new Error('chunked framing line over 4096 bytes');
        continue;
      }
      const line = this.line;
      this.line = '';
      if (this.state === 'data-crlf') {
        if (line !== '') throw new Error('chunk data not followed by CRLF');
        this.state = 'size';
      } else if (this.state === 'size') {
        const m = /^([0-9a-fA-F]{1,12})(;.*)?$/.exec(line);
        if (!m) throw new Error('bad chunk size');
        this.left = parseInt(m[1]!, 16);
        this.state = this.left === 0 ? 'trailer' : 'data';
      } else if (this.state === 'trailer' && line === '') this.state = 'done';
    }
    if (i < chunk.length && !this.reported) {
      this.reported = true;
      this.onExtra();
    }
    return chunk.subarray(0, i);
  }
}
