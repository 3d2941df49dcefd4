import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HostConfig } from '../host';
import { exec } from './exec';

/**
 * `stockade setup --systemd`: units for the rootless Podman API service of the runner user, the
 * server and (runner mode) the hook broker; restart on failure, start at boot, the runner user
 * lingering so its runtime directory exists without a login.
 */
export interface UnitOptions {
  /** The server's config file (`serve --config`). */
  configFile: string;
  /** Node.js and the CLI the units run. */
  node: string;
  cli: string;
  /** Runner mode: also the hook broker's unit. */
  runnerMode: boolean;
}

export const SYSTEMD_DIR = '/etc/systemd/system';
export const DEFAULT_CONFIG_FILE = '/etc/stockade/config.yml';

/** The unit files by name. */
export function systemdUnits(h: Pick<HostConfig, 'runnerUser' | 'runnerUid' | 'runnerHome' | 'runtimeDir' | 'socketPath'>, o: UnitOptions): Record<string, string> {
  const runtime = `user-runtime-dir@${h.runnerUid}.service`;
  const units: Record<string, string> = {
    'stockade-podman.service': `[Unit]
Description=Stockade: rootless Podman API service of the runner user ${h.runnerUser}
Documentation=https://docs.podman.io/en/latest/markdown/podman-system-service.1.html
# The runner user's runtime directory (${h.runtimeDir}) exists while it lingers or this unit runs.
After=${runtime}
Requires=${runtime}

[Service]
Type=simple
User=${h.runnerUser}
Environment=XDG_RUNTIME_DIR=${h.runtimeDir} HOME=${h.runnerHome}
WorkingDirectory=${h.runnerHome}
ExecStart=/usr/bin/podman system service --time 0 unix://${h.socketPath}
# Killed or crashed, it comes back: the server's watchdog waits for it and then reaps what the jobs it
# interrupted left behind.
Restart=always
RestartSec=2
# Containers of running jobs belong to their conmon, not to this service: a restart of the API
# service must not kill them (the server's reaper removes what a dead job leaves).
KillMode=process

[Install]
WantedBy=multi-user.target
`,
    'stockade-server.service': `[Unit]
Description=Stockade server: GitHub webhooks in, every step in a fresh rootless Podman container, check runs out
After=network-online.target stockade-podman.service
Wants=network-online.target
Requires=stockade-podman.service

[Service]
Type=simple
Environment=STOCKADE_LOG_LEVEL=info
# Refuses to start on a host that lost a requirement (doctor prints the fix); then the server.
ExecStartPre=${o.node} ${o.cli} doctor
ExecStart=${o.node} ${o.cli} serve --config ${o.configFile}
Restart=on-failure
RestartSec=5
# SIGTERM stops taking jobs, stops the running steps and reports them; then the unit is killed.
KillSignal=SIGTERM
TimeoutStopSec=120
# Job cgroups are made below the server's own cgroup: systemd hands that subtree over.
Delegate=yes
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`,
  };
  if (o.runnerMode) {
    units['stockade-hook-broker.service'] = `[Unit]
Description=Stockade hook broker: the container hook of GitHub's official runner (runner mode)
After=stockade-podman.service
Requires=stockade-podman.service
Before=stockade-server.service

[Service]
Type=simple
ExecStart=${o.node} ${o.cli} hook-broker --group stockade-hook
Restart=on-failure
RestartSec=2
Delegate=yes

[Install]
WantedBy=multi-user.target
`;
  }
  return units;
}

const CONFIG_TEMPLATE = `# Stockade server configuration (docs/config.schema.json; check it with: stockade config check FILE).
# Fill in the App's id and credentials (stockade app create writes them), then:
#   systemctl restart stockade-server
server:
  app-id: "0"
  private-key-file: /etc/stockade/app.pem
  webhook-secret-file: /etc/stockade/webhook-secret
  port: 8080
  host: 127.0.0.1
`;

/** Is systemd the init system here (it can enable and start units)? */
export function systemdRunning(): boolean {
  return existsSync('/run/systemd/system');
}

/**
 * Writes the units (only when they changed), a config template when there is no config, and,
 * where systemd runs, lingers the runner user and enables and starts the units. Returns what it did.
 */
export async function installSystemd(h: HostConfig, o: UnitOptions, log: (m: string) => void, stopOwnService: () => Promise<void>): Promise<string[]> {
  const done: string[] = [];
  const units = systemdUnits(h, o);
  for (const [name, text] of Object.entries(units)) {
    const path = join(SYSTEMD_DIR, name);
    if (existsSync(path) && readFileSync(path, 'utf8') === text) continue;
    writeFileSync(path, text, { mode: 0o644 });
    done.push(`wrote ${path}`);
  }
  if (!existsSync(o.configFile)) {
    mkdirSync(join(o.configFile, '..'), { recursive: true, mode: 0o750 });
    writeFileSync(o.configFile, CONFIG_TEMPLATE, { mode: 0o600 });
    done.push(`wrote ${o.configFile} (a template: fill in the App's id and credentials)`);
  }
  if (!systemdRunning()) {
    log(`systemd is not running on this host (${readFileSync('/proc/1/comm', 'utf8').trim()} is PID 1): the units are written, not enabled; on a systemd host: systemctl enable --now ${Object.keys(units).join(' ')}`);
    return done;
  }
  const run = async (cmd: string, args: string[]) => {
    const r = await exec(cmd, args, { cwd: '/' });
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim().slice(-500)}`);
  };
  await run('loginctl', ['enable-linger', h.runnerUser]);
  // The service setup started by hand gives way to the unit's.
  await stopOwnService();
  await run('systemctl', ['daemon-reload']);
  await run('systemctl', ['enable', '--now', ...Object.keys(units).filter((u) => u !== 'stockade-server.service')]);
  await run('systemctl', ['enable', 'stockade-server.service']);
  done.push(`enabled ${Object.keys(units).join(', ')} (the server starts once its config is filled in: systemctl start stockade-server)`);
  return done;
}
