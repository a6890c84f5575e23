/**
 * Picks the broker from the settings (RabbitMQ relay when BROKER_URL is set, embedded otherwise),
 * and the presence directory beside it: the one place that knows which broker it has.
 */
import type { Settings } from '../../config/settings';
import { effectiveAmqpUrl } from '../config';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import { messageTracer } from '../observability/trace';
import { BackendServices } from '../messaging/backend-services';
import { projectPath } from '../paths';
import { AmqpSessionDirectory } from '../presence/amqp-directory';
import type { PresenceDirectory } from '../presence/directory';
import { LocalSessionDirectory } from '../presence/local-directory';
import type { Broker } from './broker';
import { EmbeddedBroker } from './embedded';
import { RabbitRelayBroker } from './rabbitmq/rabbit-relay-broker';

export function createBroker(settings: Settings, logger: Logger, metrics: Metrics): Broker {
  if (!settings.brokerUrl) {
    return new EmbeddedBroker({
      instanceId: settings.instanceId,
      // The relay logs a subscriber that fails to take a message; so does the embedded broker.
      onDeliveryError: (err, session) =>
        logger.error({ err, session }, 'subscriber failed to take a message'),
      deliveryLimit: settings.queueDeliveryLimit,
      onReplyDropped: () => metrics.repliesDropped.inc(),
    });
  }
  // A static import: a dynamic import() is left to Node's ESM loader by tsx's CommonJS hook (tests
  // under mocha -r tsx/cjs), which cannot resolve an extensionless .ts path. Loading the relay code
  // costs nothing until a RabbitRelayBroker is made; the embedded broker never opens a connection.
  return new RabbitRelayBroker({
    brokerUrl: settings.brokerUrl,
    amqpUrl: effectiveAmqpUrl(settings),
    instanceId: settings.instanceId,
    poolSize: settings.brokerPoolSize,
    heartbeatMs: settings.brokerHeartbeatMs,
    prefetch: settings.brokerPrefetch,
    clientQueueType: settings.clientQueueType === 'quorum' ? 'quorum' : 'classic',
    deliveryLimit: settings.queueDeliveryLimit,
    reconnectMaxMs: settings.brokerReconnectMaxMs,
    logger: logger.child({ component: 'broker' }),
    onReconnect: () => metrics.brokerReconnects.inc(),
    onOverflow: () => metrics.limitsHit.inc({ limit: 'subscriber_backlog' }),
    onReplyDropped: () => metrics.repliesDropped.inc(),
    trace: messageTracer(logger),
    // Read before anything starts: a bad file stops the start with nothing open yet.
    backends: BackendServices.fromFile(settings.backendsFile || projectPath('config', 'backends.json')),
  });
}

/**
 * The presence directory of `broker`'s deployment, as a part of its own: over RabbitMQ, every
 * instance's sessions through the relay's one AMQP connection (it does not open another); with any
 * other broker (embedded, or one a test gives), this instance's. Either way each local session of
 * a user makes the broker hold that user's pushes here while it lasts.
 */
export function createPresence(
  broker: Broker,
  options: { instanceId: string; announceMs: number; logger: Logger },
): PresenceDirectory {
  const onLocalSession = {
    opened: (user: string) => broker.localSessionOpened(user),
    closed: (user: string) => broker.localSessionClosed(user),
  };
  if (!(broker instanceof RabbitRelayBroker))
    return new LocalSessionDirectory(options.instanceId, onLocalSession);
  return new AmqpSessionDirectory({
    connection: broker.amqpConnection,
    instanceId: options.instanceId,
    announceMs: options.announceMs,
    logger: options.logger.child({ component: 'presence' }),
    onLocalSession,
  });
}
