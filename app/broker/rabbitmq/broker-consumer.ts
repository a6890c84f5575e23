/**
 * One broker subscription (one SUBSCRIBE id) on one pool slot, and the delivery tags it holds.
 *
 * Always `ack: client-individual` on the broker, whatever the client asked for. The plugin gives
 * all subscriptions of a connection one AMQP channel, and its `client` mode is basic.ack with
 * `multiple`, which would also settle other subscriptions' messages on that channel. Client mode
 * `client` (cumulative) is done here, one tag at a time.
 *
 * Closing returns unacknowledged messages to the queue (broker.ts semantics), which the plugin does
 * not do: UNSUBSCRIBE cancels the consumer but leaves its deliveries unacknowledged until the
 * connection closes, and a NACK after UNSUBSCRIBE is refused ("Subscription not found") because the
 * plugin finds the subscription from the tag. So after UNSUBSCRIBE, if tags are left, we briefly
 * SUBSCRIBE the same id to a parking destination nothing is ever routed to, NACK them (requeue),
 * and UNSUBSCRIBE again. Private auto-delete queues skip this: their messages go with the queue.
 */
import type { ServiceError } from '../../errors';
import { frame, type Frame } from '../../stomp/frame';
import type { PoolSlot, SlotSubscription } from './connection-pool';
import { readMessage, type InboundMessage } from './wire';

export interface ConsumerSpec {
  destination: string;
  /** Extra SUBSCRIBE headers (x-queue-name, ...). */
  headers: Record<string, string>;
  prefetch: number;
  /** The queue is this subscription's own (auto-delete): unacknowledged messages die with it. */
  ownsQueue: boolean;
  /** Parking spot for the close protocol, e.g. `/exchange/amq.direct/…` with its x-queue-name. */
  parking: { destination: string; queueName: string };
  onMessage(message: InboundMessage, consumer: BrokerConsumer): void;
  /** Declares the queue over AMQP before every SUBSCRIBE of it (client queues: client-queues.ts). */
  prepare?(): Promise<void>;
  /** The broker refused this subscription when restoring it after a reconnect. */
  onRefused?(reason: ServiceError): void;
  /**
   * The queue is not ours to declare again (a raw `/amq/queue/`): once the broker cancels the
   * subscription (the queue was deleted) it ends with this reason instead of subscribing again.
   */
  whenQueueGone?(): ServiceError;
}

let consumerSeq = 0;

export class BrokerConsumer implements SlotSubscription {
  readonly id = `sub-${++consumerSeq}`;
  private state: 'open' | 'closing' | 'closed' = 'open';
  /** Tags delivered and not yet settled, in delivery order, with the generation that issued them. */
  private readonly outstanding = new Map<string, number>();
  /** Tags voided by a reconnect (their messages come again): settling one is a harmless no-op. */
  private readonly voided = new Set<string>();

  constructor(
    readonly slot: PoolSlot,
    private readonly spec: ConsumerSpec,
  ) {}

  get isOpen(): boolean {
    return this.state === 'open';
  }

  subscribeFrame(): Frame {
    return frame('SUBSCRIBE', {
      id: this.id,
      destination: this.spec.destination,
      ack: 'client-individual',
      'prefetch-count': String(this.spec.prefetch),
      ...this.spec.headers,
    });
  }

  onMessage(received: Frame): void {
    const message = readMessage(received);
    if (message.brokerAckId !== undefined) this.outstanding.set(message.brokerAckId, this.slot.generation);
    // While closing, keep the tag (to NACK it back) but deliver nothing.
    if (this.state === 'open') this.spec.onMessage(message, this);
  }

  onConnectionLost(): void {
    for (const tag of this.outstanding.keys()) this.voided.add(tag);
    this.outstanding.clear();
    // Bounded: only tags of the last few connections matter to anyone.
    if (this.voided.size > 10_000) this.voided.clear();
  }

  prepare(): Promise<void> {
    return this.spec.prepare?.() ?? Promise.resolve();
  }

  /** The queue was deleted under us: what it delivered is gone with it; subscribe again if open. */
  onCancelled(): boolean {
    this.onConnectionLost();
    if (this.state !== 'open') return false;
    if (!this.spec.whenQueueGone) return true;
    this.onRefused(this.spec.whenQueueGone());
    return false;
  }

  onRefused(reason: ServiceError): void {
    this.state = 'closed';
    this.outstanding.clear();
    this.spec.onRefused?.(reason);
  }

  /** 'outstanding', 'voided' (reconnect happened, message will come again) or 'unknown'. */
  tagState(tag: string): 'outstanding' | 'voided' | 'unknown' {
    if (this.outstanding.has(tag)) return 'outstanding';
    return this.voided.has(tag) ? 'voided' : 'unknown';
  }

  /** Outstanding tags up to and including `tag`, oldest first (for cumulative `client` acks). */
  tagsUpTo(tag: string): string[] {
    const out: string[] = [];
    for (const t of this.outstanding.keys()) {
      out.push(t);
      if (t === tag) return out;
    }
    return this.outstanding.has(tag) ? out : [];
  }

  /**
   * ACK or NACK these tags on the connection that delivered them, each awaited by receipt.
   * Tags from an earlier connection are skipped (RabbitMQ already requeued their messages); sending
   * them on the new connection would be an unknown delivery tag, which closes it. One whose
   * connection dies while it waits for its receipt resolves too, for the same reason.
   */
  async settle(tags: string[], command: 'ACK' | 'NACK', transaction?: string, requeue = true): Promise<void> {
    const sends: Promise<void>[] = [];
    for (const tag of tags) {
      const generation = this.outstanding.get(tag);
      if (generation === undefined) continue;
      this.outstanding.delete(tag);
      // RabbitMQ's NACK header: requeue false rejects the message (dropped or dead-lettered).
      const out = frame(command, { id: tag, transaction, requeue: requeue ? undefined : 'false' });
      sends.push(
        this.slot.send(out, { receipt: transaction === undefined, generation }).catch((err: unknown) => {
          // The connection that delivered the message died before confirming this: RabbitMQ
          // requeues the message (it comes again, redelivered), which is all a lost ACK or NACK can
          // mean. Not the client's error, so not a reason to end its session (a node's death on a
          // cluster did that to a consumer mid-ACK). Inside a transaction its COMMIT fails anyway.
          if (this.slot.generation !== generation || this.slot.state !== 'up') {
            this.voided.add(tag);
            return;
          }
          throw err;
        }),
      );
    }
    await Promise.all(sends);
  }

  /** Settles without waiting; used for acknowledgements the broker needs and nobody awaits. */
  settleQuietly(tag: string, command: 'ACK' | 'NACK', requeue = true): void {
    const generation = this.outstanding.get(tag);
    if (generation === undefined) return;
    this.outstanding.delete(tag);
    const out = frame(command, { id: tag, requeue: requeue ? undefined : 'false' });
    this.slot.send(out, { generation }).catch(() => undefined);
  }

  /** Unsubscribes and returns whatever is unacknowledged to its queue. Idempotent. */
  async close(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'closing';
    await this.slot.unsubscribe(this, frame('UNSUBSCRIBE', { id: this.id }));
    const generation = this.slot.generation;
    const tags = [...this.outstanding].filter(([, g]) => g === generation).map(([tag]) => tag);
    this.outstanding.clear();
    this.state = 'closed';
    if (this.spec.ownsQueue || tags.length === 0) return;
    try {
      const park = frame('SUBSCRIBE', {
        id: this.id,
        destination: this.spec.parking.destination,
        'x-queue-name': this.spec.parking.queueName,
        ack: 'client-individual',
        'prefetch-count': '1',
      });
      await this.slot.send(park, { receipt: true, generation });
      await Promise.all(
        tags.map((tag) => this.slot.send(frame('NACK', { id: tag }), { receipt: true, generation })),
      );
      await this.slot.send(frame('UNSUBSCRIBE', { id: this.id }), { receipt: true, generation });
    } catch {
      // The connection went away meanwhile, and with it the unacknowledged messages: requeued.
    }
  }
}
