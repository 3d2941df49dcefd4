// Where the time of one sandboxed step goes: each phase of runStepContainer's lifecycle,
// timed separately over N `true` steps with the full policy (seccomp, cgroup limits, rlimits).
// Usage: npx tsx bench/step-phases.ts [N]   (as root, after `stockade setup`)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../src/common';
import { DEFAULT_LIMITS, managedLabels, openSandbox, toCreateOptions } from '../src/sandbox';
import { applyProcessRlimits } from '../src/sandbox/process-rlimits';
import { baseImageRef } from '../src/cli/base-image';
import { resolveHostConfig } from '../src/host';

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 20);
  const host = resolveHostConfig(process.env);
  const sb = await openSandbox({ socketPath: host.socketPath, stateDir: host.stateDir, seccompProfileJson: readFileSync(join(host.packageRoot, 'seccomp/stockade.json'), 'utf8'), logger: silentLogger() });
  const e = sb.deps.engine;
  const image = baseImageRef(host);
  const totals = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    let last = performance.now();
    const mark = (phase: string) => {
      const now = performance.now();
      totals.set(phase, (totals.get(phase) ?? 0) + now - last);
      last = now;
    };
    const spec = { name: `stockade-bench-${process.pid}-${i}`, image, argv: ['true'], env: {}, workdir: '/', mounts: [], limits: DEFAULT_LIMITS, network: { mode: 'none' as const }, security: { seccompProfilePath: sb.seccompProfilePath, readOnlyRoot: true }, labels: managedLabels(sb.ownerTag) };
    const id = await e.createContainer(toCreateOptions(spec, sb.deps.limits.mode, sb.deps.host));
    mark('create');
    const pid = await e.initContainer(id);
    mark('init + pid');
    const applied = await sb.deps.limits.apply(spec.name, pid, spec.limits);
    mark('cgroup limits');
    await applyProcessRlimits(pid, { nofile: Math.min(spec.limits.nofile, sb.deps.host.nofileHard), core: 0 });
    mark('rlimits');
    const stream = await e.attach(id);
    const ended = new Promise((resolve) => {
      stream.resume();
      stream.once('end', resolve);
      stream.once('close', resolve);
    });
    mark('attach');
    await e.start(id);
    mark('start');
    await ended;
    mark('run until stream end');
    await e.wait(id);
    mark('exit code');
    await e.removeContainer(id);
    mark('remove');
    await applied.remove();
    mark('cgroup remove');
  }
  let sum = 0;
  for (const [phase, ms] of totals) {
    sum += ms / n;
    console.log(`${phase.padEnd(22)} ${(ms / n).toFixed(1).padStart(7)} ms`);
  }
  console.log(`${'total per step'.padEnd(22)} ${sum.toFixed(1).padStart(7)} ms  (${n} steps)`);
}

void main();
