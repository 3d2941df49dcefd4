// The server database's schema is versioned: numbered migrations, each once, never an ad-hoc ALTER.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { JobStore } from '../../src/store';
import { SCHEMA_VERSION, SQLITE_MIGRATIONS } from '../../src/store/migrations';

const withDir = async (f: (dir: string) => Promise<void>) => {
  const dir = mkdtempSync(join(tmpdir(), 'stockade-migrations-'));
  try {
    await f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};
const version = (file: string) => {
  const db = new Database(file);
  try {
    return db.pragma('user_version', { simple: true }) as number;
  } finally {
    db.close();
  }
};

test('a new database gets every migration in order and records the version; opening it again runs nothing', async () => {
  assert.deepEqual(SQLITE_MIGRATIONS.map((m) => m.version), SQLITE_MIGRATIONS.map((_, i) => i + 1), 'versions are 1, 2, 3, … without gaps');
  await withDir(async (dir) => {
    const file = join(dir, 'db');
    await (await JobStore.open(file)).close();
    assert.equal(version(file), SCHEMA_VERSION);
    const s = await JobStore.open(file);
    await s.addDelivery('g1', 'push', '{}');
    await s.close();
    const again = await JobStore.open(file);
    assert.ok(await again.hasDelivery('g1'));
    await again.close();
  });
});

test('a database from before versions were kept is adopted: its rows stay, the missing columns come, the version is recorded', async () => {
  await withDir(async (dir) => {
    const file = join(dir, 'db');
    const old = new Database(file);
    // The first release's schema: no priority, no start times, no backoff columns, no quota tables.
    old.exec(`CREATE TABLE deliveries (guid TEXT PRIMARY KEY, event TEXT NOT NULL, payload TEXT NOT NULL, received_at INTEGER NOT NULL, processed INTEGER NOT NULL DEFAULT 0);
      CREATE TABLE jobs (key TEXT PRIMARY KEY, delivery_guid TEXT NOT NULL, repository TEXT NOT NULL, installation_id INTEGER NOT NULL, head_sha TEXT NOT NULL, spec TEXT NOT NULL,
        state TEXT NOT NULL, check_run_id INTEGER, result TEXT, log TEXT, reported INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
      INSERT INTO jobs VALUES ('o/r/job/1', 'g', 'o/r', 1, 'abc', '{}', 'queued', NULL, NULL, NULL, 0, 1, 1);`);
    old.close();
    const s = await JobStore.open(file);
    const row = await s.get('o/r/job/1');
    assert.equal(row?.state, 'queued');
    assert.equal(row?.priority, 0);
    assert.equal(row?.githubAttempts, 0);
    await s.quotas.set('org:o', { concurrency: 2 });
    assert.equal(row?.attempt, 0, 'the fleet columns come too');
    await s.close();
    assert.equal(version(file), SCHEMA_VERSION);
  });
});

test('a database written by a newer release is refused with what to do, and left as it was', async () => {
  await withDir(async (dir) => {
    const file = join(dir, 'db');
    await (await JobStore.open(file)).close();
    const db = new Database(file);
    db.pragma(`user_version = ${SCHEMA_VERSION + 7}`);
    db.close();
    await assert.rejects(() => JobStore.open(file), /schema version \d+ is newer than this Stockade's/);
    assert.equal(version(file), SCHEMA_VERSION + 7);
  });
});
