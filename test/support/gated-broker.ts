/**
 * A broker that takes messages only when a test lets it: every call goes to a real broker (the
 * embedded one by default), but while the gate is shut a publish waits at it, as it would for a
 * RabbitMQ that has stopped confirming. Sessions whose SENDs wait pile up frames, which is what
 * flow control is about; everything else (subscriptions, deliveries, REST pushes to users) is the
 * real broker's.
 */
import type { Broker, BrokerSubscription, SubscribeRequest, TransactionOp } from '../../app/broker/broker';
import type { MessageTarget } from '../../app/destinations/destination';
import type { OutgoingMessage, PublishReceipt } from '../../app/broker/broker';
import { EmbeddedBroker } from '../../app/broker/embedded';

export class GatedBroker implements Broker {
  private gate: Promise<void> = Promise.resolve();
  private open: () => void = () => undefined;
  /** Publishes waiting at the shut gate. */
  waiting = 0;

  constructor(private readonly inner: Broker = new EmbeddedBroker({ instanceId: 'gated' })) {}

  get kind(): string {
    return this.inner.kind;
  }

  localSessionOpened(user: string): void {
    this.inner.localSessionOpened(user);
  }

  localSessionClosed(user: string): void {
    this.inner.localSessionClosed(user);
  }

  get replies(): Broker['replies'] {
    return this.inner.replies;
  }

  /** From now on publishes wait until `release`. */
  shut(): void {
    this.gate = new Promise((resolve) => (this.open = resolve));
  }

  /** Lets every waiting publish through, and later ones straight on. */
  release(): void {
    this.open();
    this.gate = Promise.resolve();
  }

  start(): Promise<void> {
    return this.inner.start();
  }

  stop(): Promise<void> {
    this.release();
    return this.inner.stop();
  }

  readiness(): ReturnType<Broker['readiness']> {
    return this.inner.readiness();
  }

  onReadinessChange(listener: Parameters<Broker['onReadinessChange']>[0]): void {
    this.inner.onReadinessChange(listener);
  }

  subscribe(request: SubscribeRequest): Promise<BrokerSubscription> {
    return this.inner.subscribe(request);
  }

  async publish(target: MessageTarget, message: OutgoingMessage): Promise<PublishReceipt> {
    this.waiting++;
    try {
      await this.gate;
    } finally {
      this.waiting--;
    }
    return this.inner.publish(target, message);
  }

  commit(ops: TransactionOp[]): Promise<void> {
    return this.inner.commit(ops);
  }
}
