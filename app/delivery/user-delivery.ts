/**
 * User delivery, both directions, in one place: a push to (user U, /user/<type>/<name>) goes out
 * once, to U's key on the backbone; what the backbone brings to this instance for U is handed to
 * U's local subscriptions of that destination (fan-out.ts), once each. Nobody else's.
 *
 * The backbone (RabbitMQ: the `stomp-relay.user` exchange and the instance's exclusive users queue,
 * see broker/rabbitmq/amqp-delivery.ts) carries a push to every instance holding U's key, and says
 * whether any did. This instance holds U's key while it has a session of U (so `online` means "a
 * session of U was live somewhere") or a subscription of U (callers that subscribe without a
 * session, such as the broker suite).
 *
 * This is best-effort delivery: a push reaches the sessions live when it is routed. A durable
 * policy (the inbox) sits beside this one for the destinations it claims, not inside it.
 */
import type { MessageTarget } from '../destinations/destination';
import type { BrokerSubscription, OutgoingMessage, PublishReceipt, SubscribeRequest } from '../broker/broker';
import type { StoredMessage } from '../broker/embedded/queue';
import type { LocalFanOut } from './fan-out';

export type UserTarget = Extract<MessageTarget, { kind: 'user' }>;

export interface UserBackbone {
  /** Publishes to `target.user`'s key; resolves once the broker took it, saying if any instance held the key. */
  publish(target: UserTarget, message: OutgoingMessage): Promise<{ routed: boolean }>;
  /** From now on this instance gets `user`'s pushes; resolves once they will arrive. Counted. */
  hold(user: string): Promise<void>;
  release(user: string): void;
}

export interface UserDeliveryLogger {
  warn(obj: object, msg?: string): void;
}

export class UserDelivery {
  constructor(
    private readonly backbone: UserBackbone,
    private readonly fanOut: LocalFanOut,
    private readonly logger: UserDeliveryLogger,
  ) {}

  async push(target: UserTarget, message: OutgoingMessage): Promise<PublishReceipt> {
    const { routed } = await this.backbone.publish(target, message);
    return { online: routed };
  }

  /** Subscribes locally first, then waits for the key: nothing routed after this resolves is missed. */
  async subscribe(request: SubscribeRequest & { target: UserTarget }): Promise<BrokerSubscription> {
    const { user } = request.target;
    let held = true;
    const subscription = this.fanOut.subscribe(request, () => {
      if (held) this.backbone.release(user);
      held = false;
    });
    try {
      await this.backbone.hold(user);
    } catch (err: unknown) {
      held = false; // hold() failed: its count was taken back with it
      this.backbone.release(user);
      await subscription.close();
      throw err;
    }
    return subscription;
  }

  /** A session of `user` started on this instance. */
  sessionOpened(user: string): void {
    this.backbone.hold(user).catch((err: unknown) => {
      // Its subscriptions will say so; until the key is bound again, `online` may read false.
      this.logger.warn({ err }, 'could not bind the key of a user with a new session');
    });
  }

  sessionClosed(user: string): void {
    this.backbone.release(user);
  }

  /** What the backbone brought for `target`: to each local subscription of it. */
  receive(target: UserTarget, message: StoredMessage): number {
    return this.fanOut.deliver(target, message);
  }
}
