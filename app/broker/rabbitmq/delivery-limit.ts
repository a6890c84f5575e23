/**
 * QUEUE_DELIVERY_LIMIT for `/queue/` messages on RabbitMQ: a message delivered that many times is
 * given up (NACK requeue:false: dropped, or dead-lettered where the queue has a dead-letter
 * exchange) instead of coming back forever, whether it came back by NACK or because its consumer
 * went away each time.
 *
 * How often a message was delivered: a quorum queue says so itself (`x-delivery-count`, counting
 * every earlier delivery, on every instance). A classic queue only says `redelivered`, so the relay
 * counts the redeliveries it sees per message id, in a bounded table: an instance counts only what
 * it delivered itself, so across N instances a message may be delivered up to N times the limit,
 * and one forgotten from a full table starts counting again. Bounded either way.
 */
const TABLE_LIMIT = 10_000;

export class DeliveryLimit {
  /** Message id → deliveries seen here, oldest first (a Map keeps insertion order). */
  private readonly seen = new Map<string, number>();

  /** `limit` 0 means no limit. */
  constructor(readonly limit: number) {}

  /**
   * Counts this delivery; true when it is past the limit and should be given up. `deliveryCount`
   * is the queue's own `x-delivery-count` when it has one.
   */
  exceeded(messageId: string, redelivered: boolean, deliveryCount: string | undefined): boolean {
    if (this.limit === 0) return false;
    if (deliveryCount !== undefined && /^\d{1,9}$/.test(deliveryCount)) {
      return Number(deliveryCount) + 1 > this.limit;
    }
    if (!redelivered) {
      this.seen.delete(messageId);
      return false;
    }
    const count = (this.seen.get(messageId) ?? 1) + 1;
    this.seen.delete(messageId);
    if (count > this.limit) return true;
    this.seen.set(messageId, count);
    if (this.seen.size > TABLE_LIMIT) this.seen.delete(this.seen.keys().next().value as string);
    return false;
  }
}
