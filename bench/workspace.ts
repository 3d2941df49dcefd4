/**
 * Time to prepare and clean a job workspace for a repository of 10,000 files / 200 MB:
 * the job's four volumes created, the repository copied into the workspace volume
 * (cp --reflink=auto, then chown to the container's root), and the volumes removed.
 * Also the same for a small repository, for the fixed cost. Median of ROUNDS.
 *
 *   npx tsx bench/workspace.ts [FILES=10000] [MB=200] [ROUNDS=5]   (as root, after `stockade setup`)
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../src/common';
import { copyTreeIntoVolume, managedLabels, openSandbox, volumeOwner } from '../src/sandbox';

const FILES = Number(process.argv[2] ?? 10_000);
const MB = Number(process.argv[3] ?? 200);
const ROUNDS = Number(process.argv[4] ?? 5);

function makeRepo(files: number, bytes: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'stockade-bench-ws-'));
  const per = Math.floor(bytes / files);
  const chunk = Buffer.alloc(per, 0x61);
  for (let i = 0; i < files; i++) {
    const d = join(dir, `dir${i % 100}`, `sub${i % 7}`);
    if (i < 700) mkdirSync(d, { recursive: true });
    writeFileSync(join(d, `file${i}.txt`), chunk);
  }
  return dir;
}

async function main(): Promise<void> {
  const user = process.env.STOCKADE_USER ?? 'stockade';
  const uid = Number(readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${user}:`))!.split(':')[2]);
  const sb = await openSandbox({ socketPath: `/run/user/${uid}/podman.sock`, stateDir: '/var/lib/stockade', seccompProfileJson: readFileSync('seccomp/stockade.json', 'utf8'), logger: silentLogger() });
  const big = makeRepo(FILES, MB * 1024 * 1024);
  const small = makeRepo(10, 10 * 1024);
  const once = async (src: string, r: number, link: boolean) => {
    const t0 = process.hrtime.bigint();
    const names = ['workspace', 'home', 'temp', 'toolcache'].map((k) => `stockade-bench-ws-${process.pid}-${r}-${k}`);
    const mps: string[] = [];
    for (const n of names) mps.push((await sb.deps.engine.createVolume(n, managedLabels(sb.ownerTag))).mountpoint);
    const t1 = process.hrtime.bigint();
    await copyTreeIntoVolume(src, mps[0]!, await volumeOwner(mps[0]!), { link });
    const t2 = process.hrtime.bigint();
    for (const n of names) await sb.deps.engine.removeVolume(n);
    const t3 = process.hrtime.bigint();
    const ms = (a: bigint, b: bigint) => Number(b - a) / 1e6;
    return { volumes: ms(t0, t1), copy: ms(t1, t2), remove: ms(t2, t3), total: ms(t0, t3) };
  };
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
  for (const [label, src, link] of [[`${FILES} files / ${MB} MB, copied (stockade run)`, big, false], [`${FILES} files / ${MB} MB, hard-linked (server)`, big, true], ['10 files / 10 KB, copied', small, false]] as const) {
    const rows: Array<{ volumes: number; copy: number; remove: number; total: number }> = [];
    for (let r = 0; r < ROUNDS; r++) rows.push(await once(src, r, link));
    const m = (k: keyof (typeof rows)[number]) => median(rows.map((x) => x[k])).toFixed(0);
    console.log(`${label}: prepare+clean ${m('total')} ms (median of ${ROUNDS}): volumes ${m('volumes')} ms, copy+chown ${m('copy')} ms, remove ${m('remove')} ms`);
  }
  rmSync(big, { recursive: true, force: true });
  rmSync(small, { recursive: true, force: true });
}

void main();
