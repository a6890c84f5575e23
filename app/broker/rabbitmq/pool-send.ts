/**
 * What a publish sent over the STOMP pool is on the wire: its destination and SEND headers. Topic
 * publishes go this way, and so do the topic and user publishes inside a transaction (a plugin
 * transaction lives on one connection). `/queue/` publishes never do: they go over AMQP, in a
 * transaction too (client-queues.ts, relay-transactions.ts).
 */
import { ServiceError } from '../../errors';
import type { MessageTarget } from '../../destinations/destination';
import type { OutgoingMessage } from '../broker';
import { CONTENT_TYPE_HEADER, REPLY_TO_HEADER, USER_DESTINATION_HEADER } from './amqp-delivery';
import { EXCHANGES, userRoutingKey } from './topology';
import { brokerDestination, sendHeaders } from './wire';

export interface PoolSend {
  destination: string;
  headers: Record<string, string>;
}

/** The STOMP destination and SEND headers of a publish over the pool. */
export function poolSend(target: MessageTarget, message: OutgoingMessage): PoolSend {
  if (target.kind === 'queue') throw new Error('a /queue/ message is published over AMQP, never the pool');
  // Topic and user messages are read over AMQP (amqp-delivery.ts): the content type travels as a
  // header of ours, so that no AMQP client on the way decodes the body by its content_type.
  const headers: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [name, value] of Object.entries(sendHeaders(message, {}))) {
    if (name.toLowerCase() === 'content-type') headers[CONTENT_TYPE_HEADER] ??= value;
    else headers[name] = value;
  }
  const replyTo = message.properties?.replyTo;
  if (replyTo !== undefined) headers[REPLY_TO_HEADER] = replyTo;
  if (target.kind === 'topic') return { destination: brokerDestination(target), headers };
  return {
    destination: `/exchange/${EXCHANGES.user}/${userRoutingKey(target.user)}`,
    headers: { ...headers, [USER_DESTINATION_HEADER]: `${target.type}/${target.name}` },
  };
}

/** The one error a caller sees when the broker did not take something: broker_unavailable, or the broker's own. */
export function notTaken(what: string, err: unknown): ServiceError {
  if (err instanceof ServiceError && err.code !== 'broker_unavailable') return err;
  const why = err instanceof Error ? err.message : String(err);
  return new ServiceError('broker_unavailable', `the broker did not take ${what}: ${why}`, { cause: err });
}
