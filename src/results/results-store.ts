import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, statSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** What one repository may keep; GitHub's figures where it documents them. */
export interface ResultsLimits {
  /** Bytes of caches one repository keeps; the least recently used go first past it. @default 10 GiB (GitHub's) */
  cacheQuotaBytes: number;
  /** Bytes of artifacts one repository keeps; an upload past it is refused. @default 10 GiB */
  artifactQuotaBytes: number;
  /** A cache not restored or saved for this long is removed. @default 7 days (GitHub's) */
  cacheUnusedMs: number;
  /** Longest an artifact is kept (a workflow's retention-days may shorten it). @default 90 days (GitHub's) */
  artifactRetentionMs: number;
  /** Artifacts one run may create. @default 500 */
  artifactsPerRun: number;
}

const DAY = 86_400_000;
export const DEFAULT_RESULTS_LIMITS: ResultsLimits = {
  cacheQuotaBytes: 10 * 1024 ** 3,
  artifactQuotaBytes: 10 * 1024 ** 3,
  cacheUnusedMs: 7 * DAY,
  artifactRetentionMs: 90 * DAY,
  artifactsPerRun: 500,
};

export interface CacheEntry {
  id: number;
  repository: string;
  scope: string;
  key: string;
  version: string;
  blob: string;
  size: number;
  createdAt: number;
}

export interface Artifact {
  id: number;
  repository: string;
  runBackendId: string;
  jobBackendId: string;
  name: string;
  blob: string;
  size: number;
  hash: string;
  createdAt: number;
  expiresAt: number;
}

/** Pending uploads older than this are dropped (their blobs with them). */
const PENDING_MS = DAY;

/**
 * Caches and artifacts on the host: an SQLite index and one file per blob under `dir`.
 * Everything is keyed by repository, so no query of one repository can name another's entries.
 */
export class ResultsStore {
  private readonly db: Database.Database;
  readonly blobDir: string;

  constructor(readonly dir: string, readonly limits: ResultsLimits = DEFAULT_RESULTS_LIMITS) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.blobDir = join(dir, 'blobs');
    mkdirSync(this.blobDir, { recursive: true, mode: 0o700 });
    this.db = new Database(join(dir, 'results.db'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS caches (
        id INTEGER PRIMARY KEY AUTOINCREMENT, repository TEXT NOT NULL, scope TEXT NOT NULL, key TEXT NOT NULL, version TEXT NOT NULL,
        blob TEXT NOT NULL, size INTEGER NOT NULL DEFAULT 0, final INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, used_at INTEGER NOT NULL);
      CREATE UNIQUE INDEX IF NOT EXISTS caches_entry ON caches (repository, scope, key, version);
      CREATE TABLE IF NOT EXISTS artifacts (
        id INTEGER PRIMARY KEY AUTOINCREMENT, repository TEXT NOT NULL, run TEXT NOT NULL, job TEXT NOT NULL, name TEXT NOT NULL,
        blob TEXT NOT NULL, size INTEGER NOT NULL DEFAULT 0, hash TEXT NOT NULL DEFAULT '', final INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS artifacts_run ON artifacts (repository, run);
    `);
  }

  close(): void {
    this.db.close();
  }

  blobPath(blob: string): string {
    if (!/^[0-9a-f]{32}$/.test(blob)) throw new Error('not a blob id');
    return join(this.blobDir, blob);
  }

  private newBlob(): string {
    return randomBytes(16).toString('hex');
  }

  // ---- caches ----

  /**
   * Reserves `key`/`version` in `scope` for an upload. undefined when a saved entry has them
   * already (caches are immutable, as on GitHub) or another job is uploading it now.
   */
  reserveCache(repository: string, scope: string, key: string, version: string, now = Date.now()): CacheEntry | undefined {
    const existing = this.db.prepare('SELECT * FROM caches WHERE repository = ? AND scope = ? AND key = ? AND version = ?').get(repository, scope, key, version) as Row | undefined;
    if (existing) {
      if (existing.final || now - existing.created_at < PENDING_MS) return undefined;
      this.dropCache(existing);
    }
    const blob = this.newBlob();
    const r = this.db.prepare('INSERT INTO caches (repository, scope, key, version, blob, created_at, used_at) VALUES (?, ?, ?, ?, ?, ?, ?)').run(repository, scope, key, version, blob, now, now);
    return { id: Number(r.lastInsertRowid), repository, scope, key, version, blob, size: 0, createdAt: now };
  }

  pendingCache(repository: string, idOrKey: { id: number } | { scope: string; key: string; version: string }): CacheEntry | undefined {
    const row = (
      'id' in idOrKey
        ? this.db.prepare('SELECT * FROM caches WHERE repository = ? AND id = ? AND final = 0').get(repository, idOrKey.id)
        : this.db.prepare('SELECT * FROM caches WHERE repository = ? AND scope = ? AND key = ? AND version = ? AND final = 0').get(repository, idOrKey.scope, idOrKey.key, idOrKey.version)
    ) as Row | undefined;
    return row && toCache(row);
  }

  /** Marks an uploaded entry saved, its size read from its blob; evicts the least recently used past the quota. */
  finalizeCache(entry: CacheEntry, now = Date.now()): { ok: true; size: number } | { ok: false; why: string } {
    const size = fileSize(this.blobPath(entry.blob));
    if (size === undefined) return { ok: false, why: 'nothing was uploaded for this cache entry' };
    if (size > this.limits.cacheQuotaBytes) {
      this.dropCache({ id: entry.id, blob: entry.blob });
      return { ok: false, why: `the cache is ${size} bytes, more than the repository's cache quota of ${this.limits.cacheQuotaBytes}` };
    }
    this.db.prepare('UPDATE caches SET final = 1, size = ?, created_at = ?, used_at = ? WHERE id = ?').run(size, now, now, entry.id);
    this.evictCaches(entry.repository);
    return { ok: true, size };
  }

  /**
   * GitHub's lookup: in each scope in turn (the run's ref, then the bases it may read), the
   * primary key exactly, then each of `keys` as a prefix (newest entry first).
   */
  findCache(repository: string, scopes: string[], keys: string[], version: string, now = Date.now()): CacheEntry | undefined {
    const exact = this.db.prepare('SELECT * FROM caches WHERE repository = ? AND scope = ? AND key = ? AND version = ? AND final = 1');
    const prefix = this.db.prepare("SELECT * FROM caches WHERE repository = ? AND scope = ? AND version = ? AND final = 1 AND substr(key, 1, length(?)) = ? ORDER BY created_at DESC, id DESC LIMIT 1");
    for (const scope of scopes) {
      let row = keys.length ? (exact.get(repository, scope, keys[0], version) as Row | undefined) : undefined;
      for (const k of keys) {
        if (row) break;
        row = prefix.get(repository, scope, version, k, k) as Row | undefined;
      }
      if (row) {
        this.db.prepare('UPDATE caches SET used_at = ? WHERE id = ?').run(now, row.id);
        return toCache(row);
      }
    }
    return undefined;
  }

  listCaches(repository: string): CacheEntry[] {
    return (this.db.prepare('SELECT * FROM caches WHERE repository = ? AND final = 1 ORDER BY used_at DESC').all(repository) as Row[]).map(toCache);
  }

  cacheBytes(repository: string): number {
    return (this.db.prepare('SELECT COALESCE(SUM(size), 0) AS n FROM caches WHERE repository = ? AND final = 1').get(repository) as { n: number }).n;
  }

  private evictCaches(repository: string): void {
    let total = this.cacheBytes(repository);
    if (total <= this.limits.cacheQuotaBytes) return;
    for (const row of this.db.prepare('SELECT * FROM caches WHERE repository = ? AND final = 1 ORDER BY used_at ASC, id ASC').all(repository) as Row[]) {
      if (total <= this.limits.cacheQuotaBytes) break;
      this.dropCache(row);
      total -= row.size;
    }
  }

  private dropCache(row: { id: number; blob: string }): void {
    this.db.prepare('DELETE FROM caches WHERE id = ?').run(row.id);
    rmSync(this.blobPath(row.blob), { force: true });
  }

  // ---- artifacts ----

  /** Starts an artifact of a run; refused when the run has a finished one of that name (v4 artifacts are immutable). */
  createArtifact(repository: string, run: string, job: string, name: string, expiresAt: number, now = Date.now()): { ok: true; artifact: Artifact } | { ok: false; why: string; code: 'already_exists' | 'resource_exhausted' } {
    const rows = this.db.prepare('SELECT * FROM artifacts WHERE repository = ? AND run = ? AND name = ?').all(repository, run, name) as ARow[];
    if (rows.some((r) => r.final)) return { ok: false, code: 'already_exists', why: `an artifact named '${name}' already exists in this workflow run` };
    for (const r of rows) this.dropArtifact(r);
    const count = (this.db.prepare('SELECT COUNT(*) AS n FROM artifacts WHERE repository = ? AND run = ?').get(repository, run) as { n: number }).n;
    if (count >= this.limits.artifactsPerRun) return { ok: false, code: 'resource_exhausted', why: `a run may create at most ${this.limits.artifactsPerRun} artifacts` };
    const blob = this.newBlob();
    const expires = Math.min(expiresAt, now + this.limits.artifactRetentionMs);
    const r = this.db.prepare('INSERT INTO artifacts (repository, run, job, name, blob, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)').run(repository, run, job, name, blob, now, expires);
    return { ok: true, artifact: { id: Number(r.lastInsertRowid), repository, runBackendId: run, jobBackendId: job, name, blob, size: 0, hash: '', createdAt: now, expiresAt: expires } };
  }

  pendingArtifact(repository: string, run: string, job: string, name: string): Artifact | undefined {
    const row = this.db.prepare('SELECT * FROM artifacts WHERE repository = ? AND run = ? AND job = ? AND name = ? AND final = 0').get(repository, run, job, name) as ARow | undefined;
    return row && toArtifact(row);
  }

  finalizeArtifact(a: Artifact, hash: string): { ok: true; size: number } | { ok: false; why: string } {
    const size = fileSize(this.blobPath(a.blob));
    if (size === undefined) return { ok: false, why: 'nothing was uploaded for this artifact' };
    const used = (this.db.prepare('SELECT COALESCE(SUM(size), 0) AS n FROM artifacts WHERE repository = ? AND final = 1').get(a.repository) as { n: number }).n;
    if (used + size > this.limits.artifactQuotaBytes) {
      this.dropArtifact({ id: a.id, blob: a.blob });
      return { ok: false, why: `the repository's artifacts would take ${used + size} bytes, more than its quota of ${this.limits.artifactQuotaBytes}` };
    }
    this.db.prepare('UPDATE artifacts SET final = 1, size = ?, hash = ? WHERE id = ?').run(size, hash, a.id);
    return { ok: true, size };
  }

  listArtifacts(repository: string, run: string, filter: { name?: string; id?: number } = {}, now = Date.now()): Artifact[] {
    const rows = this.db.prepare('SELECT * FROM artifacts WHERE repository = ? AND run = ? AND final = 1 AND expires_at > ? ORDER BY id').all(repository, run, now) as ARow[];
    return rows.map(toArtifact).filter((a) => (filter.name === undefined || a.name === filter.name) && (filter.id === undefined || a.id === filter.id));
  }

  deleteArtifact(a: { id: number; blob: string }): void {
    this.dropArtifact(a);
  }

  private dropArtifact(row: { id: number; blob: string }): void {
    this.db.prepare('DELETE FROM artifacts WHERE id = ?').run(row.id);
    rmSync(this.blobPath(row.blob), { force: true });
    rmSync(`${this.blobPath(row.blob)}.blocks`, { recursive: true, force: true });
  }

  /**
   * Retention: caches unused for `cacheUnusedMs`, expired artifacts, uploads never finished
   * within a day, and blob files no entry names. Returns what it removed.
   */
  prune(now = Date.now()): { caches: number; artifacts: number; orphans: number } {
    const oldCaches = this.db.prepare('SELECT * FROM caches WHERE (final = 1 AND used_at < ?) OR (final = 0 AND created_at < ?)').all(now - this.limits.cacheUnusedMs, now - PENDING_MS) as Row[];
    for (const r of oldCaches) this.dropCache(r);
    const oldArtifacts = this.db.prepare('SELECT * FROM artifacts WHERE expires_at <= ? OR (final = 0 AND created_at < ?)').all(now, now - PENDING_MS) as ARow[];
    for (const r of oldArtifacts) this.dropArtifact(r);
    const known = new Set<string>([
      ...(this.db.prepare('SELECT blob FROM caches').all() as Array<{ blob: string }>).map((r) => r.blob),
      ...(this.db.prepare('SELECT blob FROM artifacts').all() as Array<{ blob: string }>).map((r) => r.blob),
    ]);
    let orphans = 0;
    for (const f of readdirSync(this.blobDir)) {
      const id = f.replace(/\.(blocks|type|part)$/, '');
      if (!known.has(id)) {
        rmSync(join(this.blobDir, f), { recursive: true, force: true });
        orphans++;
      }
    }
    return { caches: oldCaches.length, artifacts: oldArtifacts.length, orphans };
  }
}

interface Row {
  id: number;
  repository: string;
  scope: string;
  key: string;
  version: string;
  blob: string;
  size: number;
  final: number;
  created_at: number;
  used_at: number;
}

interface ARow {
  id: number;
  repository: string;
  run: string;
  job: string;
  name: string;
  blob: string;
  size: number;
  hash: string;
  final: number;
  created_at: number;
  expires_at: number;
}

const toCache = (r: Row): CacheEntry => ({ id: r.id, repository: r.repository, scope: r.scope, key: r.key, version: r.version, blob: r.blob, size: r.size, createdAt: r.created_at });
const toArtifact = (r: ARow): Artifact => ({ id: r.id, repository: r.repository, runBackendId: r.run, jobBackendId: r.job, name: r.name, blob: r.blob, size: r.size, hash: r.hash, createdAt: r.created_at, expiresAt: r.expires_at });

function fileSize(p: string): number | undefined {
  try {
    const st = statSync(p);
    return st.isFile() ? st.size : undefined;
  } catch {
    return undefined;
  }
}
