/**
 * The BrokerSubscription handles the relay gives out.
 *
 * - MemberSubscription: an `auto` subscription to a topic or a user destination, one member of a
 *   shared broker subscription (shared-subscriptions.ts).
 * - DirectSubscription: a subscription with its own broker subscription: every `/queue` one (so
 *   competing consumers, ack/nack and prefetch are exactly RabbitMQ's), and topic or user ones in a
 *   client ack mode, on a private auto-delete queue, so NACK redelivers to that subscriber alone
 *   and prefetch bounds it alone, as the embedded broker does. Ack ids are the plugin's `ack` values.
 */
import { printable, type MessageTarget } from '../../destinations/destination';
import { ServiceError } from '../../errors';
import type { AckMode, BrokerSubscription, SubscribeRequest } from '../broker';
import type { BrokerConsumer } from './broker-consumer';
import type { RelayLogger } from './connection-pool';
import type { GroupMember, SharedSubscriptions } from './shared-subscriptions';
import { isForUserTarget } from './user-delivery';
import type { InboundMessage } from './wire';

function autoModeError(ackId: string): ServiceError {
  return new ServiceError(
    'bad_request',
    `unknown ack id '${printable(ackId)}': this subscription uses ack mode auto, which needs no ACK or NACK`,
  );
}

function wantsMessage(target: MessageTarget, message: InboundMessage): boolean {
  return target.kind !== 'user' || isForUserTarget(message.internal, target);
}

export class MemberSubscription implements BrokerSubscription, GroupMember {
  private closed = false;

  constructor(
    private readonly request: SubscribeRequest,
    private readonly key: string,
    private readonly shared: SharedSubscriptions,
  ) {}

  wants(message: InboundMessage): boolean {
    return !this.closed && wantsMessage(this.request.target, message);
  }

  deliver(delivery: Parameters<SubscribeRequest['deliver']>[0]): void {
    this.request.deliver(delivery);
  }

  async ack(ackId: string): Promise<void> {
    throw autoModeError(ackId);
  }

  async nack(ackId: string): Promise<void> {
    throw autoModeError(ackId);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.shared.leave(this.key, this);
  }
}

export class DirectSubscription implements BrokerSubscription {
  /** Set right after construction, before the broker subscribes (the consumer needs our callback). */
  consumer!: BrokerConsumer;
  private closed = false;

  constructor(
    private readonly request: SubscribeRequest,
    private readonly logger: RelayLogger,
  ) {}

  get ackMode(): AckMode {
    return this.request.ackMode;
  }

  onMessage(message: InboundMessage): void {
    const tag = message.brokerAckId;
    if (this.closed || !wantsMessage(this.request.target, message)) {
      // Another destination of the same user: not for this subscription, and nobody else's here.
      if (tag !== undefined && !this.closed) this.consumer.settleQuietly(tag, 'ACK');
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

  async nack(ackId: string): Promise<void> {
    await this.consumer.settle(this.tagsFor(ackId), 'NACK');
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
