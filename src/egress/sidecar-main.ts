/**
 * Entry of the job's helper containers (bundled to dist/sidecar.js, run by Node inside them):
 * the egress sidecar, configured by JSON in STOCKADE_EGRESS_CONFIG, or the results forwarder,
 * configured by STOCKADE_FORWARD_CONFIG.
 */
import { startSidecar, type SidecarConfig } from './sidecar';
import { startForwarder, type ForwarderConfig } from './forwarder';

const egress = process.env.STOCKADE_EGRESS_CONFIG;
const forward = process.env.STOCKADE_FORWARD_CONFIG;
const write = (line: string) => process.stdout.write(`${line}\n`);
if (!egress && !forward) {
  process.stderr.write('stockade sidecar: neither STOCKADE_EGRESS_CONFIG nor STOCKADE_FORWARD_CONFIG is set\n');
  process.exit(2);
}
const started = egress ? startSidecar(JSON.parse(egress) as SidecarConfig, write) : startForwarder(JSON.parse(forward!) as ForwarderConfig, write);
started.catch((e: unknown) => {
  process.stderr.write(`stockade sidecar: ${(e as Error).message}\n`);
  process.exit(1);
});
process.on('SIGTERM', () => process.exit(0));
