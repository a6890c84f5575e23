/**
 * A session's subscriptions and the acknowledgements it owes. Clients quote back an `ack` token we
 * minted (STOMP 1.2 `id`, or `message-id` + `subscription` in 1.0/1.1); the token maps to the broker's
 * ack id only inside this session, so no client can acknowledge a message of another session or user.
 */
import type { AckMode, BrokerSubscription } from '../broker/broker';
import type { MessageTarget } from '../destinations/destination';
import type { RawTarget } from '../destinations/raw-destination';

export interface ClientSubscription {
  id: string;
  /** The destination exactly as the client wrote it: MESSAGE frames carry it back unchanged. */
  destination: string;
  /** A temp queue's (temp-queues.ts) is never in the table: it lives as long as its session. */
  target: MessageTarget | RawTarget | { kind: 'temp-queue'; name: string };
  ackMode: AckMode;
  /** Set once the broker confirmed the subscription. */
  broker?: BrokerSubscription;
  closed: boolean;
}

interface PendingAck {
  subscriptionId: string;
  brokerAckId: string;
  messageId: string;
}

export interface AckTarget {
  subscription: ClientSubscription;
  brokerAckId: string;
  /** Our token for this delivery: a transactional ACK settles it only at COMMIT. */
  token: string;
}

export class SubscriptionTable {
  private readonly subs = new Map<string, ClientSubscription>();
  /**
   * Insertion-ordered: `client` mode acks everything up to a token, per subscription. Made on the
   * first delivery that needs an ACK: an `auto` session never has one, and an empty Map costs ~200
   * bytes per session.
   */
  private pendingAcks?: Map<string, PendingAck>;
  private counter = 0;

  private get pending(): Map<string, PendingAck> {
    return (this.pendingAcks ??= new Map());
  }

  get size(): number {
    return this.subs.size;
  }

  get(id: string): ClientSubscription | undefined {
    return this.subs.get(id);
  }

  add(sub: ClientSubscription): void {
    this.subs.set(sub.id, sub);
  }

  remove(id: string): ClientSubscription | undefined {
    const sub = this.subs.get(id);
    if (!sub) return undefined;
    this.subs.delete(id);
    sub.closed = true;
    const pending = this.pendingAcks;
    if (pending) for (const [token, p] of pending) if (p.subscriptionId === id) pending.delete(token);
    return sub;
  }

  all(): ClientSubscription[] {
    return [...this.subs.values()];
  }

  /** Mints the token a client quotes in ACK/NACK for one delivery. */
  mintAck(sub: ClientSubscription, brokerAckId: string, messageId: string): string {
    const token = `${sub.id}:${(++this.counter).toString(36)}`;
    this.pending.set(token, { subscriptionId: sub.id, brokerAckId, messageId });
    return token;
  }

  /**
   * STOMP 1.2: the `id` header of ACK/NACK is our token. With `settle` false (an ACK inside a
   * transaction) the delivery stays pending until `settleToken` at COMMIT, so after ABORT the
   * client can still acknowledge it.
   */
  resolveToken(token: string, settle = true): AckTarget | undefined {
    const p = this.pending.get(token);
    return p ? this.target(token, p, settle) : undefined;
  }

  /** STOMP 1.0/1.1: ACK names `message-id` (and `subscription` in 1.1). */
  resolveMessageId(
    messageId: string,
    subscriptionId: string | undefined,
    settle = true,
  ): AckTarget | undefined {
    for (const [token, p] of this.pending) {
      if (
        p.messageId === messageId &&
        (subscriptionId === undefined || p.subscriptionId === subscriptionId)
      ) {
        return this.target(token, p, settle);
      }
    }
    return undefined;
  }

  /** A transaction's ACK/NACK took effect (COMMIT): forget the delivery as resolveToken would. */
  settleToken(token: string): void {
    const p = this.pending.get(token);
    if (p) this.target(token, p, true);
  }

  private target(token: string, p: PendingAck, settle: boolean): AckTarget | undefined {
    const subscription = this.subs.get(p.subscriptionId);
    if (!subscription) return undefined;
    if (!settle) return { subscription, brokerAckId: p.brokerAckId, token };
    if (subscription.ackMode === 'client') {
      // Cumulative: this ack covers every earlier delivery of the subscription too.
      for (const [t, q] of this.pending) {
        if (q.subscriptionId === p.subscriptionId) this.pending.delete(t);
        if (t === token) break;
      }
    } else {
      this.pending.delete(token);
    }
    return { subscription, brokerAckId: p.brokerAckId, token };
  }
}
