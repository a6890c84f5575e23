/**
 * How the service's messages look on RabbitMQ's STOMP plugin, in both directions.
 *
 * Names. `/topic/<name>` is the plugin's own `/topic/<name>` (amq.topic, routing key <name>; names
 * cannot hold `*` or `#`, see destinations/destination.ts). `/queue/<name>` is the durable queue
 * `stomp-relay.queue.<name>`: prefixed, so that no client queue name can be one of the queues the
 * service uses internally (`stomp-relay.<instanceId>.…`; the instance id `queue` is refused for that
 * reason). Client SENDs only ever reach amq.topic and these queues; the user exchange, the
 * directory exchange and per-instance queues have no spelling a client can write.
 *
 * Headers. Application headers pass through, except those the plugin would act on (queue
 * arguments such as `x-expires`, AMQP properties it validates such as `expiration`, `priority`,
 * `user-id`, `reply-to`): one bad value there would make RabbitMQ close the shared pool connection
 * under every other session, or (reply-to) create queues. Our own headers are `x-relay-*`, stripped
 * from what clients send and from what they receive. The end-to-end message id travels as
 * `x-relay-message-id`, because the plugin puts its own `message-id` on MESSAGE frames.
 */
import type { MessageTarget } from '../../destinations/destination';
import { header, type Frame } from '../../stomp/frame';
import { allowedHeaderRecord, INTERNAL_HEADER_PREFIX, isRelayedHeader } from '../../messaging/header-policy';
import type { OutgoingMessage } from '../broker';

export const CLIENT_QUEUE_PREFIX = 'stomp-relay.queue.';
export const MESSAGE_ID_HEADER = 'x-relay-message-id';

/** CLIENT_QUEUE_TYPE: what a client `/queue/<name>` is declared as. */
export type ClientQueueType = 'classic' | 'quorum';

/**
 * Headers that make the plugin declare a client queue as `type`, on SUBSCRIBE and on SEND alike (both
 * declare it, and a declaration that disagrees with the queue's type is refused). Classic sends none:
 * what every queue declared before the setting existed was declared with.
 */
export function clientQueueHeaders(type: ClientQueueType): Record<string, string> {
  return type === 'classic' ? {} : { 'x-queue-type': type };
}

/** Broker destination for SEND and SUBSCRIBE of a topic or queue target. */
export function brokerDestination(target: Extract<MessageTarget, { kind: 'topic' | 'queue' }>): string {
  return target.kind === 'topic' ? `/topic/${target.name}` : `/queue/${CLIENT_QUEUE_PREFIX}${target.name}`;
}

/** Headers of a SEND carrying `message`, plus `extra` (our own, added last so nothing overrides them). */
export function sendHeaders(message: OutgoingMessage, extra: Record<string, string>): Record<string, string> {
  return {
    ...allowedHeaderRecord(Object.entries(message.headers), 'relay'),
    [MESSAGE_ID_HEADER]: message.id,
    ...extra,
  };
}

/**
 * Property headers RabbitMQ puts on a MESSAGE from the message's AMQP properties when the sender
 * set them: a subscriber sees them as a direct client of RabbitMQ would (they are refused as
 * application headers on the way in). Not `persistent`: every queue message is persistent by
 * default, so RabbitMQ would put it on nearly all of them (and writes delivery mode 1 as `1`).
 */
const DELIVERED_PROPERTIES = new Set(['priority', 'expiration', 'reply-to']);

/** What a MESSAGE frame from the broker carries, in the service's terms. */
export interface InboundMessage {
  messageId: string;
  /** Application headers only. */
  headers: Record<string, string>;
  body: Buffer;
  redelivered: boolean;
  /** The plugin's `ack` header: the delivery tag to settle with. */
  brokerAckId: string | undefined;
  /** Our own `x-relay-*` headers, for routing (e.g. the user destination). */
  internal: Record<string, string>;
}

export function readMessage(message: Frame): InboundMessage {
  // No prototype: a header named __proto__ or constructor is just a header here.
  const headers: Record<string, string> = Object.create(null) as Record<string, string>;
  const internal: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [name, value] of message.headers) {
    const lower = name.toLowerCase();
    if (lower.startsWith(INTERNAL_HEADER_PREFIX)) {
      if (!Object.hasOwn(internal, lower)) internal[lower] = value;
    } else if ((isRelayedHeader(name) || DELIVERED_PROPERTIES.has(lower)) && !Object.hasOwn(headers, name)) {
      headers[name] = value; // first occurrence wins (spec 1.2 §Repeated Header Entries)
    }
  }
  return {
    messageId: internal[MESSAGE_ID_HEADER] ?? header(message, 'message-id') ?? '',
    headers,
    body: message.body,
    redelivered: header(message, 'redelivered') === 'true',
    brokerAckId: header(message, 'ack'),
    internal,
  };
}
