/**
 * Entry of the egress sidecar (bundled to dist/sidecar.js, run by Node inside the
 * job's sidecar container). Configuration comes as JSON in STOCKADE_EGRESS_CONFIG.
 */
import { startSidecar, type SidecarConfig } from './sidecar';

const raw = process.env.STOCKADE_EGRESS_CONFIG;
if (!raw) {
  process.stderr.write('stockade sidecar: STOCKADE_EGRESS_CONFIG is not set\n');
  process.exit(2);
}
startSidecar(JSON.parse(raw) as SidecarConfig, (line) => process.stdout.write(`${line}\n`)).catch((e: unknown) => {
  process.stderr.write(`stockade sidecar: ${(e as Error).message}\n`);
  process.exit(1);
});
process.on('SIGTERM', () => process.exit(0));
