// How many step containers Podman prepares per second when asked for 1, 2 or 3 at once: whether
// preparing more than one step ahead can hide more (issue 17, target 1). Each container: create, init,
// cgroup limits read back, rlimits, attach, start (`true`), exit, remove — the full policy.
// Usage: npx tsx bench/prepare-concurrency.ts [N=12]   (as root, after `stockade setup`)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../src/common';
import { DEFAULT_LIMITS, discardPreparedStep, managedLabels, openSandbox, prepareStepContainer } from '../src/sandbox';
import { baseImageRef } from '../src/cli/base-image';
import { resolveHostConfig } from '../src/host';

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 12);
  const host = resolveHostConfig(process.env);
  const sb = await openSandbox({ socketPath: host.socketPath, stateDir: host.stateDir, seccompProfileJson: readFileSync(join(host.packageRoot, 'seccomp/stockade.json'), 'utf8'), logger: silentLogger() });
  const image = baseImageRef(host);
  let k = 0;
  const one = async () => {
    const spec = { name: `stockade-bench-${process.pid}-${k++}`, image, argv: ['true'], env: {}, workdir: '/', mounts: [], limits: DEFAULT_LIMITS, network: { mode: 'none' as const }, security: { seccompProfilePath: sb.seccompProfilePath, readOnlyRoot: true }, labels: managedLabels(sb.ownerTag) };
    const t0 = performance.now();
    const p = await prepareStepContainer(sb.deps, spec, { start: true });
    const prepared = performance.now() - t0;
    await new Promise((r) => { p.stream!.resume(); p.stream!.once('close', r); });
    await discardPreparedStep(sb.deps, p);
    return prepared;
  };
  const rows: string[] = [];
  for (const width of [1, 2, 3]) {
    const lat: number[] = [];
    const t0 = performance.now();
    let left = n;
    await Promise.all(Array.from({ length: width }, async () => { while (left-- > 0) lat.push(await one()); }));
    const wall = performance.now() - t0;
    lat.sort((a, b) => a - b);
    rows.push(`${width} at once: ${(wall / n).toFixed(0)} ms per container (wall / ${n}); prepare latency p50 ${lat[Math.floor(lat.length / 2)]!.toFixed(0)} ms`);
  }
  console.log(rows.join('\n'));
}

void main();
