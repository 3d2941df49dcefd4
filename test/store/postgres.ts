import { spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Debian's PostgreSQL 15 binaries (postgresql-15, installed by .ci/run). */
const BIN = '/usr/lib/postgresql/15/bin';

export interface Postgres {
  url: string;
  port: number;
  dir: string;
  /** The postmaster's PID (from its pid file). */
  pid(): number;
  stop(): void;
  start(): void;
  /** Stopped and started again: every connection is cut. */
  restart(): void;
  /** Stops it and removes its directory. */
  destroy(): void;
  log(): string;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/** Runs a PostgreSQL binary as the `postgres` user when this is root (initdb refuses root), as this user otherwise. */
function pg(args: string[]): { status: number | null; out: string } {
  const argv = process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--', ...args] : args;
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}${r.error ? String(r.error) : ''}` };
}

/**
 * A PostgreSQL server of the test's own: a fresh cluster in a temporary directory, on loopback at a
 * free port (and a Unix socket in that directory), started and stopped by PID file. Nothing of the
 * machine's own clusters is touched.
 */
export async function startPostgres(): Promise<Postgres> {
  const dir = mkdtempSync(join(tmpdir(), 'stockade-pg-'));
  const data = join(dir, 'data');
  const sock = join(dir, 'sock');
  mkdirSync(sock);
  if (process.getuid?.() === 0) {
    const id = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    if (id.status !== 0) throw new Error('no postgres user: install postgresql-15 (.ci/run does)');
    for (const p of [dir, sock]) chownSync(p, Number(id.stdout), Number(gid.stdout));
  }
  const init = pg([`${BIN}/initdb`, '-D', data, '-A', 'trust', '-U', 'stockade', '--no-sync', '-E', 'UTF8']);
  if (init.status !== 0) throw new Error(`initdb failed: ${init.out}`);
  const port = await freePort();
  const opts = `-c listen_addresses=127.0.0.1 -p ${port} -k ${sock} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200`;
  const logFile = join(dir, 'server.log');
  const start = () => {
    const r = pg([`${BIN}/pg_ctl`, '-D', data, '-o', opts, '-l', logFile, '-w', '-t', '60', 'start']);
    if (r.status !== 0) throw new Error(`pg_ctl start failed: ${r.out}`);
  };
  const stop = () => void pg([`${BIN}/pg_ctl`, '-D', data, '-m', 'fast', '-w', 'stop']);
  start();
  const created = pg([`${BIN}/createdb`, '-h', sock, '-p', String(port), '-U', 'stockade', 'stockade']);
  if (created.status !== 0) throw new Error(`createdb failed: ${created.out}`);
  return {
    url: `postgres://stockade@127.0.0.1:${port}/stockade`,
    port,
    dir,
    pid: () => Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]),
    stop,
    start,
    restart: () => {
      stop();
      start();
    },
    destroy: () => {
      stop();
      rmSync(dir, { recursive: true, force: true });
    },
    log: () => {
      try {
        return readFileSync(logFile, 'utf8');
      } catch {
        return '';
      }
    },
  };
}
