/**
 * The inbox's part of /metrics beyond the store's (metrics.ts: latency per operation, expiries,
 * backlog by state): what was stored, delivered (replayed from the store or live), redelivered,
 * acknowledged and republished by the outbox catch-up. All on the service's registry.
 */
import { Counter, type Registry } from 'prom-client';

import { inboxStoreMetrics, type InboxStoreMetrics } from './metrics';

export interface InboxDeliveryMetrics extends InboxStoreMetrics {
  readonly stored: Counter;
  readonly delivered: Counter<'source'>;
  readonly redelivered: Counter;
  readonly acked: Counter;
  readonly republished: Counter;
}

export function inboxDeliveryMetrics(registry: Registry): InboxDeliveryMetrics {
  const counter = (name: string, help: string): Counter => new Counter({ name, help, registers: [registry] });
  return {
    ...inboxStoreMetrics(registry),
    stored: counter(
      'stomp_inbox_stored_total',
      'Durable pushes committed to the inbox (idempotent retries not counted)',
    ),
    delivered: new Counter({
      name: 'stomp_inbox_delivered_total',
      help: 'Inbox MESSAGE frames written to devices, by source (replay: from the store on SUBSCRIBE or after a gap; live)',
      labelNames: ['source'] as const,
      registers: [registry],
    }),
    redelivered: counter(
      'stomp_inbox_redelivered_total',
      'Inbox messages written with redelivered:true (the device was sent them before)',
    ),
    acked: counter(
      'stomp_inbox_acked_total',
      'Inbox messages acknowledged by devices (ACK, or auto once written)',
    ),
    republished: counter(
      'stomp_inbox_republished_total',
      'Committed messages published again by the outbox catch-up because their live publish had failed',
    ),
  };
}
