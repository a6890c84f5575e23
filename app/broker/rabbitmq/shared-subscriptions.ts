/**
 * Subscription multiplexing: N local subscribers of one topic (or of one user's pushes) share ONE
 * broker subscription, and the instance fans each message out locally.
 *
 * Groups are reference counted by key (`topic:<name>`, `user:<routingKey>`): the first member
 * subscribes on the broker, the last one to leave unsubscribes, which also deletes the group's
 * auto-delete queue. Creating and closing a key's broker subscription are ordered: a join that
 * arrives while the previous group is closing waits for its UNSUBSCRIBE to be confirmed, so two
 * consumers of one key never overlap by accident and the queue is not deleted under a newcomer.
 *
 * A group's broker subscription acknowledges each message after handing it to every member, so
 * prefetch bounds what the broker may push ahead of the instance. That bound is what the ACKs buy:
 * the group's queue is per instance and auto-delete, so an unacknowledged message dies with it
 * rather than going to another consumer.
 */
import type { Delivery } from '../broker';
import { BrokerConsumer, type ConsumerSpec } from './broker-consumer';
import type { ConnectionPool, RelayLogger } from './connection-pool';
import type { InboundMessage } from './wire';

export interface GroupMember {
  /** Whether this member wants the message (user groups filter by destination). */
  wants(message: InboundMessage): boolean;
  deliver(delivery: Delivery): void;
}

interface Group {
  readonly members: Set<GroupMember>;
  consumer: BrokerConsumer | undefined;
  opened: Promise<void>;
  closed: Promise<void> | undefined;
}

export class SharedSubscriptions {
  private readonly groups = new Map<string, Group>();

  constructor(
    private readonly pool: ConnectionPool,
    private readonly logger: RelayLogger,
  ) {}

  /** Number of broker subscriptions held for shared groups. */
  get size(): number {
    return this.groups.size;
  }

  /** Adds `member` to the group `key`, subscribing on the broker if it is the first. */
  async join(key: string, spec: Omit<ConsumerSpec, 'onMessage'>, member: GroupMember): Promise<void> {
    const existing = this.groups.get(key);
    if (existing && !existing.closed) {
      existing.members.add(member);
      try {
        await existing.opened;
      } catch (err: unknown) {
        existing.members.delete(member);
        throw err;
      }
      return;
    }
    const previousClose = existing?.closed ?? Promise.resolve();
    const group: Group = {
      members: new Set([member]),
      consumer: undefined,
      opened: Promise.resolve(),
      closed: undefined,
    };
    this.groups.set(key, group);
    group.opened = previousClose.then(async () => {
      const slot = this.pool.slotFor(key);
      const consumer = new BrokerConsumer(slot, { ...spec, onMessage: (m, c) => this.fanOut(group, m, c) });
      group.consumer = consumer;
      await slot.subscribe(consumer);
    });
    try {
      await group.opened;
    } catch (err: unknown) {
      if (this.groups.get(key) === group) this.groups.delete(key);
      group.members.clear();
      throw err;
    }
  }

  /** Removes `member`; the last one out unsubscribes on the broker. */
  async leave(key: string, member: GroupMember): Promise<void> {
    const group = this.groups.get(key);
    if (!group || !group.members.delete(member) || group.members.size > 0 || group.closed) return;
    group.closed = group.opened
      .catch(() => undefined)
      .then(() => group.consumer?.close())
      .finally(() => {
        if (this.groups.get(key) === group) this.groups.delete(key);
      });
    await group.closed;
  }

  private fanOut(group: Group, message: InboundMessage, consumer: BrokerConsumer): void {
    for (const member of [...group.members]) {
      if (!member.wants(message)) continue;
      try {
        member.deliver({
          messageId: message.messageId,
          headers: { ...message.headers },
          body: message.body,
          redelivered: message.redelivered,
        });
      } catch (err: unknown) {
        // One failing subscriber must not cost the others their message.
        this.logger.error({ err }, 'subscriber failed to take a message');
      }
    }
    if (message.brokerAckId !== undefined) consumer.settleQuietly(message.brokerAckId, 'ACK');
  }
}
