import Docker from 'dockerode';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { StockadeError } from '../common';
import type { ContainerEngine, ManagedObject } from './engine';
import type { CreateOptions } from './to-create-options';

const LIBPOD = '/v4.0.0/libpod';

/** ContainerEngine over Podman's API socket through dockerode (Docker-compatible API, plus libpod endpoints where compat is slow or lacks a call). */
export class PodmanEngine implements ContainerEngine {
  private readonly docker: Docker;
  /** Where conmon writes each container's exit code (rootless: `$XDG_RUNTIME_DIR/libpod/tmp/exits`); undefined when the socket is not in a runtime directory. */
  private readonly exitDir: string | undefined;

  constructor(readonly socketPath: string) {
    this.docker = new Docker({ socketPath });
    this.exitDir = exitDirFor(socketPath);
  }

  private dial<T>(path: string, method: string, statusCodes: Record<number, boolean | string>, options?: Record<string, unknown>): Promise<T> {
    return new Promise((resolve, reject) => {
      this.docker.modem.dial({ path: options ? `${path}?` : path, method, options, statusCodes }, (err, data) => (err ? reject(engineError(path, err)) : resolve(data as T)));
    });
  }

  async ping(): Promise<void> {
    await this.docker.ping().catch((e: unknown) => {
      throw new StockadeError('HOST_NOT_READY', `Podman API socket ${this.socketPath} does not answer: ${(e as Error).message}`, {
        hint: 'run `stockade setup` (as root) to start the rootless Podman service',
        cause: e,
      });
    });
  }

  async imageExists(ref: string): Promise<boolean> {
    try {
      await this.docker.getImage(ref).inspect();
      return true;
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return false;
      throw engineError('image inspect', e);
    }
  }

  async imageSize(ref: string): Promise<number> {
    try {
      return (await this.docker.getImage(ref).inspect()).Size;
    } catch (e) {
      throw engineError('image inspect', e);
    }
  }

  async imageCommand(ref: string): Promise<{ argv: string[]; workdir: string; entrypoint: string[]; cmd: string[]; sizeBytes: number }> {
    try {
      const info = await this.docker.getImage(ref).inspect();
      const c = info.Config ?? ({} as Docker.ImageInspectInfo['Config']);
      const raw = (c.Entrypoint as string[] | string | null | undefined) ?? [];
      const entrypoint = Array.isArray(raw) ? raw : [raw];
      const cmd = c.Cmd ?? [];
      return { argv: [...entrypoint, ...cmd], workdir: c.WorkingDir || '/', entrypoint, cmd, sizeBytes: info.Size ?? 0 };
    } catch (e) {
      throw engineError('image inspect', e);
    }
  }

  async createContainer(options: CreateOptions): Promise<string> {
    try {
      const c = await this.docker.createContainer(options as unknown as Docker.ContainerCreateOptions);
      return c.id;
    } catch (e) {
      throw engineError('container create', e);
    }
  }

  async initContainer(id: string): Promise<number> {
    await this.dial(`${LIBPOD}/containers/${id}/init`, 'POST', { 204: true, 304: true });
    const info = await transient(() => this.docker.getContainer(id).inspect());
    if (!info.State.Pid) throw new StockadeError('ENGINE_FAILED', `container ${id.slice(0, 12)} has no process after init`);
    return info.State.Pid;
  }

  async attach(id: string): Promise<Readable> {
    return (await transient(() => this.docker.getContainer(id).attach({ stream: true, stdout: true, stderr: true }))) as unknown as Readable;
  }

  async start(id: string): Promise<void> {
    await this.docker.getContainer(id).start().catch((e: unknown) => {
      // The process was started and has already exited: its exit code is read after the stream ends.
      if (isProcessRace(e)) return;
      throw engineError('container start', e);
    });
  }

  async wait(id: string): Promise<number> {
    // Called once the attach stream has ended. Conmon has written the exit code to its exit
    // file by then (it is what inspect reports): read directly it costs 0.1 ms against 8-22 ms
    // for inspect (issue 17). Inspect reads the same file; libpod's wait answers only after its
    // exit processing (160 ms and more per step, measured on Podman 4.3), so it is only the
    // fallback for a stream that closed while the process still runs.
    const fromFile = await this.exitFile(id);
    if (fromFile !== undefined) return fromFile;
    const state = (await transient(() => this.docker.getContainer(id).inspect())).State;
    if (state.Status === 'stopped' || state.Status === 'exited') return state.ExitCode;
    const body = await this.dial<unknown>(`${LIBPOD}/containers/${id}/wait`, 'POST', { 200: true }, { condition: 'exited', interval: '10ms' });
    const code = Number(Buffer.isBuffer(body) ? body.toString() : body);
    if (!Number.isInteger(code)) throw new StockadeError('ENGINE_FAILED', `unexpected wait answer for ${id.slice(0, 12)}: ${String(body)}`);
    return code;
  }

  /** The code in conmon's exit file for container `id`, or undefined (no file yet, not a plain file, not a number). */
  private async exitFile(id: string): Promise<number | undefined> {
    if (!this.exitDir || !/^[0-9a-f]{64}$/.test(id)) return undefined;
    let text: string;
    try {
      const f = await open(join(this.exitDir, id), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      try {
        if (!(await f.stat()).isFile()) return undefined;
        const buf = Buffer.alloc(16);
        const { bytesRead } = await f.read(buf, 0, buf.length, 0);
        text = buf.subarray(0, bytesRead).toString();
      } finally {
        await f.close();
      }
    } catch {
      return undefined;
    }
    const m = /^(\d{1,3})\n?$/.exec(text);
    return m ? Number(m[1]) : undefined;
  }

  async kill(id: string, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    await this.docker
      .getContainer(id)
      .kill({ signal })
      .catch((e: { statusCode?: number }) => {
        // 409: not running any more; 404: already gone. Both mean the goal is met.
        if (e.statusCode !== 409 && e.statusCode !== 404) throw engineError('container kill', e);
      });
  }

  async removeContainer(id: string): Promise<void> {
    await this.docker
      .getContainer(id)
      .remove({ force: true, v: true })
      .catch((e: { statusCode?: number }) => {
        if (e.statusCode !== 404) throw engineError('container remove', e);
      });
  }

  async createVolume(name: string, labels: Record<string, string>): Promise<{ mountpoint: string }> {
    try {
      await this.docker.createVolume({ Name: name, Labels: labels });
      const v = (await this.docker.getVolume(name).inspect()) as { Mountpoint: string };
      return { mountpoint: v.Mountpoint };
    } catch (e) {
      throw engineError('volume create', e);
    }
  }

  async inspectVolume(name: string): Promise<{ mountpoint: string } | undefined> {
    try {
      const v = (await this.docker.getVolume(name).inspect()) as { Mountpoint: string };
      return { mountpoint: v.Mountpoint };
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return undefined;
      throw engineError('volume inspect', e);
    }
  }

  async removeVolume(name: string): Promise<void> {
    await this.docker
      .getVolume(name)
      .remove({ force: true })
      .catch((e: { statusCode?: number }) => {
        if (e.statusCode !== 404) throw engineError('volume remove', e);
      });
  }

  async createNetwork(name: string, labels: Record<string, string>, options = { internal: true }): Promise<void> {
    // libpod's endpoint: the compat one cannot turn aardvark-dns off.
    await this.dial(`${LIBPOD}/networks/create`, 'POST', { 200: true }, { name, internal: options.internal, dns_enabled: false, labels });
  }

  async networkSubnet(name: string): Promise<string | undefined> {
    try {
      const n = (await this.docker.getNetwork(name).inspect()) as { IPAM?: { Config?: Array<{ Subnet?: string }> } };
      return n.IPAM?.Config?.map((c) => c.Subnet).find((s) => s && !s.includes(':'));
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return undefined;
      throw engineError('network inspect', e);
    }
  }

  async containerAddress(id: string, network: string): Promise<string> {
    const info = await transient(() => this.docker.getContainer(id).inspect());
    const ip = info.NetworkSettings.Networks[network]?.IPAddress;
    if (!ip) throw new StockadeError('ENGINE_FAILED', `container ${id.slice(0, 12)} has no address on ${network}`);
    return ip;
  }

  async removeNetwork(name: string): Promise<void> {
    await this.docker
      .getNetwork(name)
      .remove()
      .catch((e: { statusCode?: number }) => {
        if (e.statusCode !== 404) throw engineError('network remove', e);
      });
  }

  async listNetworks(label: string): Promise<ManagedObject[]> {
    const list = await transient(() => this.docker.listNetworks({ filters: { label: [label] } }));
    return list.map((n) => ({ id: n.Name, labels: n.Labels ?? {} }));
  }

  async listContainers(label: string): Promise<ManagedObject[]> {
    const list = await transient(() => this.docker.listContainers({ all: true, filters: { label: [label] } }));
    return list.map((c) => ({ id: c.Id, labels: c.Labels ?? {}, running: c.State === 'running' }));
  }

  async listVolumes(label: string): Promise<ManagedObject[]> {
    const res = await transient(() => this.docker.listVolumes({ filters: { label: [label] } }));
    return (res.Volumes ?? []).map((v) => ({ id: v.Name, labels: (v.Labels as Record<string, string> | null) ?? {} }));
  }
}

/**
 * Podman 4.3 answers 500 "read /proc/N/cgroup: no such process" when a container's
 * process exits while a call reads its cgroup (containers/podman#16383, fixed after
 * 4.3 by treating ESRCH as ENOENT). Such a read is retried; other errors are not.
 */
export async function transient<T>(call: () => Promise<T>, attempts = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await call();
    } catch (e) {
      if (i >= attempts || !isProcessRace(e)) throw e;
      await new Promise((r) => setTimeout(r, 20 * i));
    }
  }
}

export function isProcessRace(e: unknown): boolean {
  const err = e as { statusCode?: number; json?: { message?: string }; message?: string };
  const text = err.json?.message ?? err.message ?? '';
  return err.statusCode === 500 && /\/proc\/\d+\/\w+: no such (process|file or directory)/.test(text);
}

function engineError(what: string, e: unknown): StockadeError {
  const msg = (e as { json?: { message?: string }; message?: string }).json?.message ?? (e as Error).message ?? String(e);
  return new StockadeError('ENGINE_FAILED', `${what} failed: ${msg}`, { cause: e });
}

/** Rootless Podman's socket is `$XDG_RUNTIME_DIR/podman.sock` (or `…/podman/podman.sock`); its exit files are in `$XDG_RUNTIME_DIR/libpod/tmp/exits`. */
export function exitDirFor(socketPath: string): string | undefined {
  if (basename(socketPath) !== 'podman.sock') return undefined;
  let dir = dirname(socketPath);
  if (basename(dir) === 'podman') dir = dirname(dir);
  return /^\/run\/user\/\d+$/.test(dir) ? join(dir, 'libpod/tmp/exits') : undefined;
}
