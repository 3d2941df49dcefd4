/**
 * Entry of the job's helper containers (bundled to dist/sidecar.js, run by Node inside them):
 * the egress sidecar, configured by JSON read to its end from the FIFO STOCKADE_EGRESS_CONFIG_FIFO
 * names (a container made ahead of its job waits there for the job's allowlist) or given in
 * STOCKADE_EGRESS_CONFIG, or the results forwarder, configured by STOCKADE_FORWARD_CONFIG.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { startSidecar, type SidecarConfig } from './sidecar';
import { startForwarder, type ForwarderConfig } from './forwarder';

/** The most configuration read from the FIFO. */
const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

/** Blocks until the runner opens the FIFO's other end, then reads to its end. */
function readFifo(path: string): string {
  const fd = openSync(path, 'r');
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for (;;) {
      const b = Buffer.alloc(65536);
      const n = readSync(fd, b, 0, b.length, null);
      if (n === 0) break;
      total += n;
      if (total > MAX_CONFIG_BYTES) throw new Error(`the configuration is larger than ${MAX_CONFIG_BYTES} bytes`);
      chunks.push(b.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const write = (line: string) => process.stdout.write(`${line}\n`);
const fail = (message: string) => {
  process.stderr.write(`stockade sidecar: ${message}\n`);
  process.exit(1);
};
process.on('SIGTERM', () => process.exit(0));
const fifo = process.env.STOCKADE_EGRESS_CONFIG_FIFO;
const forward = process.env.STOCKADE_FORWARD_CONFIG;
let egress = process.env.STOCKADE_EGRESS_CONFIG;
if (!egress && !forward && !fifo) {
  process.stderr.write('stockade sidecar: none of STOCKADE_EGRESS_CONFIG_FIFO, STOCKADE_EGRESS_CONFIG, STOCKADE_FORWARD_CONFIG is set\n');
  process.exit(2);
}
try {
  if (fifo) {
    egress = readFifo(fifo);
    if (!egress.trim()) fail('the configuration FIFO closed without a configuration');
  }
  const started = egress ? startSidecar(JSON.parse(egress) as SidecarConfig, write) : startForwarder(JSON.parse(forward!) as ForwarderConfig, write);
  started.catch((e: unknown) => fail((e as Error).message));
} catch (e) {
  fail((e as Error).message);
}
