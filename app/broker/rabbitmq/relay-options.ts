/** What the RabbitMQ relay is built from (config/settings.ts names each setting), checked once. */
import { ServiceError } from '../../errors';
import type { MessageTracer } from '../../observability/trace';
import type { BackendServices } from '../../messaging/backend-services';
import type { RelayLogger } from './connection-pool';
import type { ClientQueueType } from './wire';

export interface RabbitRelayBrokerOptions {
  /** BROKER_URL: comma-separated stomp://user:pass@host:port/vhost failover list. */
  brokerUrl: string;
  /** AMQP_URL: comma-separated failover list for the instance's AMQP connection (exchanges, instance queues, user pushes, directory). */
  amqpUrl: string;
  /** Part of every per-instance queue name; `queue` is refused (it would alias client queues). */
  instanceId: string;
  /** STOMP connections to RabbitMQ (BROKER_POOL_SIZE). */
  poolSize: number;
  /** Heart-beat both ways on broker connections, ms (BROKER_HEARTBEAT_MS); 0 = off. */
  heartbeatMs: number;
  /** Highest prefetch-count of any broker subscription (BROKER_PREFETCH). */
  prefetch: number;
  /** CLIENT_QUEUE_TYPE: what client /queue/<name> queues are declared as; default classic. */
  clientQueueType?: ClientQueueType;
  /** Most deliveries of one /queue/ message (QUEUE_DELIVERY_LIMIT; 0: none; default 20). */
  deliveryLimit?: number;
  /** Longest wait between reconnect attempts (BROKER_RECONNECT_MAX_MS). */
  reconnectMaxMs: number;
  /**
   * Most messages one client-ack topic or user subscriber may leave waiting locally; past it that
   * subscriber is cut off with slow_consumer (counted through onOverflow). Default 10,000.
   */
  maxBacklog?: number;
  logger?: RelayLogger;
  /** Called each time a lost broker connection is back (for metrics). */
  onReconnect?: () => void;
  /** A subscriber whose local backlog was full is being cut off. */
  onOverflow?: () => void;
  /** A reply reached a temp queue that had gone (stomp_replies_dropped_total). */
  onReplyDropped?: () => void;
  /** The backend services `/app` messages may go to (BACKENDS_FILE), over the instance's AMQP connection. */
  backends?: BackendServices;
  /** Per-message trace (LOG_LEVEL=trace): what arrived on the instance queues, and for how many. */
  trace?: MessageTracer;
}

/** Refuses options the relay cannot run with, before anything is built. */
export function checkRelayOptions(options: RabbitRelayBrokerOptions): void {
  if (!/^[A-Za-z0-9_\-.]{1,64}$/.test(options.instanceId) || options.instanceId === 'queue') {
    throw new ServiceError(
      'bad_request',
      `instance id '${options.instanceId}' cannot name broker queues: use 1-64 of A-Z a-z 0-9 _ - . (and not 'queue')`,
    );
  }
  if (!Number.isInteger(options.prefetch) || options.prefetch < 1) {
    throw new RangeError(`prefetch must be a positive integer, got ${options.prefetch}`);
  }
}
