/**
 * StompSessions over in-memory sockets, wired by the same sessionWiring as server.ts (a real
 * embedded broker, token verifier, authorizer, app router, registry and metrics) but with no listener: unit tests
 * of the command table drive a session with the raw client and read exactly what it answers.
 */
import type { Settings } from '../../config/settings';
import { TokenVerifier } from '../../app/auth/token-verifier';
import { createPresence } from '../../app/broker/create-broker';
import { EmbeddedBroker } from '../../app/broker/embedded';
import { Authorizer, type AuthorizationRules } from '../../app/destinations/authorization';
import { inboxService } from '../../app/inbox/service';
import { Metrics } from '../../app/observability/metrics';
import { silentLogger } from '../../app/observability/logger';
import type { PresenceDirectory } from '../../app/presence/directory';
import type { SessionContext } from '../../app/session/session-context';
import { sessionWiring } from '../../app/session/session-wiring';
import { StompSession } from '../../app/session/stomp-session';
import type { ClientSocket, ConnectionInfo } from '../../app/transport/transport';
import { RawStompClient } from './raw-stomp';
import { testSettings } from './service';

/**
 * Anyone may use topics and queues and their own /user space, and send to /app; only alice may
 * subscribe to /topic/private.*, and nobody may send to /topic/readonly.*.
 */
export const OPEN_RULES: AuthorizationRules = {
  subscribe: [
    { destination: '/topic/private.**', users: ['alice'] },
    { destination: '/topic/private.**', users: '*', allow: false },
    { destination: '/topic/**', users: '*' },
    { destination: '/queue/**', users: '*' },
    { destination: '/user/**', users: '*' },
  ],
  send: [
    { destination: '/topic/readonly.**', users: '*', allow: false },
    { destination: '/topic/**', users: '*' },
    { destination: '/queue/**', users: '*' },
    { destination: '/app/**', users: '*' },
  ],
};

/**
 * Raw STOMP with no network between: `socket` is the server side, to hand to a StompSession in a
 * unit test; what the client writes reaches the session's data listener, what the session sends
 * reaches the client's parser, and a close on either side closes both.
 */
export function openInMemory(info: Partial<ConnectionInfo> = {}): {
  client: RawStompClient;
  socket: ClientSocket;
} {
  const client = new RawStompClient();
  const dataListeners: ((chunk: Buffer) => void)[] = [];
  const closeListeners: (() => void)[] = [];
  let open = true;
  const closeBoth = (): void => {
    if (!open) return;
    open = false;
    client.markClosed();
    for (const listener of closeListeners) listener();
  };
  const socket: ClientSocket = {
    info: { transport: 'tcp', protocol: 'tcp', remoteAddress: '127.0.0.1', ...info },
    send: (data) => {
      if (open) client.received(Buffer.from(data));
    },
    bufferedAmount: () => 0,
    close: closeBoth,
    onData: (listener) => dataListeners.push(listener),
    pause: () => undefined,
    resume: () => undefined,
    onClose: (listener) => closeListeners.push(listener),
  };
  client.attach({
    write: (bytes) => {
      if (open) for (const listener of dataListeners) listener(bytes);
    },
    end: closeBoth,
    pause: () => undefined,
    resume: () => undefined,
    outgoing: () => 0,
  });
  return { client, socket };
}

export interface SessionBench {
  readonly ctx: SessionContext;
  readonly broker: EmbeddedBroker;
  /** The presence directory beside it, as server.ts makes one. */
  readonly presence: PresenceDirectory;
  /** What `isDraining()` answers. */
  draining: boolean;
  token(user: string): string;
  /** A new session on an in-memory socket; the client has sent nothing yet. */
  open(): { client: RawStompClient; session: StompSession };
  /** A new session, CONNECTed as `user` (STOMP 1.2 unless `accept-version` says otherwise). */
  connect(user: string, headers?: Record<string, string>): Promise<RawStompClient>;
  /** Closes every client opened, then the broker. */
  stop(): Promise<void>;
}

export async function sessionBench(
  overrides: Partial<Settings> = {},
  rules: AuthorizationRules = OPEN_RULES,
): Promise<SessionBench> {
  const settings = testSettings(overrides);
  const metrics = new Metrics();
  const broker = new EmbeddedBroker({ instanceId: settings.instanceId });
  await broker.start();
  const presence = createPresence(broker, {
    instanceId: settings.instanceId,
    announceMs: settings.directoryAnnounceMs,
    logger: silentLogger,
  });
  const verifier = new TokenVerifier(settings);
  const clients: RawStompClient[] = [];
  const bench: SessionBench = {
    broker,
    presence,
    draining: false,
    ctx: sessionWiring({
      settings,
      broker,
      presence,
      verifier,
      authorizer: new Authorizer(rules),
      // The in-memory store: nothing to start, nothing left behind.
      inbox: inboxService(settings, broker, silentLogger, metrics.registry),
      metrics,
      logger: silentLogger,
      serverName: 'stomp-relay/test',
      isDraining: () => bench.draining,
    }).ctx,
    token: (user) =>
      verifier.issue(user, '', 600, { issuer: settings.jwtIssuer, audience: settings.jwtAudience }),
    open() {
      const { client, socket } = openInMemory();
      clients.push(client);
      return { client, session: new StompSession(socket, bench.ctx) };
    },
    async connect(user, headers = {}) {
      const { client } = bench.open();
      await client.connect(bench.token(user), { 'accept-version': '1.2', ...headers });
      return client;
    },
    async stop() {
      for (const client of clients.splice(0)) client.close();
      await broker.stop();
    },
  };
  return bench;
}
