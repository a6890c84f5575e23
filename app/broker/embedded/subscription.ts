/**
 * One subscription of the embedded broker: a consumer of one MessageQueue that turns queued
 * messages into Deliveries and keeps the unacknowledged ones until they are settled.
 *
 * Ack ids are random per delivery (never a counter), so a client cannot settle a message it was
 * not given by guessing, and an id stops working once settled, NACKed or closed.
 */
import { randomBytes } from 'node:crypto';

import { ServiceError } from '../../errors';
import { printable } from '../../destinations/destination';
import type { MessageTarget } from '../../destinations/destination';
import type { BrokerSubscription, Delivery, SubscribeRequest } from '../broker';
import type { MessageQueue, QueueConsumer, QueuedMessage } from './queue';

/** `drop` is a NACK with requeue false: the message is given up. */
export type Settlement = 'ack' | 'nack' | 'drop';

/** Called with what went wrong in a subscriber's deliver callback; the broker keeps going either way. */
export type DeliveryErrorHandler = (error: unknown, sessionId: string) => void;

/** The `outstanding` of every `auto` subscription: take() never adds to it in that mode. */
const NONE_OUTSTANDING: Map<string, QueuedMessage> = new Map();

function newAckId(): string {
  return randomBytes(18).toString('base64url');
}

export class EmbeddedSubscription implements BrokerSubscription, QueueConsumer {
  /**
   * Unacknowledged deliveries by ack id; Map keeps delivery order, which `client` acks rely on.
   * Shared and empty (never written) in ack mode `auto`: an idle topic or user subscriber of the
   * relay's fan-out would otherwise hold an empty Map of ~200 bytes.
   */
  private readonly outstanding: Map<string, QueuedMessage>;
  private closed = false;

  constructor(
    private readonly request: SubscribeRequest,
    readonly queue: MessageQueue,
    /** Whether `queue` belongs to this subscription alone (topic and user targets). */
    readonly ownsQueue: boolean,
    private readonly onClose: (subscription: EmbeddedSubscription) => void,
    private readonly onDeliveryError: DeliveryErrorHandler,
    /** Most deliveries of one message (0: no limit): past it, a message is dropped, not delivered. */
    private readonly deliveryLimit = 0,
  ) {
    this.outstanding = request.ackMode === 'auto' ? NONE_OUTSTANDING : new Map();
  }

  get target(): MessageTarget {
    return this.request.target;
  }

  get sessionId(): string {
    return this.request.sessionId;
  }

  hasCapacity(): boolean {
    if (this.closed) return false;
    if (this.request.ackMode === 'auto') return true;
    // prefetch 0 means "no limit", as in AMQP basic.qos and RabbitMQ's STOMP prefetch-count.
    return this.request.prefetch === 0 || this.outstanding.size < this.request.prefetch;
  }

  take(queued: QueuedMessage): void {
    const deliveries = (queued.deliveries ?? 0) + 1;
    // A message that keeps coming back (NACKed, or its consumer gone each time) is given up.
    if (this.deliveryLimit > 0 && deliveries > this.deliveryLimit) return;
    const { message } = queued;
    // Headers and body are the broker's snapshot, read-only for every subscriber it goes to.
    const delivery: Delivery = {
      messageId: message.id,
      headers: message.headers,
      body: message.body,
      redelivered: queued.redelivered,
      origin: message,
    };
    if (this.request.ackMode !== 'auto') {
      delivery.ackId = newAckId();
      this.outstanding.set(delivery.ackId, { ...queued, deliveries });
    }
    try {
      this.request.deliver(delivery);
    } catch (error: unknown) {
      // A failing subscriber must not stop the fan-out to the others; in client modes the message
      // stays unacknowledged and comes back when the subscription closes.
      this.onDeliveryError(error, this.request.sessionId);
    }
  }

  async ack(ackId: string): Promise<void> {
    this.settle(ackId, 'ack');
  }

  async nack(ackId: string, requeue = true): Promise<void> {
    this.settle(ackId, requeue ? 'nack' : 'drop');
  }

  /** Ends this subscription because of `reason`: its subscriber is told (SubscribeRequest.ended). */
  cutOff(reason: ServiceError): void {
    if (this.closed) return;
    void this.close();
    this.request.ended?.(reason);
  }

  /** Transactions check every ack id before applying anything. */
  assertOutstanding(ackId: string): void {
    if (!this.outstanding.has(ackId)) throw this.unknownAckId(ackId);
  }

  /**
   * ACK or NACK. In `client` mode both are cumulative (the message and every earlier one still
   * outstanding); in `client-individual` just that one. NACKed messages go back to the front of the
   * queue marked redelivered. `lenient` lets a transaction settle an id an earlier cumulative op
   * of the same transaction already covered: it was valid when the commit was checked.
   */
  settle(ackId: string, outcome: Settlement, lenient = false): void {
    if (!this.outstanding.has(ackId)) {
      if (lenient) return;
      throw this.unknownAckId(ackId);
    }
    const settled: QueuedMessage[] = [];
    if (this.request.ackMode === 'client') {
      for (const [id, entry] of this.outstanding) {
        this.outstanding.delete(id);
        settled.push(entry);
        if (id === ackId) break;
      }
    } else {
      const entry = this.outstanding.get(ackId);
      this.outstanding.delete(ackId);
      if (entry) settled.push(entry);
    }
    if (outcome === 'nack') {
      this.queue.requeue(settled.map((entry) => ({ ...entry, redelivered: true })));
    } else {
      this.queue.drain(); // capacity freed: the next waiting message may go out now
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.queue.removeConsumer(this);
    const unacked = [...this.outstanding.values()];
    this.outstanding.clear();
    // A private queue dies with its subscription; a shared one gets the messages back for others.
    if (!this.ownsQueue) {
      this.queue.requeue(unacked.map((entry) => ({ ...entry, redelivered: true })));
    }
    this.onClose(this);
  }

  /** Stops the subscription without returning anything: the whole broker is going away. */
  abandon(): void {
    this.closed = true;
    this.outstanding.clear();
  }

  private unknownAckId(ackId: string): ServiceError {
    const why =
      this.request.ackMode === 'auto'
        ? 'this subscription uses ack mode auto, which needs no ACK or NACK'
        : this.closed
          ? 'the subscription is closed'
          : 'it was never issued to this subscription or is already settled';
    return new ServiceError('bad_request', `unknown ack id '${printable(ackId)}': ${why}`);
  }
}
