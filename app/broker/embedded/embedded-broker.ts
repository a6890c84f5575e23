/**
 * The in-process broker used when BROKER_URL is unset: one instance, no RabbitMQ, same semantics
 * as the relay (see ../broker.ts; both pass test/support/broker-suite.ts).
 *
 * Routing mirrors RabbitMQ so the two behave alike: `/queue/<name>` is one shared MessageQueue with
 * competing consumers; each topic or user subscription consumes from a private queue that a publish
 * fans out into: the local fan-out the relay uses too (delivery/fan-out.ts), which keys user
 * targets by the (user, type, name) tuple itself, never by a joined string, so no user name (dots,
 * wildcards, slashes, unicode) can reach another user's key.
 *
 * Everything is synchronous under the promises: publish() has delivered to every consumer with
 * capacity (or queued the message) by the time it resolves, which is the "broker has taken it"
 * point of the seam.
 */
import { LocalReplies } from '../../delivery/reply-queues';
import { ServiceError } from '../../errors';
import { formatTarget, type MessageTarget } from '../../destinations/destination';
import type {
  Broker,
  BrokerSubscription,
  OutgoingMessage,
  PublishReceipt,
  Readiness,
  SubscribeRequest,
  TransactionOp,
} from '../broker';
import { assertOwnUserTarget } from '../broker';
import { LocalFanOut } from '../../delivery/fan-out';
import { MessageQueue, type StoredMessage } from './queue';
import { EmbeddedSubscription, type DeliveryErrorHandler } from './subscription';

export interface EmbeddedBrokerOptions {
  /** This instance's id, as the rest of the service reports it. */
  instanceId: string;
  /**
   * Most messages waiting in one queue (a `/queue/<name>` nobody can take from, or the backlog of
   * one client-ack topic/user subscription). A publish beyond it is refused with `limit_exceeded`
   * rather than growing memory without bound. Default 10,000.
   */
  maxQueueLength?: number;
  /** Told when a subscriber's deliver callback throws; delivery to everyone else goes on. Default: ignore. */
  onDeliveryError?: DeliveryErrorHandler;
  /**
   * Most deliveries of one `/queue/` message (QUEUE_DELIVERY_LIMIT): one delivered that often and
   * NACKed or returned again is dropped instead of coming back forever. 0: no limit. Default 20.
   */
  deliveryLimit?: number;
  /** A reply reached a temp queue that had gone (stomp_replies_dropped_total). */
  onReplyDropped?: () => void;
}

export const EMBEDDED_BROKER_DEFAULTS = {
  maxQueueLength: 10_000,
  deliveryLimit: 20,
} as const;

/** A multiset of strings. */
class Counts {
  private readonly counts = new Map<string, number>();

  add(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  remove(key: string): void {
    const left = (this.counts.get(key) ?? 1) - 1;
    if (left > 0) this.counts.set(key, left);
    else this.counts.delete(key);
  }

  has(key: string): boolean {
    return this.counts.has(key);
  }

  clear(): void {
    this.counts.clear();
  }
}

function snapshot(message: OutgoingMessage): StoredMessage {
  const headers = { ...message.headers };
  // The one property kept here: a receiver replies to it (delivery/reply-queues.ts).
  const replyTo = message.properties?.replyTo;
  if (replyTo !== undefined) headers['reply-to'] = replyTo;
  return { id: message.id, headers, body: Buffer.from(message.body) };
}

export class EmbeddedBroker implements Broker {
  readonly kind = 'embedded';
  readonly replies: LocalReplies;
  readonly instanceId: string;

  private readonly maxQueueLength: number;
  private readonly deliveryLimit: number;
  private readonly onDeliveryError: DeliveryErrorHandler;
  private readonly queues = new Map<string, MessageQueue>();
  private readonly fanOut: LocalFanOut;
  /** Open user subscriptions per user, and sessions per user (for PublishReceipt.online). */
  private readonly userSubscriptions = new Counts();
  private readonly localSessions = new Counts();
  private readonly subscriptions = new Set<EmbeddedSubscription>();
  private readonly readinessListeners: ((readiness: Readiness) => void)[] = [];
  private stopped = false;

  constructor(options: EmbeddedBrokerOptions) {
    this.instanceId = options.instanceId;
    this.replies = new LocalReplies(() => options.onReplyDropped?.());
    this.maxQueueLength = options.maxQueueLength ?? EMBEDDED_BROKER_DEFAULTS.maxQueueLength;
    if (!Number.isInteger(this.maxQueueLength) || this.maxQueueLength < 1) {
      throw new ServiceError(
        'bad_request',
        `embedded broker option maxQueueLength must be a positive integer, got ${String(options.maxQueueLength)}`,
      );
    }
    this.onDeliveryError = options.onDeliveryError ?? (() => undefined);
    this.deliveryLimit = options.deliveryLimit ?? EMBEDDED_BROKER_DEFAULTS.deliveryLimit;
    // Backlogs past maxQueueLength are cut off before a publish (checkCapacity), so the fan-out's
    // own bound is never the one that acts here.
    this.fanOut = new LocalFanOut({
      maxBacklog: this.maxQueueLength,
      onDeliveryError: this.onDeliveryError,
      onOverflow: () => undefined,
    });
  }

  async start(): Promise<void> {
    this.assertRunning();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const subscription of this.subscriptions) subscription.abandon();
    this.subscriptions.clear();
    for (const queue of this.queues.values()) queue.clear();
    this.queues.clear();
    this.fanOut.clear();
    this.userSubscriptions.clear();
    this.localSessions.clear();
    const readiness = this.readiness();
    for (const listener of this.readinessListeners) listener(readiness);
  }

  /** Ready from construction: there is no connection to lose. Only stop() ends it. */
  readiness(): Readiness {
    return this.stopped ? { ready: false, reason: 'the embedded broker is stopped' } : { ready: true };
  }

  onReadinessChange(listener: (readiness: Readiness) => void): void {
    this.readinessListeners.push(listener);
  }

  async subscribe(request: SubscribeRequest): Promise<BrokerSubscription> {
    this.assertRunning();
    const { target } = request;
    assertOwnUserTarget(request);
    if (request.ackMode !== 'auto' && (!Number.isInteger(request.prefetch) || request.prefetch < 0)) {
      throw new ServiceError('bad_request', `prefetch must be a whole number >= 0, got ${request.prefetch}`);
    }
    if (target.kind !== 'queue') {
      const fanned: EmbeddedSubscription = this.fanOut.subscribe({ ...request, target }, () => {
        this.subscriptions.delete(fanned);
        if (target.kind === 'user') this.userSubscriptions.remove(target.user);
      });
      this.subscriptions.add(fanned);
      if (target.kind === 'user') this.userSubscriptions.add(target.user);
      return fanned;
    }
    const queue = this.namedQueue(target.name);
    const subscription = new EmbeddedSubscription(
      request,
      queue,
      false,
      (closed) => this.forget(closed),
      this.onDeliveryError,
      this.deliveryLimit,
    );
    queue.addConsumer(subscription);
    this.subscriptions.add(subscription);
    // Waiting messages go out after the caller has its handle, so a deliver callback may ack.
    setImmediate(() => queue.drain());
    return subscription;
  }

  async publish(target: MessageTarget, message: OutgoingMessage): Promise<PublishReceipt> {
    this.assertRunning();
    this.checkCapacity([target]);
    this.distribute(target, snapshot(message));
    return target.kind === 'user' ? { online: this.isOnline(target.user) } : {};
  }

  /**
   * A user is online while a session of theirs is open, or (callers that subscribe without a
   * session, such as the broker suite) while one of their user subscriptions is open.
   */
  private isOnline(user: string): boolean {
    return this.localSessions.has(user) || this.userSubscriptions.has(user);
  }

  localSessionOpened(user: string): void {
    this.localSessions.add(user);
  }

  localSessionClosed(user: string): void {
    this.localSessions.remove(user);
  }

  /**
   * Applies a transaction in order, all or nothing: every ack id and every queue's room is checked
   * before the first op runs, so a bad op leaves nothing half-applied.
   */
  async commit(ops: TransactionOp[]): Promise<void> {
    this.assertRunning();
    const publishes: MessageTarget[] = [];
    for (const op of ops) {
      if (op.op === 'publish') {
        publishes.push(op.target);
        continue;
      }
      this.own(op.subscription).assertOutstanding(op.ackId);
    }
    this.checkCapacity(publishes);
    for (const op of ops) {
      if (op.op === 'publish') this.distribute(op.target, snapshot(op.message));
      else {
        const outcome = op.op === 'ack' ? 'ack' : op.requeue === false ? 'drop' : 'nack';
        this.own(op.subscription).settle(op.ackId, outcome, true);
      }
    }
  }

  /** A published message to its queue, or into the queue of each subscription of its target. */
  private distribute(target: MessageTarget, message: StoredMessage): void {
    if (target.kind === 'queue') this.namedQueue(target.name).enqueue({ message, redelivered: false });
    else this.fanOut.deliver(target, message);
  }

  /** Refuses a publish (or a transaction's publishes) that would push any queue past its limit. */
  private checkCapacity(targets: MessageTarget[]): void {
    const needed = new Map<MessageQueue | string, number>();
    const behind = new Map<EmbeddedSubscription, number>();
    for (const target of targets) {
      if (target.kind === 'queue') {
        needed.set(target.name, (needed.get(target.name) ?? 0) + 1);
        continue;
      }
      for (const subscription of this.fanOut.subscribers(target)) {
        behind.set(subscription, (behind.get(subscription) ?? 0) + 1);
      }
    }
    // A topic or user subscriber's backlog is its own (a client-ack subscriber that never acks):
    // that subscriber is cut off, and the publish goes on for everyone else (issue 11.14).
    for (const [subscription, count] of behind) {
      if (subscription.queue.waiting + count > this.maxQueueLength) {
        subscription.cutOff(
          new ServiceError(
            'slow_consumer',
            `subscription to ${formatTarget(subscription.target)} cut off: ${subscription.queue.waiting} messages ` +
              `wait unacknowledged (limit ${this.maxQueueLength}); acknowledge what you receive`,
          ),
        );
      }
    }
    for (const [key, count] of needed) {
      const queue = typeof key === 'string' ? this.queues.get(key) : key;
      const waiting = queue?.waiting ?? 0;
      if (waiting + count > this.maxQueueLength) {
        const label = queue?.label ?? 'the queue';
        throw new ServiceError(
          'limit_exceeded',
          `${label} already holds ${waiting} undelivered messages (limit ${this.maxQueueLength}); ` +
            'its consumers are not keeping up, try again later',
        );
      }
    }
  }

  private namedQueue(name: string): MessageQueue {
    let queue = this.queues.get(name);
    if (!queue) {
      queue = new MessageQueue(`queue '/queue/${name}'`);
      this.queues.set(name, queue);
    }
    return queue;
  }

  /** A /queue/ subscription closed. */
  private forget(subscription: EmbeddedSubscription): void {
    this.subscriptions.delete(subscription);
    const { target } = subscription;
    // An empty queue nobody consumes is indistinguishable from a missing one: free it.
    if (target.kind === 'queue' && subscription.queue.isIdle()) this.queues.delete(target.name);
  }

  private own(subscription: BrokerSubscription): EmbeddedSubscription {
    if (subscription instanceof EmbeddedSubscription && this.subscriptions.has(subscription))
      return subscription;
    throw new ServiceError('bad_request', 'the subscription is closed or does not belong to this broker');
  }

  private assertRunning(): void {
    if (this.stopped) throw new ServiceError('broker_unavailable', 'the embedded broker is stopped');
  }
}
