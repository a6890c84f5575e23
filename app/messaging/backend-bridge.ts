/**
 * The backend bridge: a client SEND to `/app/<service>/<path>` that no in-process handler claims is
 * published over AMQP to the topic exchange `stomp-relay.app`, so that a backend in any language
 * consumes it with a plain AMQP client (contract: README, "For backend developers").
 *
 * Routing key: the route's segments, each escaped, joined by `.`: `/app/orders/create` →
 * `orders.create`. destination.ts already limits segments to `[A-Za-z0-9_-.:@]`; a `.` inside a
 * segment is escaped to `%2E` (and anything else outside `[A-Za-z0-9_-:@]`, as UTF-8 `%XX`), so a
 * client can neither add words (`/app/orders.admin/x` is `orders%2Eadmin.x`, not `orders.admin.x`)
 * nor write a wildcard. `%` never appears raw in a segment, so the escaping cannot be forged.
 *
 * Delivery: the publish is `mandatory` with publisher confirms. RabbitMQ sends basic.return before
 * basic.ack on the same channel, so once the confirm is in (and the return event had its turn) we
 * know whether any queue took the message: unroutable → `no_route` ("no backend service 'orders' is
 * listening"), correlated by message id; nacked,
 * timed out or connection down → `broker_unavailable`. The sender gets an ERROR, never silence.
 *
 * Identity: the backend learns who sent the message from `x-relay-*` headers set here. Client
 * headers pass through, but never under those names (a client could otherwise claim to be anyone)
 * nor as `CC`/`BCC`, which RabbitMQ reads as extra routing keys.
 */
import type { Connection, Publisher, ReturnedMessage } from 'rabbitmq-client';
import type { BackendMessage } from '../broker/broker';
import { EXCHANGES, EXCHANGE_DECLARATIONS, percentEncode, userRoutingKey } from '../broker/rabbitmq/topology';
import { ServiceError } from '../errors';
import { withTimeout } from '../timeout';
import { REPLY_QUEUE_PREFIX, replyRoutingKey, TOKEN } from '../delivery/reply-queues';
import type { BackendServices } from './backend-services';
import { allowedHeaders } from './header-policy';

/** AMQP headers the bridge puts on every message for a backend. */
export const BACKEND_HEADERS = {
  /** The sender's user name (the JWT `sub`). */
  user: 'x-relay-user',
  /** Routing key on `stomp-relay.user` that reaches every session of the sender. */
  userKey: 'x-relay-user-key',
  session: 'x-relay-session',
  instance: 'x-relay-instance',
  messageId: 'x-relay-message-id',
  /** The destination as the client wrote it: `/app/orders/create`. */
  destination: 'x-relay-destination',
  /**
   * When the sender asked for replies on a temp queue (`reply-to: /temp-queue/<name>`): the routing
   * key on `stomp-relay.user` that reaches that session's temp queue alone (delivery/reply-queues.ts).
   */
  replyKey: 'x-relay-reply-key',
  /** First route segment, unescaped: `orders`. */
  service: 'x-relay-service',
  /** The rest of the route, unescaped: `create` (empty for `/app/orders`). */
  path: 'x-relay-path',
} as const;

export interface BridgeLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface BackendBridgeOptions {
  /** The instance's AMQP connection (the relay's; amqp-link.ts), kept open by its owner. */
  connection: Connection;
  instanceId: string;
  services: BackendServices;
  logger: BridgeLogger;
  /** Longest wait for RabbitMQ's confirm of one publish. Default 10 s. */
  publishTimeoutMs?: number;
}

/** AMQP short strings (routing keys) hold at most 255 bytes. */
const MAX_ROUTING_KEY_BYTES = 255;
const KEEP = /^[A-Za-z0-9_\-:@]$/;
const STOP_TIMEOUT_MS = 3_000;

const escapeWord = (segment: string): string => percentEncode(segment, KEEP);

/** `orders/create` → `orders.create`; `orders/v1.2` → `orders.v1%2E2`. */
export function backendRoutingKey(route: string): string {
  const key = route.split('/').map(escapeWord).join('.');
  if (Buffer.byteLength(key, 'utf8') > MAX_ROUTING_KEY_BYTES) {
    throw new ServiceError(
      'bad_destination',
      `app route '${route.slice(0, 60)}...' is too long for a backend routing key`,
    );
  }
  return key;
}

/**
 * Client headers a backend sees: those the header policy relays (never ours, never RabbitMQ's own
 * such as CC/BCC), content-type apart, since it travels as the AMQP property.
 */
function clientHeaders(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [name, value] of allowedHeaders(Object.entries(headers), 'relay')) {
    if (name.toLowerCase() !== 'content-type') out[name] = value;
  }
  return out;
}

/** `x-relay-reply-key` for a reply-to that is one of our temp queues. */
function replyKeyHeader(replyTo: string | undefined): Record<string, string> {
  if (replyTo === undefined || !replyTo.startsWith(REPLY_QUEUE_PREFIX)) return {};
  const token = replyTo.slice(REPLY_QUEUE_PREFIX.length);
  return TOKEN.test(token) ? { [BACKEND_HEADERS.replyKey]: replyRoutingKey(token) } : {};
}

export class BackendBridge {
  private readonly connection: Connection;
  private readonly publisher: Publisher;
  private readonly publishTimeoutMs: number;
  /** Message ids of publishes awaiting their confirm → whether RabbitMQ returned them. */
  private readonly pending = new Map<string, { returned: boolean }>();

  constructor(private readonly options: BackendBridgeOptions) {
    this.publishTimeoutMs = options.publishTimeoutMs ?? 10_000;
    this.connection = options.connection;
    this.publisher = this.connection.createPublisher({
      confirm: true,
      exchanges: [EXCHANGE_DECLARATIONS.app],
    });
    this.publisher.on('basic.return', (msg) => this.returned(msg));
  }

  /** Says where /app routes without a handler go; the connection is its owner's to open. */
  start(): void {
    this.options.logger.info(
      { exchange: EXCHANGES.app },
      'backend bridge: /app routes without a handler go to backends over AMQP',
    );
  }

  /** Closes the bridge's channel; the connection stays its owner's. */
  async stop(): Promise<void> {
    try {
      await withTimeout(this.publisher.close(), STOP_TIMEOUT_MS, 'backend bridge close');
    } catch (err: unknown) {
      this.options.logger.warn({ err }, 'backend bridge: its channel did not close; the connection will');
    }
  }

  /** An AppRouter fallback: resolves once a backend's queue holds the message. */
  async forward(message: BackendMessage): Promise<void> {
    const [service, ...path] = message.route.split('/');
    if (!this.options.services.canReach(message.user, service)) {
      throw new ServiceError('forbidden', `not allowed to reach backend service '${service}'`);
    }
    const routingKey = backendRoutingKey(message.route);
    // rabbitmq-client would hold the publish until it reconnects; the client is better told now.
    if (!this.connection.ready)
      throw new ServiceError('broker_unavailable', 'backend bridge: RabbitMQ AMQP connection is down');
    const contentType = message.headers['content-type'];
    const state = { returned: false };
    this.pending.set(message.messageId, state);
    try {
      await withTimeout(
        this.publisher.send(
          {
            exchange: EXCHANGES.app,
            routingKey,
            mandatory: true,
            durable: true,
            messageId: message.messageId,
            timestamp: Math.floor(Date.now() / 1000),
            appId: 'stomp-relay',
            ...(contentType ? { contentType } : {}),
            // The AMQP reply_to is what a STOMP client would reply to; x-relay-reply-key the key.
            ...(message.replyTo ? { replyTo: message.replyTo } : {}),
            headers: {
              ...clientHeaders(message.headers),
              [BACKEND_HEADERS.user]: message.user,
              [BACKEND_HEADERS.userKey]: userRoutingKey(message.user),
              [BACKEND_HEADERS.session]: message.sessionId,
              [BACKEND_HEADERS.instance]: this.options.instanceId,
              [BACKEND_HEADERS.messageId]: message.messageId,
              [BACKEND_HEADERS.destination]: `/app/${message.route}`,
              [BACKEND_HEADERS.service]: service,
              [BACKEND_HEADERS.path]: path.join('/'),
              ...replyKeyHeader(message.replyTo),
            },
          },
          message.body,
        ),
        this.publishTimeoutMs,
        'backend publish confirm',
      );
      // rabbitmq-client emits basic.return from a setImmediate queued while reading the frames that
      // came before the ack, but resolves the confirm at once; one turn later the return is known.
      await new Promise((resolve) => setImmediate(resolve));
    } catch (err: unknown) {
      const why = err instanceof Error ? err.message : String(err);
      throw new ServiceError(
        'broker_unavailable',
        `the broker did not take the message for '${service}': ${why}`,
        { cause: err },
      );
    } finally {
      this.pending.delete(message.messageId);
    }
    if (state.returned) {
      throw new ServiceError(
        'no_route',
        `no backend service '${service}' is listening (routing key '${routingKey}')`,
      );
    }
  }

  private returned(msg: ReturnedMessage): void {
    const state = msg.messageId === undefined ? undefined : this.pending.get(msg.messageId);
    if (state) state.returned = true;
    else
      this.options.logger.warn(
        { routingKey: msg.routingKey },
        'backend bridge: a returned message matched no pending publish',
      );
  }
}
