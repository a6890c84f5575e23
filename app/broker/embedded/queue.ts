/**
 * One FIFO of messages and the consumers competing for it. The embedded broker models every
 * subscription as a consumer of some MessageQueue, the way RabbitMQ does: a `/queue/<name>` is one
 * shared queue; every topic or user subscription gets a private queue of its own. Ack modes,
 * prefetch, NACK and requeue-on-close then work the same for every kind of destination.
 *
 * Invariant after every drain(): either nothing is waiting or no consumer has capacity. So the
 * number waiting is exactly the backlog nobody can take, which is what the length limit bounds.
 */

/** What a publisher handed over, copied once so later changes to its buffers cannot reach subscribers. */
export interface StoredMessage {
  readonly id: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

export interface QueuedMessage {
  readonly message: StoredMessage;
  readonly redelivered: boolean;
  /** How often it was handed to a consumer before (the delivery limit counts these). */
  readonly deliveries?: number;
}

/** The queue's view of a subscription: it only needs to know whether it can take one more. */
export interface QueueConsumer {
  hasCapacity(): boolean;
  take(entry: QueuedMessage): void;
}

export class MessageQueue {
  /** Waiting messages are `items[head..]`; the head index avoids O(n) shifts on busy queues. */
  private items: (QueuedMessage | undefined)[] = [];
  private head = 0;
  private readonly consumers: QueueConsumer[] = [];
  /** Where the next round-robin search starts. */
  private cursor = 0;
  private draining = false;

  /** `label` names the queue in limit errors, e.g. "queue '/queue/jobs'". */
  constructor(readonly label: string) {}

  get waiting(): number {
    return this.items.length - this.head;
  }

  get consumerCount(): number {
    return this.consumers.length;
  }

  isIdle(): boolean {
    return this.waiting === 0 && this.consumers.length === 0;
  }

  addConsumer(consumer: QueueConsumer): void {
    this.consumers.push(consumer);
  }

  removeConsumer(consumer: QueueConsumer): void {
    const index = this.consumers.indexOf(consumer);
    if (index < 0) return;
    this.consumers.splice(index, 1);
    // Keep the rotation where it was: the consumer after the removed one stays next in line.
    if (index < this.cursor) this.cursor -= 1;
    if (this.cursor >= this.consumers.length) this.cursor = 0;
  }

  enqueue(entry: QueuedMessage): void {
    this.items.push(entry);
    this.drain();
  }

  /** Puts returned messages back at the front, in their original order (NACK, close). */
  requeue(entries: QueuedMessage[]): void {
    if (entries.length === 0) return;
    this.items = [...entries, ...this.items.slice(this.head)];
    this.head = 0;
    this.drain();
  }

  /** Drops everything (the broker is stopping or a private queue lost its only consumer). */
  clear(): void {
    this.items = [];
    this.head = 0;
    this.consumers.length = 0;
    this.cursor = 0;
  }

  /**
   * Hands waiting messages to consumers with capacity, round-robin. A consumer's deliver callback
   * may ack, publish or close synchronously, which calls back in here: the `draining` flag turns
   * that into a no-op, and the running loop picks up whatever changed because it re-checks both
   * the backlog and capacities on every turn. That keeps the stack flat however long the chain.
   */
  drain(): void {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.waiting > 0) {
        const consumer = this.nextWithCapacity();
        if (!consumer) break;
        const entry = this.items[this.head];
        this.items[this.head] = undefined; // taken: let the GC have it before compaction
        this.head += 1;
        this.compact();
        if (entry) consumer.take(entry);
      }
    } finally {
      this.draining = false;
    }
  }

  private nextWithCapacity(): QueueConsumer | undefined {
    const count = this.consumers.length;
    for (let i = 0; i < count; i += 1) {
      const index = (this.cursor + i) % count;
      const consumer = this.consumers[index];
      if (consumer.hasCapacity()) {
        this.cursor = (index + 1) % count;
        return consumer;
      }
    }
    return undefined;
  }

  private compact(): void {
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}
