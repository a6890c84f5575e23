/**
 * Composes one instance: broker, sessions, transports, REST and the page, on one HTTP server (plus
 * the optional raw TCP port). Nothing here knows which broker it has. `drain()` is the SIGTERM path:
 * stop accepting, tell every client to go elsewhere, let accepted REST pushes finish, then stop.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import express from 'express';
import type { Settings } from '../config/settings';
import { TokenVerifier } from './auth/token-verifier';
import type { Broker } from './broker/broker';
import { createBroker } from './broker/create-broker';
import { Authorizer } from './destinations/authorization';
import { AppRouter } from './messaging/app-router';
import { createBackendBridge, type BackendBridge } from './messaging/backend-bridge';
import { registerBuiltInHandlers } from './messaging/handlers';
import { createLogger, type Logger } from './observability/logger';
import { Metrics } from './observability/metrics';
import { projectPath } from './paths';
import { createApiRouter } from './rest/api';
import { createOpsRouter } from './rest/ops';
import type { SessionContext } from './session/session-context';
import { SessionRegistry } from './session/session-registry';
import { StompSession } from './session/stomp-session';
import { SockJsEndpoint } from './transport/sockjs';
import { TcpEndpoint } from './transport/tcp';
import type { ClientSocket } from './transport/transport';
import { WebSocketEndpoint } from './transport/websocket';

const VERSION = '0.1.0';

export interface ServiceOptions {
  settings: Settings;
  logger?: Logger;
  /** A broker other than the one the settings select (tests of broker failures). */
  broker?: Broker;
}

export interface RunningService {
  readonly settings: Settings;
  readonly url: string;
  readonly port: number;
  readonly tcpPort?: number;
  readonly broker: Broker;
  readonly verifier: TokenVerifier;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly registry: SessionRegistry;
  /** SIGTERM: refuse new work, send every client an ERROR saying so, wait for in-flight pushes. */
  drain(): Promise<void>;
  /** Drains, then closes listeners and the broker. */
  stop(): Promise<void>;
}

export async function startService(options: ServiceOptions): Promise<RunningService> {
  const { settings } = options;
  const logger = options.logger ?? createLogger(settings.logLevel, settings.instanceId);
  const metrics = new Metrics();
  const verifier = new TokenVerifier(settings);
  const broker = options.broker ?? createBroker(settings, logger, metrics);
  if (broker.kind === 'embedded') {
    logger.info(
      { broker: 'embedded' },
      'embedded broker: single instance only (set BROKER_URL to relay to RabbitMQ)',
    );
  } else {
    logger.info({ broker: broker.kind, pool: settings.brokerPoolSize }, `relaying to ${broker.kind}`);
  }
  if (settings.nodeEnv !== 'production') {
    logger.warn(
      'development mode: POST /api/dev/token issues tokens to anyone (NODE_ENV=production turns it off)',
    );
  }
  if (verifier.generatedSecret) {
    logger.warn(
      'JWT_SECRET not set: using a random secret for this run (development only; tokens die with the process)',
    );
  }
  broker.onReadinessChange((r) => {
    metrics.brokerUp.set(r.ready ? 1 : 0);
    if (r.ready) logger.info('broker connection up');
    else logger.warn({ reason: r.reason }, 'broker connection down');
  });
  await broker.start();
  metrics.brokerUp.set(broker.readiness().ready ? 1 : 0);

  const authorizer = Authorizer.fromFile(
    settings.authorizationFile || projectPath('config', 'authorization.json'),
  );
  const appRouter = new AppRouter(broker);
  registerBuiltInHandlers(appRouter);
  // With RabbitMQ, /app routes no handler claims go to backend services over AMQP.
  let bridge: BackendBridge | undefined;
  try {
    bridge = createBackendBridge(settings, logger);
    await bridge?.start();
  } catch (err: unknown) {
    await broker.stop();
    throw err;
  }
  if (bridge) appRouter.fallback((message) => bridge.forward(message));
  const registry = new SessionRegistry(broker.sessions, metrics);
  let draining = false;
  const inFlight = new Set<Promise<unknown>>();
  const track = <T>(work: Promise<T>): Promise<T> => {
    inFlight.add(work);
    const done = (): void => {
      inFlight.delete(work);
    };
    work.then(done, done);
    return work;
  };

  const ctx: SessionContext = {
    settings,
    broker,
    verifier,
    authorizer,
    appRouter,
    metrics,
    logger,
    registry,
    serverName: `stomp-relay/${VERSION}`,
    isDraining: () => draining,
  };
  const onConnection = (socket: ClientSocket): void => {
    if (draining) {
      socket.close();
      return;
    }
    new StompSession(socket, ctx);
  };

  const app = express();
  app.disable('x-powered-by');
  // res.send() would hash every JSON answer for an ETag; no caller revalidates a push or a session
  // list, and the static files get theirs from express.static anyway.
  app.set('etag', false);
  app.use(
    '/api',
    createApiRouter({ settings, broker, verifier, metrics, logger, isDraining: () => draining, track }),
  );
  app.use(createOpsRouter({ broker, metrics, isDraining: () => draining }));
  app.use(
    '/vendor/stomp.umd.min.js',
    express.static(projectPath('node_modules/@stomp/stompjs/bundles/stomp.umd.min.js')),
  );
  app.use(
    '/vendor/sockjs.min.js',
    express.static(projectPath('node_modules/sockjs-client/dist/sockjs.min.js')),
  );
  app.use(express.static(projectPath('public')));

  const webSocket = new WebSocketEndpoint({
    allowedOrigins: settings.allowedOrigins,
    // A WebSocket message carries one or more frames; a little over one frame is plenty.
    maxPayloadBytes: settings.maxFrameBytes + settings.maxHeaderBytes,
    onConnection,
  });
  const sockJs = new SockJsEndpoint({
    prefix: '/ws',
    allowedOrigins: settings.allowedOrigins,
    clientScriptUrl: '/vendor/sockjs.min.js',
    // One SockJS message is a JSON array of frames (escaping can double a character, a client may
    // batch a few frames): room for several full frames, but not for an attacker's 64 MiB.
    maxMessageBytes: 16 * (settings.maxFrameBytes + settings.maxHeaderBytes),
    logger,
    onConnection,
  });

  const server: Server = createServer((req, res) => {
    if (sockJs.matches(req.url)) sockJs.handleRequest(req, res);
    else app(req, res);
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const path = (req.url ?? '').split('?')[0];
    if (path === '/stomp') webSocket.handleUpgrade(req, socket, head);
    else if (sockJs.matches(req.url)) sockJs.handleUpgrade(req, socket, head);
    else socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
  });
  let tcp: TcpEndpoint | undefined;
  let tcpPort: number | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(settings.port, settings.host, () => resolve());
    });
    if (settings.stompTcpPort >= 0) {
      tcp = new TcpEndpoint(onConnection);
      tcpPort = await tcp.listen(settings.stompTcpPort, settings.host);
    }
  } catch (err: unknown) {
    // A port in use: release what is already open (broker connections, the bridge) before failing.
    server.close();
    await bridge?.stop();
    await broker.stop();
    throw err;
  }
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : settings.port;
  logger.info({ port, tcpPort, instance: settings.instanceId }, `listening on http://localhost:${port}`);

  let drained: Promise<void> | undefined;
  const drain = (): Promise<void> => {
    drained ??= (async () => {
      draining = true;
      server.close();
      const message = `instance ${settings.instanceId} is draining: reconnect to another instance`;
      for (const session of registry.all()) session.terminate('draining', message);
      const deadline = new Promise((r) => setTimeout(r, settings.shutdownTimeoutMs).unref());
      await Promise.race([Promise.allSettled([...inFlight]), deadline]);
      logger.info({ sessions: registry.size }, 'drained');
    })();
    return drained;
  };

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      await drain();
      webSocket.close();
      sockJs.close();
      await tcp?.close();
      server.closeAllConnections();
      await bridge?.stop();
      await broker.stop();
    })();
    return stopped;
  };

  return {
    settings,
    url: `http://127.0.0.1:${port}`,
    port,
    tcpPort,
    broker,
    verifier,
    metrics,
    logger,
    registry,
    drain,
    stop,
  };
}
