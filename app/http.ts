/**
 * The one HTTP server of an instance: REST under /api, the ops endpoints, the page and its scripts,
 * SockJS under /ws and plain WebSocket upgrades on /stomp. As a part (start.ts) it listens on start,
 * stops accepting on drain, and closes every client connection on stop.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import express from 'express';
import { adminGate } from './admin/access';
import { projectPath } from './paths';
import { createApi, type ApiDeps } from './rest/api';
import { errorMiddleware } from './rest/errors';
import { createOpsRouter } from './rest/ops';
import type { Part } from './start';
import { SockJsEndpoint } from './transport/sockjs';
import { largestMessageBytes, type ClientSocket } from './transport/transport';
import { WebSocketEndpoint } from './transport/websocket';

export interface HttpListenerDeps extends ApiDeps {
  onConnection(socket: ClientSocket): void;
}

function createApp(deps: HttpListenerDeps, api: express.Router): express.Express {
  const { broker, inbox, metrics, logger, admission } = deps;
  const isDraining = (): boolean => admission.isDraining();
  const app = express();
  app.disable('x-powered-by');
  // res.send() would hash every JSON answer for an ETag; no caller revalidates a push or a session
  // list, and the static files get theirs from express.static anyway.
  app.set('etag', false);
  app.use('/api', api);
  app.use(createOpsRouter({ broker, inbox, metrics, isDraining }));
  app.use(
    '/vendor/stomp.umd.min.js',
    express.static(projectPath('node_modules/@stomp/stompjs/bundles/stomp.umd.min.js')),
  );
  app.use(
    '/vendor/sockjs.min.js',
    express.static(projectPath('node_modules/sockjs-client/dist/sockjs.min.js')),
  );
  // The cluster view's page (public/admin/) is absent while the view is off, like its API.
  app.use('/admin', adminGate(deps.settings));
  app.use(express.static(projectPath('public')));
  // Errors from the ops routes (a wrong method, say) answer JSON like /api's; /api has its own.
  app.use(errorMiddleware({ logger, metrics }));
  return app;
}

/** `http://0.0.0.0:8080`, `http://[::1]:8080`: where the server is bound, as a URL. */
function boundUrl(address: AddressInfo): string {
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

export class HttpListener implements Part {
  readonly name = 'http listener';
  private readonly server: Server;
  private readonly webSocket: WebSocketEndpoint;
  private readonly sockJs: SockJsEndpoint;

  constructor(private readonly deps: HttpListenerDeps) {
    const { settings, logger, metrics, onConnection } = deps;
    const api = createApi(deps);
    const app = createApp(deps, api.router);
    this.webSocket = new WebSocketEndpoint({
      allowedOrigins: settings.allowedOrigins,
      // A WebSocket message carries one or more frames; a little over one frame is plenty.
      maxPayloadBytes: settings.maxFrameBytes + settings.maxHeaderBytes,
      onConnection,
    });
    this.sockJs = new SockJsEndpoint({
      prefix: '/ws',
      allowedOrigins: settings.allowedOrigins,
      clientScriptUrl: '/vendor/sockjs.min.js',
      // Reading one takes time in proportion to its size, and every other session waits meanwhile.
      maxMessageBytes: largestMessageBytes(settings),
      logger,
      metrics,
      onConnection,
    });
    this.server = createServer((req, res) => {
      if (this.sockJs.matches(req.url)) this.sockJs.handleRequest(req, res);
      else if (!api.lean.take(req, res)) app(req, res);
    });
    // Node's 5 s default closes an idle keep-alive connection while a backend's HTTP agent may be
    // sending its next push on it: that push fails with "socket hang up" (seen in the bench, 2 of
    // 24,000). The side that idles out first should be the client, so the server waits longer than
    // clients and load balancers usually do (60 s). headersTimeout (60 s) is left alone: since Node
    // 18 it runs from a request's first byte, not from when the connection went idle.
    this.server.keepAliveTimeout = settings.httpKeepAliveTimeoutMs;
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on('error', () => socket.destroy());
      const path = (req.url ?? '').split('?')[0];
      if (path === '/stomp') this.webSocket.handleUpgrade(req, socket, head);
      else if (this.sockJs.matches(req.url)) this.sockJs.handleUpgrade(req, socket, head);
      else socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
    });
  }

  /** The bound address; only after start. */
  get address(): AddressInfo {
    const address = this.server.address();
    if (address === null || typeof address === 'string') throw new Error('the HTTP server is not listening');
    return address;
  }

  get url(): string {
    return boundUrl(this.address);
  }

  async start(): Promise<void> {
    const { port, host } = this.deps.settings;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  /** Stops accepting connections; open ones (REST pushes in flight, sessions) go on for now. */
  async drain(): Promise<void> {
    if (this.server.listening) this.server.close();
  }

  async stop(): Promise<void> {
    if (this.server.listening) this.server.close();
    this.webSocket.close();
    this.sockJs.close();
    this.server.closeAllConnections();
  }
}
