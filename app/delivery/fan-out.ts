/**
 * Local fan-out: the subscriptions of this instance to topics and user destinations, and the
 * hand-over of a message that reached the instance to each of them, once each.
 *
 * With RabbitMQ, one instance queue carries every topic (and one every user) to the instance, so
 * the broker cannot keep per-subscriber state: acknowledgements of `client` and
 * `client-individual` subscriptions are kept here. Each subscription gets a private in-memory
 * queue (the embedded broker's MessageQueue and subscription, the same code the embedded broker
 * runs): prefetch bounds what is outstanding, ACK settles, NACK hands the message back to that
 * subscriber alone marked redelivered, close drops what it held. RabbitMQ counts the message
 * delivered once it sent it to the instance (no-ack consumer, instance-queue.ts): best-effort
 * delivery, as for a topic.
 *
 * The backlog a subscriber leaves unacknowledged is bounded (maxBacklog): past it that subscriber
 * is cut off (slow_consumer, counted), never the others.
 */
import { formatTarget, type MessageTarget } from '../destinations/destination';
import { ServiceError } from '../errors';
import type { BrokerSubscription, SubscribeRequest } from '../broker/broker';
import { MessageQueue, type QueuedMessage, type StoredMessage } from '../broker/embedded/queue';
import { EmbeddedSubscription, type DeliveryErrorHandler } from '../broker/embedded/subscription';

export type FanOutTarget = Extract<MessageTarget, { kind: 'topic' | 'user' }>;

export interface FanOutOptions {
  /** Most messages one subscriber may have waiting (unacknowledged beyond its prefetch). */
  maxBacklog: number;
  onDeliveryError: DeliveryErrorHandler;
  /** One subscriber's backlog was full: it is being cut off. */
  onOverflow(sessionId: string, target: FanOutTarget): void;
}

/**
 * Map key of a target, unambiguous whatever characters the parts hold: the kind first, the user's
 * length before the user, and a type (`queue` or `topic`) that has no `:`. Built for every message
 * the instance receives: a concatenation, where JSON of a tuple allocated an array as well.
 */
export function fanOutKey(target: FanOutTarget): string {
  return target.kind === 'topic'
    ? `t:${target.name}`
    : `u:${target.user.length}:${target.user}:${target.type}:${target.name}`;
}

export class LocalFanOut {
  private readonly routes = new Map<string, Set<EmbeddedSubscription>>();

  constructor(private readonly options: FanOutOptions) {}

  /** A subscription to a topic or user target, fed by deliver(). `onClose` runs once, on close. */
  subscribe(request: SubscribeRequest & { target: FanOutTarget }, onClose: () => void): EmbeddedSubscription {
    const key = fanOutKey(request.target);
    const queue = new MessageQueue(`a subscription to ${formatTarget(request.target)}`);
    const subscription = new EmbeddedSubscription(
      request,
      queue,
      true,
      (closed) => {
        const set = this.routes.get(key);
        set?.delete(closed);
        if (set?.size === 0) this.routes.delete(key);
        queue.clear();
        onClose();
      },
      this.options.onDeliveryError,
    );
    queue.addConsumer(subscription);
    const set = this.routes.get(key) ?? new Set();
    set.add(subscription);
    this.routes.set(key, set);
    return subscription;
  }

  /** Hands `message` to every subscription of `target`; returns how many took it. */
  deliver(target: FanOutTarget, message: StoredMessage): number {
    const set = this.routes.get(fanOutKey(target));
    if (!set) return 0;
    // One entry for every subscriber: it is read-only, and a NACK requeues a copy marked redelivered.
    const entry: QueuedMessage = { message, redelivered: false };
    if (set.size === 1) {
      // A user's single session, the common case: no copy of the set to walk.
      const [only] = set;
      return this.offer(only, entry, target) ? 1 : 0;
    }
    let taken = 0;
    // A copy: one subscriber's take() may open or close others.
    for (const subscription of [...set]) if (this.offer(subscription, entry, target)) taken += 1;
    return taken;
  }

  /** Hands `entry` to one subscription; false when that subscription was cut off instead. */
  private offer(subscription: EmbeddedSubscription, entry: QueuedMessage, target: FanOutTarget): boolean {
    if (subscription.queue.waiting >= this.options.maxBacklog) {
      // Its backlog is its own (a client-ack subscriber that never acks): that subscriber is cut
      // off, as the embedded broker does, and everyone else gets the message.
      this.options.onOverflow(subscription.sessionId, target);
      subscription.cutOff(
        new ServiceError(
          'slow_consumer',
          `subscription to ${formatTarget(target)} cut off: ${subscription.queue.waiting} messages wait ` +
            `unacknowledged (limit ${this.options.maxBacklog}); acknowledge what you receive`,
        ),
      );
      return false;
    }
    // Nothing waiting and room to take it (always so in ack mode auto): straight to the
    // subscriber, without the queue's bookkeeping; the order is the same either way.
    if (subscription.queue.waiting === 0 && subscription.hasCapacity()) subscription.take(entry);
    else subscription.queue.enqueue(entry);
    return true;
  }

  /** The subscriptions of `target` now. */
  subscribers(target: FanOutTarget): EmbeddedSubscription[] {
    return [...(this.routes.get(fanOutKey(target)) ?? [])];
  }

  /** Whether `subscription` is one of this fan-out's (transactions settle those here). */
  owns(subscription: BrokerSubscription): subscription is EmbeddedSubscription {
    if (!(subscription instanceof EmbeddedSubscription) || !subscription.ownsQueue) return false;
    const target = subscription.target;
    if (target.kind === 'queue') return false;
    return this.routes.get(fanOutKey(target))?.has(subscription) ?? false;
  }

  /** Drops every subscription without a word (the broker is stopping). */
  clear(): void {
    for (const set of this.routes.values()) for (const subscription of set) subscription.abandon();
    this.routes.clear();
  }
}
