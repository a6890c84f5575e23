/**
 * The durable delivery policy (SPEC "The inbox"): the user destinations of INBOX_DESTINATIONS,
 * served through the inbox instead of best effort. Beside the broker's policy on the delivery seam
 * (policies.ts), so nothing above the seam branches on durability:
 * - publish: committed to the store first (inbox.push: the seq is assigned, then the live copy goes
 *   out); the receipt's `position` is that seq, `online` what the broker said of the live copy,
 *   `id` the id it is kept under (with an idempotency key, a retry's is the first push's). Many
 *   publishes (a REST batch's durable items) are one inbox.push: one commit.
 * - subscribe: a DurableSubscription, starting at the device's cursor or after `resumeFrom`'s
 *   position (`inbox-since`); its deliveries carry their `position`.
 * - ACK and NACK of its subscriptions, in a transaction too, are the inbox's (the device's
 *   progress), not the broker's.
 * With the inbox off, every call here is refused with `inbox_unavailable`: never best effort.
 */
import { assertOwnUserTarget, type Broker, type TransactionOp } from '../broker/broker';
import { formatTarget, type MessageTarget } from '../destinations/destination';
import { ServiceError } from '../errors';
import type { Inbox } from '../inbox/inbox';
import { DEFAULT_DEVICE } from '../inbox/validate';
import { DurableSubscription, parseSince } from './durable-subscription';
import type { DeliveryPolicy, PublishOutcome } from './policies';

type UserTarget = Extract<MessageTarget, { kind: 'user' }>;

function userTarget(target: MessageTarget): UserTarget {
  if (target.kind !== 'user')
    throw new ServiceError('internal', `the durable policy was handed ${formatTarget(target)}`);
  return target;
}

export function durableDelivery(inbox: Inbox, broker: Broker): DeliveryPolicy {
  const policy: DeliveryPolicy = {
    name: 'durable',
    keepsHistory: true,
    serves: (target) => target.kind === 'user' && inbox.isDurable(formatTarget(target)),

    async subscribe(request) {
      assertOwnUserTarget(request);
      const { resumeFrom } = request;
      return DurableSubscription.open(inbox, broker, {
        sessionId: request.sessionId,
        user: request.user,
        device: request.device ?? DEFAULT_DEVICE,
        destination: formatTarget(userTarget(request.target)),
        ackMode: request.ackMode,
        since: resumeFrom?.kind === 'after' ? parseSince(resumeFrom.position) : undefined,
        prefetch: request.prefetch,
        deliver: request.deliver,
        ended: request.ended,
      });
    },

    async publish(target, message, options) {
      const [outcome] = await policy.publishMany([{ target, message, ...options }]);
      if (!outcome.ok) throw outcome.error;
      return outcome.receipt;
    },

    async publishMany(pushes) {
      const results = await inbox.push(
        pushes.map(({ target, message, idempotencyKey }) => ({
          user: userTarget(target).user,
          destination: formatTarget(target),
          headers: message.headers,
          body: message.body,
          id: message.id,
          idempotencyKey,
        })),
      );
      return results.map((result, i): PublishOutcome => {
        if (!result.ok) return result;
        return {
          ok: true,
          receipt: {
            position: String(result.seq),
            ...(result.online === undefined ? {} : { online: result.online }),
            // An idempotent retry is kept under the first push's id, not the one it was given.
            ...(result.id === pushes[i].message.id ? {} : { id: result.id }),
          },
        };
      });
    },

    opened: (subscription) => subscription instanceof DurableSubscription,

    async commit(ops: TransactionOp[]) {
      // The store records each on its own: there is no all-or-nothing to keep with the broker's part.
      for (const op of ops) {
        if (op.op === 'publish') await policy.publish(op.target, op.message);
        else if (op.op === 'ack') await op.subscription.ack(op.ackId);
        else await op.subscription.nack(op.ackId);
      }
    },
  };
  return policy;
}
