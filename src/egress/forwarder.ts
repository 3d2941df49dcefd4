import { connect, createServer, type Socket } from 'node:net';
import { addressIn } from './sidecar';
import { whenListening } from './listen';

/**
 * The results forwarder: the only way a job's steps reach the runner's results service. It
 * listens on one TCP port in the job's network namespace and pipes each connection to the
 * service's Unix socket (bound into its container). It parses nothing: the service checks
 * the job's token and signed URLs.
 */
export interface ForwarderConfig {
  port: number;
  /** Path of the results service's socket inside the container. */
  socket: string;
  /** The job network's subnet, when the job has one: the forwarder reports its address there. */
  jobSubnet?: string;
  /** Connections at once. @default 64 */
  maxConnections?: number;
}

export async function startForwarder(cfg: ForwarderConfig, write: (line: string) => void): Promise<{ close(): void }> {
  const address = cfg.jobSubnet ? addressIn(cfg.jobSubnet) : '127.0.0.1';
  if (!address) throw new Error(`no interface in the job network ${cfg.jobSubnet}`);
  const open = new Set<Socket>();
  const server = createServer({ pauseOnConnect: true }, (client) => {
    open.add(client);
    const upstream = connect(cfg.socket);
    const end = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    upstream.once('connect', () => {
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
  });
  server.maxConnections = cfg.maxConnections ?? 64;
  await whenListening(server, (ready) => server.listen({ port: cfg.port, host: cfg.jobSubnet ? address : '127.0.0.1' }, ready));
  write(JSON.stringify({ ev: 'ready', address }));
  return {
    close() {
      for (const s of open) s.destroy();
      server.close();
    },
  };
}
