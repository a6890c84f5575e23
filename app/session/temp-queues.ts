/**
 * One session's temp queues (delivery/reply-queues.ts says what they are), and the `reply-to` a SEND
 * carries on. As with RabbitMQ's plugin: `reply-to: /temp-queue/<name>` on a SEND makes (once per
 * name) a queue private to this session, subscribed automatically with the subscription id
 * `/temp-queue/<name>`, ack `auto`, never cancelled before the session ends; the message goes on
 * with `reply-to: /reply-queue/<token>`, the one destination that reaches it. Nobody can SUBSCRIBE
 * to a `/temp-queue/` or `/reply-queue/` destination, this session included.
 */
import type { Delivery, ReplyQueues, TempQueue } from '../broker/broker';
import { REPLY_QUEUE_PREFIX } from '../delivery/reply-queues';
import { ServiceError } from '../errors';
import type { ClientSubscription } from './subscriptions';

export const TEMP_QUEUE_PREFIX = '/temp-queue/';
/** Temp queues one session may hold: each is a binding on the broker while the session lives. */
export const MAX_TEMP_QUEUES = 32;

export class TempQueues {
  /** Made on the first reply-to: an empty Map is ~200 bytes, and most sessions never ask for one. */
  private byNameMap?: Map<string, Promise<TempQueue>>;
  private closed = false;

  constructor(
    private readonly replies: ReplyQueues,
    private readonly deliver: (sub: ClientSubscription, delivery: Delivery) => void,
  ) {}

  private get byName(): Map<string, Promise<TempQueue>> {
    return (this.byNameMap ??= new Map());
  }

  /** `/reply-queue/<token>` of this session's temp queue `name`, made on first use. */
  async replyDestination(name: string): Promise<string> {
    let queue = this.byName.get(name);
    if (!queue) {
      if (this.byName.size >= MAX_TEMP_QUEUES) {
        throw new ServiceError('limit_exceeded', `at most ${MAX_TEMP_QUEUES} temp queues per session`);
      }
      const destination = `${TEMP_QUEUE_PREFIX}${name}`;
      const sub: ClientSubscription = {
        id: destination,
        destination,
        target: { kind: 'temp-queue', name },
        ackMode: 'auto',
        closed: false,
      };
      queue = this.replies.open((delivery) => this.deliver(sub, delivery));
      this.byName.set(name, queue);
      queue.then(
        (q) => {
          if (this.closed) q.close();
        },
        () => this.byName.delete(name),
      );
    }
    return `${REPLY_QUEUE_PREFIX}${(await queue).token}`;
  }

  /** The session ended: its temp queues go with it; later replies to them are dropped and counted. */
  closeAll(): void {
    this.closed = true;
    const byName = this.byNameMap;
    if (!byName) return;
    for (const queue of byName.values())
      queue.then(
        (q) => q.close(),
        () => undefined,
      );
    byName.clear();
  }
}
