/**
 * Temp queues for request/reply (issue 16.4), the way RabbitMQ's STOMP plugin offers them: a SEND
 * with `reply-to: /temp-queue/<name>` gives the session a private reply queue, the message goes on
 * with `reply-to: /reply-queue/<token>`, and whoever replies to that destination (a STOMP client's
 * SEND, an AMQP backend's publish) reaches that session alone.
 *
 * The token is 128 random bits: knowing it is the right to reply there and nothing else. It names no
 * queue a client can SUBSCRIBE to (`/reply-queue/` and `/temp-queue/` are never subscribable), and
 * it cannot be guessed from the `/temp-queue/` name. On the relay it is one more routing key,
 * `r.<token>`, bound on the instance's users queue to the `stomp-relay.user` exchange while the
 * session lives (a user key never contains a raw `.`, and hashed ones start `h.`, so none collides);
 * so an instance still holds a constant set of queues, and a reply from any instance or backend
 * finds the session's instance. The embedded broker keeps the same registry without a backbone.
 *
 * A reply to a token no session holds any more is dropped and counted (stomp_replies_dropped_total),
 * not refused: the requester has gone, and a replier cannot do anything about it.
 */
import { randomBytes } from 'node:crypto';
import type { Delivery, OutgoingMessage, ReplyQueues, TempQueue } from '../broker/broker';
import type { StoredMessage } from '../broker/embedded/queue';

/** `/reply-queue/<token>`: 16 random bytes, base64url. */
export const REPLY_QUEUE_PREFIX = '/reply-queue/';
export const TOKEN = /^[A-Za-z0-9_-]{22}$/;

/** The routing key of a token on the user exchange. */
export function replyRoutingKey(token: string): string {
  return `r.${token}`;
}

/** How replies travel between instances (the relay's AMQP delivery); absent on one instance. */
export interface ReplyBackbone {
  hold(token: string): Promise<void>;
  release(token: string): void;
  /** Resolves with `routed` false when no instance held the token. */
  publish(token: string, message: OutgoingMessage): Promise<{ routed: boolean }>;
}

export class LocalReplies implements ReplyQueues {
  private readonly open_ = new Map<string, (delivery: Delivery) => void>();

  constructor(
    private readonly onDropped: () => void,
    private readonly backbone?: ReplyBackbone,
  ) {}

  async open(deliver: (delivery: Delivery) => void): Promise<TempQueue> {
    const token = randomBytes(16).toString('base64url');
    this.open_.set(token, deliver);
    try {
      await this.backbone?.hold(token);
    } catch (err: unknown) {
      this.open_.delete(token);
      this.backbone?.release(token);
      throw err;
    }
    return {
      token,
      close: () => {
        if (!this.open_.delete(token)) return;
        this.backbone?.release(token);
      },
    };
  }

  async reply(token: string, message: OutgoingMessage): Promise<{ delivered: boolean }> {
    if (!this.backbone) {
      const delivered = this.receive(token, {
        id: message.id,
        headers: { ...message.headers },
        body: message.body,
      });
      return { delivered };
    }
    const { routed } = await this.backbone.publish(token, message);
    if (!routed) this.onDropped();
    return { delivered: routed };
  }

  /** What arrived for `token`: to its session, or dropped (and counted) when it has gone. */
  receive(token: string, message: StoredMessage): boolean {
    const deliver = this.open_.get(token);
    if (!deliver) {
      this.onDropped();
      return false;
    }
    deliver({ messageId: message.id, headers: message.headers, body: message.body, redelivered: false });
    return true;
  }

  /** Temp queues open on this instance (for tests and the stop path). */
  get size(): number {
    return this.open_.size;
  }
}
