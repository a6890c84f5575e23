/**
 * Header names a message may not carry in from a client or a REST caller, in one place: STOMP's own
 * frame headers (the service writes them itself), the ones RabbitMQ's STOMP plugin acts on when it
 * sees them on SEND (reply-to creates queues, user-id is checked, x-queue-* declare arguments), and
 * the service's internal `x-relay-*`. The session strips them from SENDs, REST refuses them, and the
 * relay drops them in both directions. Compared lower-case.
 */
const RESERVED = new Set([
  'destination',
  'receipt',
  'receipt-id',
  'transaction',
  'content-length',
  'message-id',
  'subscription',
  'ack',
  'id',
  'redelivered',
  'prefetch-count',
  'durable',
  'auto-delete',
  'exclusive',
  'persistent',
  'reply-to',
  'expiration',
  'expires',
  'priority',
  'user-id',
  'amqp-message-id',
  'timestamp',
  'host',
  'login',
  'passcode',
  'heart-beat',
  'accept-version',
  'version',
  'session',
  'server',
]);

/** Prefix of the service's own headers on the broker (message id, user destination, sender...). */
export const INTERNAL_HEADER_PREFIX = 'x-relay-';

/** `x-` headers RabbitMQ reads as queue arguments or consumer options, and our internal ones. */
const RESERVED_X =
  /^x-(queue-|max-|dead-letter-|message-ttl|expires|overflow|single-active|stream-|priority|cancel-on|relay-)/;

export function isReservedHeader(name: string): boolean {
  const lower = name.toLowerCase();
  return RESERVED.has(lower) || RESERVED_X.test(lower);
}
