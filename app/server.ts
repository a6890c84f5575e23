/**
 * The composition root: builds one instance from its settings and runs it as a list of parts
 * (start.ts), started in order and stopped in reverse from one place. Nothing here knows which
 * broker it has. `drain()` is the SIGTERM path: stop accepting, tell every client to go elsewhere,
 * let accepted REST pushes finish; `stop()` drains, then releases every part.
 */
import type { Settings } from '../config/settings';
import { Admission } from './admission';
import { ClusterView } from './admin/cluster-view';
import { StatsSampler } from './admin/instance-stats';
import { settingWarnings } from './config';
import { TokenVerifier } from './auth/token-verifier';
import type { Broker } from './broker/broker';
import { createBroker, createPresence } from './broker/create-broker';
import { Authorizer } from './destinations/authorization';
import { HttpListener, type HttpListenerDeps } from './http';
import type { Inbox } from './inbox/inbox';
import { inboxService } from './inbox/service';
import { createLogger, logFormatFor, type Logger } from './observability/logger';
import { Metrics } from './observability/metrics';
import { projectPath } from './paths';
import type { PresenceDirectory } from './presence/directory';
import type { SessionRegistry } from './session/session-registry';
import { sessionWiring } from './session/session-wiring';
import { Parts, type Part } from './start';
import { TcpEndpoint } from './transport/tcp';
import type { ClientSocket } from './transport/transport';

const VERSION = '0.1.0';

export interface ServiceOptions {
  settings: Settings;
  logger?: Logger;
  /**
   * A broker other than the one the settings select (tests of broker failures); the presence
   * directory beside it is made for it (create-broker.ts createPresence).
   */
  broker?: Broker;
}

export interface RunningService {
  readonly settings: Settings;
  readonly url: string;
  readonly port: number;
  readonly tcpPort?: number;
  readonly broker: Broker;
  /** Who is connected where, on every instance (app/presence/). */
  readonly presence: PresenceDirectory;
  readonly verifier: TokenVerifier;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly registry: SessionRegistry;
  /** The durable inbox (on or off). */
  readonly inbox: Inbox;
  /** Whether new work is refused (draining), and the REST pushes in flight. */
  readonly admission: Admission;
  /** The live cluster view (/admin). */
  readonly admin: ClusterView;
  /** SIGTERM: refuse new work, send every client an ERROR saying so, wait for in-flight pushes. */
  drain(): Promise<void>;
  /** Drains, then closes listeners and the broker. */
  stop(): Promise<void>;
}

/** Broker readiness to the gauge and the log; a stop this instance asked for is not a warning. */
function brokerPart(broker: Broker, metrics: Metrics, logger: Logger): Part {
  let stopRequested = false;
  broker.onReadinessChange((r) => {
    metrics.brokerUp.set(r.ready ? 1 : 0);
    if (r.ready) logger.info('broker connection up');
    else if (stopRequested) logger.info({ reason: r.reason }, 'broker connection down');
    else logger.warn({ reason: r.reason }, 'broker connection down');
  });
  return {
    name: 'broker',
    async start() {
      await broker.start();
      metrics.brokerUp.set(broker.readiness().ready ? 1 : 0);
    },
    async drain() {
      // Draining is where a requested stop begins; the broker goes down a moment later.
      stopRequested = true;
    },
    async stop() {
      stopRequested = true;
      await broker.stop();
    },
  };
}

/** On drain, every live session gets an ERROR saying this instance is going, then its close. */
function sessionsPart(registry: SessionRegistry, instanceId: string): Part {
  return {
    name: 'sessions',
    async drain() {
      const message = `instance ${instanceId} is draining: reconnect to another instance`;
      for (const session of registry.all()) session.terminate('draining', message);
    },
  };
}

/** On drain, waits (up to SHUTDOWN_TIMEOUT_MS) for the REST pushes the broker has not yet taken. */
function pushesInFlightPart(admission: Admission, settings: Settings, logger: Logger): Part {
  return {
    name: 'pushes in flight',
    async drain() {
      await admission.settled(settings.shutdownTimeoutMs);
      logger.info({ pushesUnsettled: admission.inFlightCount }, 'drained');
    },
  };
}

class TcpListener implements Part {
  readonly name = 'stomp tcp listener';
  port: number | undefined;
  private readonly endpoint: TcpEndpoint;

  constructor(
    private readonly settings: Settings,
    onConnection: (socket: ClientSocket) => void,
  ) {
    this.endpoint = new TcpEndpoint(onConnection);
  }

  async start(): Promise<void> {
    this.port = await this.endpoint.listen(this.settings.stompTcpPort, this.settings.host);
  }

  async stop(): Promise<void> {
    await this.endpoint.close();
  }
}

/** Drained first (it is last in the list): from then on every entry point refuses new work. */
function admissionPart(admission: Admission): Part {
  return {
    name: 'admission',
    async drain() {
      admission.refuseNewWork();
    },
  };
}

function logMode(
  settings: Settings,
  broker: Broker,
  inbox: Inbox,
  verifier: TokenVerifier,
  logger: Logger,
): void {
  if (broker.kind === 'embedded') {
    logger.info(
      { broker: 'embedded' },
      'embedded broker: single instance only (set BROKER_URL to relay to RabbitMQ)',
    );
  } else {
    logger.info({ broker: broker.kind, pool: settings.brokerPoolSize }, `relaying to ${broker.kind}`);
  }
  // Off is said as loudly as a warning: durable destinations then refuse rather than go best-effort.
  if (inbox.enabled) logger.info({ inbox: 'on' }, inbox.describe());
  else logger.warn({ inbox: 'off' }, inbox.describe());
  for (const warning of settingWarnings(settings)) logger.warn(warning);
  if (verifier.generatedSecret) {
    logger.warn(
      'JWT_SECRET not set: using a random secret for this run (development only; tokens die with the process)',
    );
  }
}

/** What the listeners and the cluster view are built over. */
interface PartsInput extends Omit<HttpListenerDeps, 'admin' | 'batchInbox' | 'presence'> {
  presence: PresenceDirectory;
  registry: SessionRegistry;
}

/** The listeners and the cluster view over the core parts, and every part in start order. */
function serviceParts(input: PartsInput): {
  parts: Parts;
  http: HttpListener;
  tcp?: TcpListener;
  admin: ClusterView;
} {
  const { settings, broker, presence, inbox, metrics, logger, admission } = input;
  const admin = new ClusterView({
    settings,
    directory: presence,
    sampler: new StatsSampler({ broker, metrics, isDraining: () => admission.isDraining() }),
    onError: (err) => logger.warn({ err }, 'cluster view: sampling this instance failed'),
  });
  const http = new HttpListener({ ...input, admin });
  const tcp = settings.stompTcpPort >= 0 ? new TcpListener(settings, input.onConnection) : undefined;
  // Started top to bottom; drained and stopped bottom to top.
  const parts = new Parts(
    [
      brokerPart(broker, metrics, logger),
      // Rides on the broker's connection: started after it, and stopped (its goodbye said) before it.
      presence,
      admin,
      inbox,
      pushesInFlightPart(admission, settings, logger),
      sessionsPart(input.registry, settings.instanceId),
      http,
      ...(tcp ? [tcp] : []),
      admissionPart(admission),
    ],
    logger,
  );
  return { parts, http, tcp, admin };
}

export async function startService(options: ServiceOptions): Promise<RunningService> {
  const { settings } = options;
  const logger =
    options.logger ??
    createLogger(settings.logLevel, settings.instanceId, logFormatFor(settings.logFormat, settings.nodeEnv));
  const metrics = new Metrics();
  const verifier = new TokenVerifier(settings);
  // Read before any part starts: a bad rules file stops the start with nothing open yet.
  const authorizer = Authorizer.fromFile(
    settings.authorizationFile || projectPath('config', 'authorization.json'),
  );
  const broker = options.broker ?? createBroker(settings, logger, metrics);
  const presence = createPresence(broker, {
    instanceId: settings.instanceId,
    announceMs: settings.directoryAnnounceMs,
    logger,
  });
  const inbox = inboxService(settings, broker, logger, metrics.registry);
  logMode(settings, broker, inbox, verifier, logger);

  const admission = new Admission();
  const { ctx, onConnection } = sessionWiring({
    settings,
    broker,
    presence,
    verifier,
    authorizer,
    inbox,
    metrics,
    logger,
    serverName: `stomp-relay/${VERSION}`,
    isDraining: () => admission.isDraining(),
  });
  const { parts, http, tcp, admin } = serviceParts({
    settings,
    broker,
    presence,
    inbox,
    verifier,
    metrics,
    logger,
    admission,
    registry: ctx.registry,
    onConnection,
  });
  await parts.start();

  const { port } = http.address;
  logger.info({ port, tcpPort: tcp?.port }, `listening on ${http.url}`);
  return {
    settings,
    url: `http://127.0.0.1:${port}`,
    port,
    tcpPort: tcp?.port,
    broker,
    presence,
    verifier,
    metrics,
    logger,
    registry: ctx.registry,
    inbox,
    admission,
    admin,
    drain: () => parts.drain(),
    stop: () => parts.stop(),
  };
}
