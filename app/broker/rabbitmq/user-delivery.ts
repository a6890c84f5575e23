/**
 * User destinations through the broker. The one seam for them: a later durable per-user inbox
 * changes this module, not the broker.
 *
 * A push to (user U, /user/<type>/<name>) is published ONCE to the direct exchange
 * `stomp-relay.user` with routing key userRoutingKey(U) (escaped so that no user name collides with
 * or wildcards into another's), carrying `<type>/<name>` in `x-relay-user-destination`. Every
 * instance holding sessions of U holds one broker subscription on its queue
 * `stomp-relay.<instanceId>.user.<key>` (auto-delete: it goes with the subscription) bound to that
 * key, and hands each message to U's local subscriptions whose destination matches. So U's
 * sessions on every instance get it, whatever the number of instances, and nobody else's do.
 */
import type { MessageTarget } from '../../destinations/destination';
import { EXCHANGES, instanceQueueName, QUEUE_ROLES, userRoutingKey } from './topology';

export type UserTarget = Extract<MessageTarget, { kind: 'user' }>;

export const USER_DESTINATION_HEADER = 'x-relay-user-destination';

/** Where and how a push to `target` is published. */
export function userPublish(target: UserTarget): { destination: string; headers: Record<string, string> } {
  return {
    destination: `/exchange/${EXCHANGES.user}/${userRoutingKey(target.user)}`,
    headers: { [USER_DESTINATION_HEADER]: `${target.type}/${target.name}` },
  };
}

/**
 * The broker subscription carrying `user`'s pushes to this instance. `suffix` makes a private
 * queue for one client-ack subscription (`~` cannot appear in a routing key, so no clash).
 */
export function userSubscription(
  instanceId: string,
  user: string,
  suffix?: string,
): { key: string; destination: string; queueName: string } {
  const routingKey = userRoutingKey(user);
  const name = suffix === undefined ? routingKey : `${routingKey}~${suffix}`;
  return {
    key: `user:${routingKey}`,
    destination: `/exchange/${EXCHANGES.user}/${routingKey}`,
    queueName: instanceQueueName(instanceId, QUEUE_ROLES.user, name),
  };
}

/** Whether a message that arrived on U's queue is for `target` (a subscription of U). */
export function isForUserTarget(internal: Record<string, string>, target: UserTarget): boolean {
  return internal[USER_DESTINATION_HEADER] === `${target.type}/${target.name}`;
}
