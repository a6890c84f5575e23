/**
 * The BrokerSubscription of a `/queue` subscription: its own broker subscription over the STOMP
 * pool, so competing consumers, ack/nack and prefetch are exactly RabbitMQ's. Ack ids are the
 * plugin's `ack` values. Raw `/amq/queue/` and `/exchange/` subscriptions are the same
 * (raw-destinations.ts). (Topic and user subscriptions are local: delivery/fan-out.ts.)
 */
import { printable } from '../../destinations/destination';
import { ServiceError } from '../../errors';
import type { AckMode, BrokerSubscription, SubscribeRequest } from '../broker';
import type { BrokerConsumer } from './broker-consumer';
import type { DeliveryLimit } from './delivery-limit';
import type { RelayLogger } from './connection-pool';
import type { InboundMessage } from './wire';

function autoModeError(ackId: string): ServiceError {
  return new ServiceError(
    'bad_request',
    `unknown ack id '${printable(ackId)}': this subscription uses ack mode auto, which needs no ACK or NACK`,
  );
}

export class DirectSubscription implements BrokerSubscription {
  /** Set right after construction, before the broker subscribes (the consumer needs our callback). */
  consumer!: BrokerConsumer;
  private closed = false;

  constructor(
    private readonly request: Omit<SubscribeRequest, 'target'>,
    private readonly logger: RelayLogger,
    /** QUEUE_DELIVERY_LIMIT, for `/queue/` subscriptions (not for queues the service does not own). */
    private readonly deliveryLimit?: DeliveryLimit,
  ) {}

  get ackMode(): AckMode {
    return this.request.ackMode;
  }

  onMessage(message: InboundMessage): void {
    const tag = message.brokerAckId;
    if (this.closed) return;
    const limit = this.deliveryLimit;
    if (
      tag !== undefined &&
      limit?.exceeded(message.messageId, message.redelivered, message.headers['x-delivery-count'])
    ) {
      // Delivered QUEUE_DELIVERY_LIMIT times already: given up as the queue says (delivery-limit.ts).
      this.logger.warn(
        { messageId: message.messageId, limit: limit.limit },
        'a /queue/ message reached the delivery limit: given up (dropped or dead-lettered)',
      );
      this.consumer.settleQuietly(tag, 'NACK', false);
      return;
    }
    const auto = this.request.ackMode === 'auto';
    try {
      this.request.deliver({
        messageId: message.messageId,
        headers: message.headers,
        body: message.body,
        redelivered: message.redelivered,
        ackId: auto ? undefined : tag,
      });
    } catch (err: unknown) {
      // In client modes the message stays unacknowledged and returns when the subscription closes.
      this.logger.error({ err }, 'subscriber failed to take a message');
    }
    if (auto && tag !== undefined) this.consumer.settleQuietly(tag, 'ACK');
  }

  /**
   * The broker tags an ACK/NACK of `ackId` settles: just it (client-individual) or it and every
   * earlier outstanding one (client). Empty for a tag a reconnect voided (its message comes again).
   */
  tagsFor(ackId: string): string[] {
    if (this.request.ackMode === 'auto') throw autoModeError(ackId);
    const state = this.consumer.tagState(ackId);
    if (state === 'voided') return [];
    if (state === 'unknown') {
      const why = this.closed
        ? 'the subscription is closed'
        : 'it was never issued to this subscription or is already settled';
      throw new ServiceError('bad_request', `unknown ack id '${printable(ackId)}': ${why}`);
    }
    return this.request.ackMode === 'client' ? this.consumer.tagsUpTo(ackId) : [ackId];
  }

  async ack(ackId: string): Promise<void> {
    await this.consumer.settle(this.tagsFor(ackId), 'ACK');
  }

  async nack(ackId: string, requeue = true): Promise<void> {
    await this.consumer.settle(this.tagsFor(ackId), 'NACK', undefined, requeue);
  }

  /** The broker dropped this subscription (see PoolSlot.restore): only its subscriber hears why. */
  ended(reason: ServiceError): void {
    if (this.closed) return;
    this.closed = true;
    this.request.ended?.(reason);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.consumer.close();
  }
}
