/**
 * The parts of the RabbitMQ relay and how they are wired to one another: one AMQP connection
 * (amqp-link.ts) under the instance queues, user pushes and the backend bridge (the presence
 * directory, a part of its own, rides on it too: broker/create-broker.ts); a STOMP pool for /queue/ subscriptions and topic publishes; local fan-out to subscribers.
 * rabbit-relay-broker.ts starts, stops and uses them.
 */
import { LocalFanOut } from '../../delivery/fan-out';
import { UserDelivery } from '../../delivery/user-delivery';
import { LocalReplies } from '../../delivery/reply-queues';
import { BackendBridge } from '../../messaging/backend-bridge';
import { noTrace } from '../../observability/trace';
import { AmqpDelivery } from './amqp-delivery';
import { AmqpLink } from './amqp-link';
import { parseBrokerUrl } from './broker-url';
import type { ConsumerSpec } from './broker-consumer';
import { ConnectionPool, type RelayLogger } from './connection-pool';
import { DeliveryLimit } from './delivery-limit';
import type { RabbitRelayBrokerOptions } from './relay-options';
import { NAME_PREFIX } from './topology';

const RECONNECT_BASE_MS = 200;
const CONNECT_TIMEOUT_MS = 10_000;
/** How long a user push waits for its confirm before the caller is told the broker did not take it. */
const PUBLISH_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_BACKLOG = 10_000;

export interface RelayParts {
  link: AmqpLink;
  pool: ConnectionPool;
  fanOut: LocalFanOut;
  amqp: AmqpDelivery;
  users: UserDelivery;
  bridge: BackendBridge | undefined;
  deliveryLimit: DeliveryLimit;
  /** Temp queues of request/reply: routing keys `r.<token>` on the users queue (delivery/reply-queues.ts). */
  replies: LocalReplies;
  /** Where a /queue/ consumer parks a message it cannot hand on (broker-consumer.ts). */
  parking: ConsumerSpec['parking'];
}

/** The fixed pool of STOMP connections: /queue/ subscriptions and topic publishes. */
function stompPool(
  options: RabbitRelayBrokerOptions,
  logger: RelayLogger,
  readinessChanged: () => void,
): ConnectionPool {
  return new ConnectionPool({
    addresses: parseBrokerUrl(options.brokerUrl),
    size: options.poolSize,
    heartbeatMs: options.heartbeatMs,
    reconnectBaseMs: RECONNECT_BASE_MS,
    reconnectMaxMs: options.reconnectMaxMs,
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
    logger,
    onReconnect: () => options.onReconnect?.(),
    onChange: readinessChanged,
  });
}

/** Builds the parts; nothing connects until they are started. */
export function relayParts(
  options: RabbitRelayBrokerOptions,
  logger: RelayLogger,
  readinessChanged: () => void,
): RelayParts {
  const trace = options.trace ?? noTrace;
  // Every message of the instance passes here: its trace fields are built only when tracing.
  const tracing = trace !== noTrace;
  const link = new AmqpLink({
    url: options.amqpUrl,
    instanceId: options.instanceId,
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
    reconnectMaxMs: options.reconnectMaxMs,
    logger,
  });
  const pool = stompPool(options, logger, readinessChanged);
  const fanOut = new LocalFanOut({
    maxBacklog: options.maxBacklog ?? DEFAULT_MAX_BACKLOG,
    onDeliveryError: (err, session) => logger.error({ err, session }, 'subscriber failed to take a message'),
    onOverflow: () => options.onOverflow?.(),
  });
  const amqp = new AmqpDelivery(link.connection, {
    instanceId: options.instanceId,
    publishTimeoutMs: PUBLISH_TIMEOUT_MS,
    logger,
    onTopicMessage: (name, message) => {
      const local = fanOut.deliver({ kind: 'topic', name }, message);
      if (tracing) trace('routed', message.id, { topic: name, local });
    },
    onUserMessage: (target, message) => {
      const local = users.receive(target, message);
      if (tracing)
        trace('routed', message.id, {
          user: target.user,
          destination: `${target.type}/${target.name}`,
          local,
        });
    },
    onReplyMessage: (token, message) => {
      const delivered = replies.receive(token, message);
      if (tracing) trace('routed', message.id, { reply: true, local: delivered ? 1 : 0 });
    },
    onReadyChange: readinessChanged,
  });
  const users = new UserDelivery(amqp, fanOut, logger);
  const replies = new LocalReplies(() => options.onReplyDropped?.(), {
    hold: (token) => amqp.holdReply(token),
    release: (token) => amqp.releaseReply(token),
    publish: (token, message) => amqp.publishReply(token, message),
  });
  // Registered after AmqpDelivery's instance queues: on a new connection they first mark their
  // bindings gone, so readiness is not reported back before the re-binding.
  link.connection.on('connection', readinessChanged);
  link.connection.on('error', readinessChanged);
  const bridge = options.backends
    ? new BackendBridge({
        connection: link.connection,
        instanceId: options.instanceId,
        services: options.backends,
        logger,
      })
    : undefined;
  return {
    link,
    pool,
    fanOut,
    amqp,
    users,
    bridge,
    deliveryLimit: new DeliveryLimit(options.deliveryLimit ?? 20),
    replies,
    parking: {
      destination: `/exchange/amq.direct/${NAME_PREFIX}.parking.${options.instanceId}`,
      queueName: `${NAME_PREFIX}.${options.instanceId}.parking`,
    },
  };
}
