import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmodSync, chownSync, rmSync } from 'node:fs';
import type { Logger } from '../common';
import { artifactTwirp } from './artifact-service';
import { forwardToGitHub, GATEWAY_PREFIX, type GatewayTarget } from './api-gateway';
import { azureError, BlobSigner, serveBlob, type SignedBlob } from './blob-endpoint';
import { cacheTwirp, cacheV1 } from './cache-service';
import type { ResultsStore } from './results-store';
import type { ResultsJob } from './runtime-token';
import { sendJson, sendTwirpError, TwirpError } from './twirp';

/** What the job did with the service: counted for its log and results. */
export interface ResultsEvent {
  kind: 'cache-hit' | 'cache-partial' | 'cache-miss' | 'cache-reserve' | 'cache-save' | 'artifact-create' | 'artifact-upload' | 'artifact-download' | 'refused';
  key: string;
  bytes?: number;
}

export interface ResultsContext {
  store: ResultsStore;
  job: ResultsJob;
  canSaveCaches: boolean;
  logger: Logger;
  events: { push(e: ResultsEvent): void };
  signedUrl(s: SignedBlob): string;
}

export interface ResultsServerOptions {
  store: ResultsStore;
  job: ResultsJob;
  /** The job's ACTIONS_RUNTIME_TOKEN: the only bearer token accepted. */
  token: string;
  /** The service's address as the job's steps reach it, ending in `/`. */
  publicUrl: string;
  /** A fork's pull request may restore caches; whether it may save them (to its own ref only). @default true */
  canSaveCaches?: boolean;
  logger: Logger;
  /** The GitHub API the job's GITHUB_TOKEN works against, forwarded under /_github (none: not offered). */
  github?: GatewayTarget;
}

const CACHE = '/twirp/github.actions.results.api.v1.CacheService/';
const ARTIFACT = '/twirp/github.actions.results.api.v1.ArtifactService/';
const CACHE_V1 = '/_apis/artifactcache/';
const MAX_EVENTS = 10_000;

/**
 * One job's results service: caches (v2 twirp and v1 REST), artifacts (v4 twirp) and the signed
 * blob URLs they hand out, over HTTP on a Unix socket only the job's forwarder reaches.
 */
export class ResultsServer {
  private readonly server: Server;
  private readonly signer = new BlobSigner(randomBytes(32));
  private readonly eventList: ResultsEvent[] = [];
  readonly ctx: ResultsContext;
  private socketPath?: string;

  constructor(private readonly o: ResultsServerOptions) {
    const events = this.eventList;
    this.ctx = {
      store: o.store,
      job: o.job,
      canSaveCaches: o.canSaveCaches ?? true,
      logger: o.logger,
      events: { push: (e) => void (events.length < MAX_EVENTS && events.push(e)) },
      signedUrl: (s) => this.signer.url(o.publicUrl, s),
    };
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        o.logger.error({ err: e, url: req.url }, 'results service request failed');
        if (!res.headersSent) sendJson(res, 500, { code: 'internal', msg: 'internal error' });
        else res.destroy();
      });
    });
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 0; // uploads of large blocks take their time; idle sockets still time out
    this.server.keepAliveTimeout = 5_000;
    this.server.maxHeadersCount = 100;
    this.server.maxConnections = 128;
    this.server.setTimeout(120_000, (s) => s.destroy());
    this.server.on('clientError', (_e, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
      else socket.destroy();
    });
  }

  /** What the job did, in order (the first 10,000 events). */
  get events(): readonly ResultsEvent[] {
    return this.eventList;
  }

  /** Listens on `path`, owned by `owner` (the uid the forwarder runs as) and mode 0600. */
  async listen(path: string, owner?: { uid: number; gid: number }): Promise<void> {
    rmSync(path, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(path, () => resolve());
    });
    this.socketPath = path;
    chmodSync(path, 0o600);
    if (owner) chownSync(path, owner.uid, owner.gid);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
    if (this.socketPath) rmSync(this.socketPath, { force: true });
  }

  private authorized(req: IncomingMessage): boolean {
    const m = /^Bearer (.+)$/.exec(String(req.headers.authorization ?? ''));
    if (!m) return false;
    const got = Buffer.from(m[1]!);
    const want = Buffer.from(this.o.token);
    return got.length === want.length && timingSafeEqual(got, want);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://results.invalid');
    if (this.o.github && (url.pathname === GATEWAY_PREFIX || url.pathname.startsWith(`${GATEWAY_PREFIX}/`))) {
      return forwardToGitHub(this.o.github, req, res, url.pathname + url.search, (why) => this.ctx.events.push({ kind: 'refused', key: why }));
    }
    if (url.pathname.startsWith('/blob/')) {
      const grant = this.signer.verify(url);
      if (!grant) {
        this.ctx.events.push({ kind: 'refused', key: 'blob URL with a wrong or expired signature' });
        return azureError(res, 403, 'AuthenticationFailed', 'the signature of this URL is not valid');
      }
      return serveBlob(req, res, url, grant, this.o.store.blobPath(grant.blob));
    }
    if (!this.authorized(req)) {
      this.ctx.events.push({ kind: 'refused', key: `${req.method} ${url.pathname} without the job's token` });
      req.resume();
      return sendTwirpError(res, new TwirpError('unauthenticated', 'a valid ACTIONS_RUNTIME_TOKEN is required'));
    }
    try {
      if (url.pathname.startsWith(CACHE_V1)) return await cacheV1(this.ctx, url.pathname.slice(CACHE_V1.length), url, req, res);
      if (req.method !== 'POST') throw new TwirpError('bad_route', `${req.method} is not a twirp method`);
      const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim();
      if (type !== 'application/json') throw new TwirpError('bad_route', 'only twirp JSON (application/json) is served');
      if (url.pathname.startsWith(CACHE)) return await cacheTwirp(this.ctx, url.pathname.slice(CACHE.length), req, res);
      if (url.pathname.startsWith(ARTIFACT)) return await artifactTwirp(this.ctx, url.pathname.slice(ARTIFACT.length), req, res);
      throw new TwirpError('bad_route', `no service at ${url.pathname}`);
    } catch (e) {
      if (!(e instanceof TwirpError)) throw e;
      req.resume();
      sendTwirpError(res, e);
    }
  }
}
