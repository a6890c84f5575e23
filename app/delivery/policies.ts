/**
 * The delivery seam: sessions and `/app` handlers subscribe, publish and commit through it, and
 * never learn which delivery policy serves a destination. Each destination has exactly one:
 * - durable (durable-delivery.ts): the user destinations of INBOX_DESTINATIONS. A publish answers
 *   once the inbox has committed it, with the committed seq as the receipt's `position`; a
 *   subscription starts where its `resumeFrom` says (the device's cursor, or `inbox-since`) and
 *   its deliveries carry their `position`.
 * - best effort (the broker, bestEffortDelivery below): everything else. A publish reaches the
 *   subscriptions live when it is routed; there is no history, so no position and no resuming.
 * The first policy that serves a target takes it; best effort serves whatever the others do not.
 */
import type {
  Broker,
  BrokerSubscription,
  OutgoingMessage,
  PublishReceipt,
  SubscribeRequest,
  TransactionOp,
} from '../broker/broker';
import { formatTarget, type MessageTarget } from '../destinations/destination';
import { isServiceError, ServiceError } from '../errors';

export interface PublishOptions {
  /**
   * A retry with the same key answers the first publish's receipt and keeps nothing new (REST's
   * Idempotency-Key); for a policy that keeps history only, ignored by best effort.
   */
  idempotencyKey?: string;
}

/** One publish of several (publishMany). */
export interface PolicyPublish extends PublishOptions {
  target: MessageTarget;
  message: OutgoingMessage;
}

/** What one publish of several got: its receipt, or the error it alone was refused with. */
export type PublishOutcome = { ok: true; receipt: PublishReceipt } | { ok: false; error: ServiceError };

export interface DeliveryPolicy {
  /** For logs: 'durable', 'best effort'. */
  readonly name: string;
  /** Whether this policy keeps history (so a subscription may start after a position). */
  readonly keepsHistory: boolean;
  serves(target: MessageTarget): boolean;
  subscribe(request: SubscribeRequest): Promise<BrokerSubscription>;
  publish(target: MessageTarget, message: OutgoingMessage, options?: PublishOptions): Promise<PublishReceipt>;
  /**
   * Several publishes, each answered on its own in order, doing together what the policy can (the
   * durable one: one commit for all). Rejects only when none of them could be taken.
   */
  publishMany(pushes: PolicyPublish[]): Promise<PublishOutcome[]>;
  /** Whether this policy opened `subscription` (a transaction's ACK or NACK of it is settled here). */
  opened(subscription: BrokerSubscription): boolean;
  /** A transaction's work for this policy, in order, applied together where the policy can. */
  commit(ops: TransactionOp[]): Promise<void>;
}

/** A refusal as a ServiceError, an unexplained one as the broker not taking the message. */
function asServiceError(err: unknown): ServiceError {
  if (isServiceError(err)) return err;
  return new ServiceError('broker_unavailable', 'the broker did not take the message', { cause: err });
}

/** The broker as the policy of every destination no other policy claims. */
export function bestEffortDelivery(broker: Broker): DeliveryPolicy {
  return {
    name: 'best effort',
    keepsHistory: false,
    serves: () => true,
    subscribe: (request) => broker.subscribe(request),
    publish: (target, message) => broker.publish(target, message),
    publishMany: (pushes) =>
      Promise.all(
        pushes.map(({ target, message }) =>
          broker.publish(target, message).then(
            (receipt): PublishOutcome => ({ ok: true, receipt }),
            (err: unknown): PublishOutcome => ({ ok: false, error: asServiceError(err) }),
          ),
        ),
      ),
    opened: () => true,
    commit: (ops) => broker.commit(ops),
  };
}

export class DeliveryPolicies {
  constructor(
    /** Asked in order before best effort. */
    private readonly policies: readonly DeliveryPolicy[],
    private readonly bestEffort: DeliveryPolicy,
  ) {}

  /** The policy serving `target`. */
  policyFor(target: MessageTarget): DeliveryPolicy {
    return this.policies.find((policy) => policy.serves(target)) ?? this.bestEffort;
  }

  subscribe(request: SubscribeRequest): Promise<BrokerSubscription> {
    const policy = this.policyFor(request.target);
    if (request.resumeFrom?.kind === 'after' && !policy.keepsHistory) {
      // Only a durable destination has a history to start in: asking for one elsewhere is a
      // client's mistake, said as such rather than ignored.
      return Promise.reject(
        new ServiceError(
          'bad_frame',
          `inbox-since is for durable (inbox) destinations, not '${formatTarget(request.target)}'`,
        ),
      );
    }
    return policy.subscribe(request);
  }

  publish(
    target: MessageTarget,
    message: OutgoingMessage,
    options?: PublishOptions,
  ): Promise<PublishReceipt> {
    return this.policyFor(target).publish(target, message, options);
  }

  /**
   * Several publishes, answered in their order: each policy gets its own share at once (publishMany),
   * so the durable ones of a REST batch share one commit.
   */
  async publishMany(pushes: PolicyPublish[]): Promise<PublishOutcome[]> {
    const byPolicy = new Map<DeliveryPolicy, number[]>();
    pushes.forEach((push, index) => {
      const policy = this.policyFor(push.target);
      const mine = byPolicy.get(policy);
      if (mine) mine.push(index);
      else byPolicy.set(policy, [index]);
    });
    const outcomes = new Array<PublishOutcome>(pushes.length);
    await Promise.all(
      [...byPolicy].map(async ([policy, indexes]) => {
        const answered = await policy.publishMany(indexes.map((i) => pushes[i]));
        indexes.forEach((i, k) => (outcomes[i] = answered[k]));
      }),
    );
    return outcomes;
  }

  /**
   * A STOMP transaction's work: the best-effort part first, in one broker commit (all or nothing),
   * then each other policy's part in order. Publishes go to the policy serving their target, ACKs
   * and NACKs to the policy that opened their subscription.
   */
  async commit(ops: TransactionOp[]): Promise<void> {
    const owner = (op: TransactionOp): DeliveryPolicy =>
      op.op === 'publish'
        ? this.policyFor(op.target)
        : (this.policies.find((policy) => policy.opened(op.subscription)) ?? this.bestEffort);
    const byPolicy = new Map<DeliveryPolicy, TransactionOp[]>([[this.bestEffort, []]]);
    for (const op of ops) {
      const policy = owner(op);
      const mine = byPolicy.get(policy);
      if (mine) mine.push(op);
      else byPolicy.set(policy, [op]);
    }
    for (const [policy, mine] of byPolicy) if (mine.length > 0) await policy.commit(mine);
  }
}
