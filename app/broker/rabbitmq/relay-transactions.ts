/**
 * COMMIT on the RabbitMQ relay. Each connection involved gets a plugin transaction with a unique
 * name (usually there is one): acks are only valid on the connection that delivered them, and a
 * transaction is never shared between clients. Acks of local subscriptions (topic and user ones,
 * delivery/fan-out.ts) are applied once the broker's part has committed.
 *
 * `/queue/` SENDs are not part of the plugin transaction: they go over AMQP as outside one
 * (client-queues.ts), first. Through the plugin, a queue deleted under the pool connection would
 * swallow them and COMMIT would still get its RECEIPT. In order, each confirmed before the next,
 * and before the acks: a COMMIT that fails part-way has then settled none of the messages it
 * consumed (they come again), and each of its publishes is in its queue or the COMMIT is an
 * ERROR. (The plugin's transactions were never atomic either: it applies frames one by one.)
 */
import { ServiceError } from '../../errors';
import { frame } from '../../stomp/frame';
import type { LocalFanOut } from '../../delivery/fan-out';
import type { MessageTarget } from '../../destinations/destination';
import type { OutgoingMessage, TransactionOp } from '../broker';
import type { EmbeddedSubscription } from '../embedded/subscription';
import type { ConnectionPool, PoolSlot } from './connection-pool';
import { notTaken, poolSend } from './pool-send';
import { DirectSubscription } from './relay-subscriptions';

export interface RelayTransactionOptions {
  pool: ConnectionPool;
  fanOut: LocalFanOut;
  instanceId: string;
  /** Keeps the commit among the work stop() waits for. */
  track: <T>(promise: Promise<T>) => Promise<T>;
  /** A `/queue/` publish over AMQP, resolved once it is in its queue (the relay's publish path). */
  publishToQueue(target: Extract<MessageTarget, { kind: 'queue' }>, message: OutgoingMessage): Promise<void>;
}

interface LocalSettle {
  subscription: EmbeddedSubscription;
  op: 'ack' | 'nack';
  ackId: string;
}

export class RelayTransactions {
  private seq = 0;

  constructor(private readonly options: RelayTransactionOptions) {}

  async commit(ops: TransactionOp[]): Promise<void> {
    if (ops.length === 0) return;
    const { bySlot, local } = this.check(ops);
    const publishes = ops.filter((op) => op.op === 'publish');
    for (const op of publishes) {
      if (op.target.kind === 'queue')
        await this.options.track(this.options.publishToQueue(op.target, op.message));
    }
    const poolPublishes = publishes.filter((op) => op.target.kind !== 'queue');
    if (poolPublishes.length > 0) {
      const slot = bySlot.keys().next().value ?? this.options.pool.anyUp();
      bySlot.set(slot, [...poolPublishes, ...(bySlot.get(slot) ?? [])]);
    }
    for (const [slot, slotOps] of bySlot) await this.options.track(this.commitOn(slot, slotOps));
    // Lenient: an earlier cumulative op of this transaction may have covered a later id.
    for (const { subscription, op, ackId } of local) subscription.settle(ackId, op, true);
  }

  /** Checks everything before doing anything: a bad ack id fails the whole transaction. */
  private check(ops: TransactionOp[]): { bySlot: Map<PoolSlot, TransactionOp[]>; local: LocalSettle[] } {
    const bySlot = new Map<PoolSlot, TransactionOp[]>();
    const local: LocalSettle[] = [];
    for (const op of ops) {
      if (op.op === 'publish') continue;
      if (this.options.fanOut.owns(op.subscription)) {
        op.subscription.assertOutstanding(op.ackId);
        local.push({ subscription: op.subscription, op: op.op, ackId: op.ackId });
        continue;
      }
      if (!(op.subscription instanceof DirectSubscription)) {
        throw new ServiceError(
          'bad_request',
          `cannot ${op.op} in a transaction: that subscription needs no acknowledgement`,
        );
      }
      op.subscription.tagsFor(op.ackId);
      const slot = op.subscription.consumer.slot;
      bySlot.set(slot, [...(bySlot.get(slot) ?? []), op]);
    }
    return { bySlot, local };
  }

  private async commitOn(slot: PoolSlot, ops: TransactionOp[]): Promise<void> {
    const transaction = `${this.options.instanceId}-tx-${++this.seq}`;
    const generation = slot.generation;
    const sent: Promise<void>[] = [slot.send(frame('BEGIN', { transaction }), { generation })];
    for (const op of ops) {
      if (op.op === 'publish') {
        const { destination, headers } = poolSend(op.target, op.message);
        const send = frame('SEND', { ...headers, destination, transaction }, op.message.body);
        // The plugin answers a transactional SEND's receipt after COMMIT, once confirmed.
        sent.push(slot.send(send, { receipt: true, generation }));
      } else if (op.subscription instanceof DirectSubscription) {
        const tags =
          op.subscription.consumer.tagState(op.ackId) === 'outstanding'
            ? op.subscription.tagsFor(op.ackId)
            : [];
        sent.push(
          op.subscription.consumer.settle(tags, op.op === 'ack' ? 'ACK' : 'NACK', transaction, op.requeue),
        );
      }
    }
    sent.push(slot.send(frame('COMMIT', { transaction }), { receipt: true, generation }));
    try {
      await Promise.all(sent);
    } catch (err: unknown) {
      throw notTaken(`transaction ${transaction}`, err);
    }
  }
}
