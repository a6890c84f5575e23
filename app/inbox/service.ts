/** Builds the inbox of one instance from its settings: the engine createInbox picks, its metrics, the loops' timing. */
import type { Registry } from 'prom-client';

import type { Settings } from '../../config/settings';
import type { Broker } from '../broker/broker';
import type { Logger } from '../observability/logger';
import { createInbox } from './create-inbox';
import { inboxDeliveryMetrics } from './delivery-metrics';
import { Inbox } from './inbox';

export function inboxService(settings: Settings, broker: Broker, logger: Logger, registry: Registry): Inbox {
  const metrics = inboxDeliveryMetrics(registry);
  return new Inbox({
    setup: createInbox(settings, { logger, observer: metrics.observer }),
    broker,
    logger,
    metrics,
    sweepIntervalMs: settings.inboxSweepIntervalMs,
    catchUpAfterMs: settings.inboxCatchUpMs,
    // Twice per INBOX_CATCH_UP_MS: a message waits between one and one and a half of it.
    catchUpIntervalMs: Math.max(50, Math.floor(settings.inboxCatchUpMs / 2)),
  });
}
