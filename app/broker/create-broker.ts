/** Picks the broker from the settings: RabbitMQ relay when BROKER_URL is set, embedded otherwise. */
import type { Settings } from '../../config/settings';
import { effectiveAmqpUrl } from '../config';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import type { Broker } from './broker';
import { EmbeddedBroker } from './embedded';

export async function createBroker(settings: Settings, logger: Logger, metrics: Metrics): Promise<Broker> {
  if (!settings.brokerUrl) return new EmbeddedBroker({ instanceId: settings.instanceId });
  // Loaded only when asked for: a single embedded instance never opens AMQP code paths.
  const { RabbitRelayBroker } = await import('./rabbitmq/rabbit-relay-broker');
  return new RabbitRelayBroker({
    brokerUrl: settings.brokerUrl,
    amqpUrl: effectiveAmqpUrl(settings),
    instanceId: settings.instanceId,
    poolSize: settings.brokerPoolSize,
    heartbeatMs: settings.brokerHeartbeatMs,
    prefetch: settings.brokerPrefetch,
    reconnectMaxMs: settings.brokerReconnectMaxMs,
    announceMs: settings.directoryAnnounceMs,
    logger: logger.child({ component: 'broker' }),
    onReconnect: () => metrics.brokerReconnects.inc(),
  });
}
