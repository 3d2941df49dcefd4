// stockade setup --systemd: the units pass systemd's own checker, restart on failure and start at boot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveHostConfig } from '../../src/host';
import { systemdUnits } from '../../src/cli/systemd';

test('the units pass systemd-analyze verify with no warning; each restarts on failure and is wanted at boot; the server delegates its cgroup', () => {
  const h = resolveHostConfig(process.env);
  const units = systemdUnits(h, { configFile: '/etc/stockade/config.yml', node: process.execPath, cli: join(process.cwd(), 'dist/cli.js'), runnerMode: true });
  assert.deepEqual(Object.keys(units).sort(), ['stockade-hook-broker.service', 'stockade-podman.service', 'stockade-server.service']);
  const dir = mkdtempSync(join(tmpdir(), 'stockade-units-'));
  try {
    for (const [name, text] of Object.entries(units)) {
      writeFileSync(join(dir, name), text);
      assert.match(text, name === 'stockade-podman.service' ? /^Restart=always$/m : /^Restart=on-failure$/m, name);
      assert.match(text, /^WantedBy=multi-user\.target$/m, name);
    }
    assert.match(units['stockade-server.service']!, /^Delegate=yes$/m);
    assert.match(units['stockade-server.service']!, /^ExecStart=.* serve --config \/etc\/stockade\/config\.yml$/m);
    assert.match(units['stockade-podman.service']!, new RegExp(`^User=${h.runnerUser}$`, 'm'));
    assert.match(units['stockade-podman.service']!, new RegExp(`^ExecStart=/usr/bin/podman system service --time 0 unix://${h.socketPath}$`, 'm'));
    const r = spawnSync('systemd-analyze', ['verify', ...Object.keys(units).map((n) => join(dir, n))], { encoding: 'utf8' });
    assert.ok(!r.error, `systemd-analyze is missing: ${r.error?.message}`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.split('\n').filter((l) => l.includes(dir)).join('\n'), '', 'no warning about our units');
    // The checker is not a formality: a misspelt key is reported.
    writeFileSync(join(dir, 'stockade-server.service'), units['stockade-server.service']!.replace('RestartSec=5', 'RestrtSec=5'));
    const bad = spawnSync('systemd-analyze', ['verify', join(dir, 'stockade-server.service')], { encoding: 'utf8' });
    assert.match(bad.stderr, /Unknown key 'RestrtSec'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
