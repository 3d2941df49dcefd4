export type StreamName = 'stdout' | 'stderr';

export interface OutputLine {
  stream: StreamName;
  text: string;
}

export interface OutputLimits {
  /** Total bytes accepted across both streams. */
  maxBytes: number;
  /** Longest line kept; the rest of a longer line is dropped with a marker. */
  maxLineBytes: number;
}

/**
 * Splits a container's stdout/stderr into lines under two budgets: total bytes and
 * line length. Memory stays bounded by maxLineBytes per stream, whatever the step prints.
 */
export class OutputLines {
  private readonly partial: Record<StreamName, Buffer[]> = { stdout: [], stderr: [] };
  private readonly partialBytes: Record<StreamName, number> = { stdout: 0, stderr: 0 };
  private readonly dropping: Record<StreamName, boolean> = { stdout: false, stderr: false };
  /** Bytes received so far (counted against maxBytes). */
  bytes = 0;
  /** True once maxBytes was passed: the caller stops the step. */
  overflowed = false;
  truncatedLines = 0;
  /** Called once when maxBytes is passed. */
  onOverflow: (() => void) | undefined;

  constructor(private readonly limits: OutputLimits, private readonly emit: (line: OutputLine) => void) {}

  push(stream: StreamName, chunk: Buffer): void {
    if (this.overflowed) return;
    const room = this.limits.maxBytes - this.bytes;
    this.bytes += chunk.length;
    if (chunk.length > room) {
      this.accept(stream, chunk.subarray(0, Math.max(0, room)));
      this.flush();
      this.overflowed = true;
      this.onOverflow?.();
      this.emit({ stream: 'stderr', text: `[stockade] output limit of ${this.limits.maxBytes} bytes reached: the rest of the output is discarded and the step is stopped` });
      return;
    }
    this.accept(stream, chunk);
  }

  private accept(stream: StreamName, chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      const end = nl < 0 ? chunk.length : nl;
      this.append(stream, chunk.subarray(start, end));
      if (nl < 0) return;
      this.endLine(stream);
      start = nl + 1;
    }
  }

  private append(stream: StreamName, piece: Buffer): void {
    if (this.dropping[stream] || piece.length === 0) return;
    const room = this.limits.maxLineBytes - this.partialBytes[stream];
    if (piece.length > room) {
      this.partial[stream].push(Buffer.from(piece.subarray(0, room)));
      this.partialBytes[stream] += room;
      this.dropping[stream] = true;
      return;
    }
    this.partial[stream].push(Buffer.from(piece));
    this.partialBytes[stream] += piece.length;
  }

  private endLine(stream: StreamName): void {
    let text = Buffer.concat(this.partial[stream]).toString('utf8').replace(/\r$/, '');
    if (this.dropping[stream]) {
      text += ` …[stockade: line cut at ${this.limits.maxLineBytes} bytes]`;
      this.truncatedLines++;
    }
    this.partial[stream] = [];
    this.partialBytes[stream] = 0;
    this.dropping[stream] = false;
    this.emit({ stream, text });
  }

  /** Emits unterminated last lines (at end of stream). */
  flush(): void {
    for (const s of ['stdout', 'stderr'] as const) if (this.partialBytes[s] > 0 || this.dropping[s]) this.endLine(s);
  }
}

/**
 * Decodes Docker's multiplexed attach stream: frames of an 8-byte header
 * (stream type, 3 zero bytes, big-endian payload length) and the payload.
 */
export class FrameDecoder {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly onPayload: (stream: StreamName, payload: Buffer) => void) {}

  push(chunk: Buffer): void {
    let buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    while (buf.length >= 8) {
      const size = buf.readUInt32BE(4);
      if (buf.length < 8 + size) break;
      const type = buf[0];
      this.onPayload(type === 2 ? 'stderr' : 'stdout', buf.subarray(8, 8 + size));
      buf = buf.subarray(8 + size);
    }
    this.pending = buf.length ? Buffer.from(buf) : Buffer.alloc(0);
  }
}

/** Feeds a multiplexed attach stream into `output` until it ends (end, close or error, whichever comes first). */
export function drainFrames(stream: import('node:stream').Readable, output: OutputLines): Promise<void> {
  const decoder = new FrameDecoder((s, payload) => output.push(s, payload));
  return new Promise((resolve) => {
    stream.on('data', (chunk: Buffer) => decoder.push(chunk));
    const done = () => {
      output.flush();
      resolve();
    };
    stream.once('end', done);
    stream.once('close', done);
    stream.once('error', done);
    // A stream that ended or was destroyed before it was handed here emits nothing more.
    if (stream.destroyed || stream.readableEnded || stream.closed) done();
  });
}
