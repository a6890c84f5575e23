/**
 * An in-process service relaying to the local RabbitMQ. Same as startTestService({brokerUrl}), but
 * the relay broker is built here and handed to startService: createBroker() loads it with a
 * dynamic import(), which mocha's `-r tsx/cjs` cannot resolve (ERR_MODULE_NOT_FOUND).
 */
import type { Settings } from '../../../config/settings';
import { RabbitRelayBroker } from '../../../app/broker/rabbitmq';
import { effectiveAmqpUrl } from '../../../app/config';
import { startService } from '../../../app/server';
import { STOMP_URL } from '../../support/rabbitmq';
import { testSettings, type RunningService } from '../../support/service';

export async function startRelayService(overrides: Partial<Settings> = {}): Promise<RunningService> {
  const settings = testSettings({ brokerUrl: STOMP_URL, ...overrides });
  const broker = new RabbitRelayBroker({
    brokerUrl: settings.brokerUrl,
    amqpUrl: effectiveAmqpUrl(settings),
    instanceId: settings.instanceId,
    poolSize: settings.brokerPoolSize,
    heartbeatMs: settings.brokerHeartbeatMs,
    prefetch: settings.brokerPrefetch,
    reconnectMaxMs: settings.brokerReconnectMaxMs,
    announceMs: settings.directoryAnnounceMs,
  });
  return startService({ settings, broker });
}
