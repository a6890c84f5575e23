/**
 * Which message headers may travel with a message, in one table, for every way a message enters:
 * a STOMP client's SEND, a REST caller's push, and the service's own messages crossing the broker
 * (to and from RabbitMQ, and to backends over AMQP). Application headers (content-type, custom
 * names) pass; the names in RULES do not, each for the reason it gives.
 *
 * Modes. The table is the same for all; what differs is who set the headers and what happens to a
 * refused one:
 * - `send`: a STOMP client. A refused header is stripped and the message goes on: STOMP has no way
 *   to refuse one header without an ERROR, which ends the whole connection, and client libraries
 *   add headers of their own (stompjs puts `content-length` on every SEND).
 * - `rest`: a REST caller. The push is refused (400) naming the header: the caller reads the answer
 *   and can fix the request.
 * - `relay`: the service's own messages across the broker and to backends. Names the service writes
 *   itself (`sender` on chat, `user-name`) pass; the rest of the table is dropped both ways.
 *
 * Names. Only an HTTP token (RFC 9110 §5.6.2: letters, digits and !#$%&'*+-.^_`|~) of at most 64
 * characters is a header name here; anything else is refused like a reserved name. The reason is
 * what client libraries do with a name before they look at it: @stomp/stompjs trims whitespace
 * (JavaScript's `\s`, Unicode spaces and U+FEFF included) from names, so `sender :x`, ` user-name:x`
 * or `redelivered\t:true` reach a stompjs subscriber as `sender`, `user-name`, `redelivered`;
 * Spring's StompDecoder and stomp.py unescape names (`\c` is `:`), and a STOMP 1.0 receiver reads a
 * raw `:` in a name as the end of the name. A token has no whitespace, no control or non-ASCII
 * character, no `:` and no `\`, so no library reads it as any name but itself. Reserved names are
 * compared case-insensitively (tokens are ASCII, so lower-casing cannot fold another letter into
 * one of them).
 */
import { ServiceError } from '../errors';
import { printable } from '../destinations/destination';

export type HeaderMode = 'send' | 'rest' | 'relay';

/** Prefix of the service's internal headers on the broker (message id, user destination, sender...). */
export const INTERNAL_HEADER_PREFIX = 'x-relay-';

/** Most application headers one message carries: extra ones from a SEND are dropped, REST refuses. */
export const MAX_APPLICATION_HEADERS = 32;

/** An HTTP token of 1 to 64 characters. */
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$/;

interface HeaderRule {
  /** Why no message may carry these names in. */
  why: string;
  /** Exact names (lower-case). */
  names?: readonly string[];
  /** Name prefixes (lower-case), in their broadest spelling: `x-queue` also covers `x-queued`. */
  prefixes?: readonly string[];
  /** The service writes these on messages itself: they pass in `relay` mode. */
  writtenByService?: true;
}

const RULES: readonly HeaderRule[] = [
  {
    why: 'a STOMP frame header the service or broker sets',
    names: [
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
      'message',
      'host',
      'login',
      'passcode',
      'heart-beat',
      'accept-version',
      'version',
      'session',
      'server',
    ],
  },
  {
    // One bad value here makes RabbitMQ close the connection the message came on: a shared pool
    // connection, under every other session. reply-to creates queues.
    why: "RabbitMQ's STOMP plugin acts on it",
    names: [
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
    ],
    prefixes: [
      'x-queue',
      'x-max',
      'x-dead',
      'x-message',
      'x-expires',
      'x-overflow',
      'x-single-active',
      'x-stream',
      'x-priority',
      'x-cancel-on',
    ],
  },
  {
    // RabbitMQ routes a message with CC/BCC to those routing keys as well (sender-selected
    // distribution), past the destination check; as a STOMP string it is refused with
    // PRECONDITION_FAILED, which closes the connection.
    why: 'RabbitMQ routes by it',
    names: ['cc', 'bcc'],
  },
  { why: 'a credential: never forwarded', names: ['authorization'] },
  { why: "the service's internal header", prefixes: [INTERNAL_HEADER_PREFIX.slice(0, -1)] },
  { why: "reads as the sender's identity", prefixes: ['x-user'] },
  {
    // inbox-seq orders a device's messages and inbox-prev-seq joins replay to live (app/inbox/):
    // a caller's value would reorder or drop durable messages.
    why: 'the inbox sets it',
    prefixes: ['inbox-'],
    writtenByService: true,
  },
  {
    why: 'the service sets it on the messages it writes',
    names: ['sender', 'user-name'],
    prefixes: ['x-stomp-relay'],
    writtenByService: true,
  },
];

function ruleFor(lowerName: string): HeaderRule | undefined {
  return RULES.find(
    (rule) =>
      rule.names?.includes(lowerName) === true ||
      rule.prefixes?.some((prefix) => lowerName.startsWith(prefix)) === true,
  );
}

/** Why `name` may not travel with a message in `mode`; undefined when it may. */
export function headerRefusal(name: string, mode: HeaderMode): string | undefined {
  if (!HEADER_NAME.test(name)) {
    return `header name '${printable(name)}' is not allowed: use 1-64 letters, digits and !#$%&'*+-.^_\`|~`;
  }
  const rule = ruleFor(name.toLowerCase());
  if (rule === undefined || (mode === 'relay' && rule.writtenByService)) return undefined;
  return `header '${name}' is reserved and cannot be set by a caller (${rule.why})`;
}

/** True when `name` travels with the service's own messages across the broker (`relay` mode). */
export function isRelayedHeader(name: string): boolean {
  return headerRefusal(name, 'relay') === undefined;
}

/**
 * The headers of `entries` that may travel in `mode`, first occurrence of a name winning (STOMP 1.2,
 * Repeated Header Entries). In `rest` mode a refused name or one header too many throws
 * ServiceError('bad_request') naming it; in the other modes it is dropped.
 */
export function allowedHeaders<V>(entries: Iterable<readonly [string, V]>, mode: HeaderMode): [string, V][] {
  const kept: [string, V][] = [];
  const seen = new Set<string>();
  for (const [name, value] of entries) {
    const refusal = headerRefusal(name, mode);
    if (refusal !== undefined) {
      if (mode === 'rest') throw new ServiceError('bad_request', refusal);
      continue;
    }
    if (seen.has(name)) continue;
    if (mode !== 'relay' && kept.length === MAX_APPLICATION_HEADERS) {
      if (mode === 'rest')
        throw new ServiceError('bad_request', `at most ${MAX_APPLICATION_HEADERS} headers`);
      break;
    }
    seen.add(name);
    kept.push([name, value]);
  }
  return kept;
}

/** allowedHeaders() as a record without a prototype: `__proto__` is just a header name there. */
export function allowedHeaderRecord(
  entries: Iterable<readonly [string, string]>,
  mode: HeaderMode,
): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [name, value] of allowedHeaders(entries, mode)) out[name] = value;
  return out;
}

/**
 * Message properties a STOMP SEND to a `/queue/` may set (issue 16.6). They stay reserved as
 * headers (RULES above: a bad value there would close a shared broker connection), and are read
 * here instead, checked, and handed to the broker as AMQP properties, so none is dropped silently:
 * - `priority`: 0-255 (RabbitMQ orders by it in a queue declared with `x-max-priority`).
 * - `expiration`: RabbitMQ's per-message TTL, milliseconds from now.
 * - `expires`: ActiveMQ's and Spring's absolute expiry, milliseconds since the epoch (0: never).
 *   Turned into a TTL; one already past expires at once.
 * - `persistent`: `true` (the default for queues) or `false`.
 * - `reply-to`: where a reply goes (a destination the sender can subscribe to); kept as given.
 */
export interface MessageProperties {
  priority?: number;
  /** Per-message TTL in ms. */
  ttlMs?: number;
  persistent?: boolean;
  replyTo?: string;
}

export const PROPERTY_HEADERS = ['priority', 'expiration', 'expires', 'persistent', 'reply-to'] as const;

/** Largest TTL RabbitMQ takes (its expiration is an unsigned 32-bit number of ms). */
const MAX_TTL_MS = 2 ** 32 - 1;

function badProperty(name: string, value: string, expected: string): ServiceError {
  return new ServiceError('bad_frame', `header '${name}:${printable(value)}' is not valid: ${expected}`);
}

/** The properties `entries` set (first occurrence of a name wins); throws bad_frame on a bad value. */
export function messageProperties(
  entries: Iterable<readonly [string, string]>,
  now: number = Date.now(),
): MessageProperties {
  const first = new Map<string, string>();
  for (const [name, value] of entries) {
    const lower = name.toLowerCase();
    if ((PROPERTY_HEADERS as readonly string[]).includes(lower) && !first.has(lower)) first.set(lower, value);
  }
  const out: MessageProperties = {};
  const priority = first.get('priority');
  if (priority !== undefined) {
    if (!/^\d{1,3}$/.test(priority) || Number(priority) > 255)
      throw badProperty('priority', priority, 'a whole number from 0 to 255');
    out.priority = Number(priority);
  }
  const expiration = first.get('expiration');
  if (expiration !== undefined) {
    if (!/^\d{1,10}$/.test(expiration) || Number(expiration) > MAX_TTL_MS)
      throw badProperty('expiration', expiration, `milliseconds from now, 0 to ${MAX_TTL_MS}`);
    out.ttlMs = Number(expiration);
  }
  const expires = first.get('expires');
  if (expires !== undefined) {
    if (!/^\d{1,16}$/.test(expires))
      throw badProperty('expires', expires, 'a time in milliseconds since 1970 (0: never)');
    const at = Number(expires);
    if (at !== 0) {
      const ttl = Math.max(0, at - now);
      out.ttlMs = Math.min(out.ttlMs ?? MAX_TTL_MS, ttl, MAX_TTL_MS);
    }
  }
  const persistent = first.get('persistent');
  if (persistent !== undefined) {
    if (persistent !== 'true' && persistent !== 'false')
      throw badProperty('persistent', persistent, 'true or false');
    out.persistent = persistent === 'true';
  }
  const replyTo = first.get('reply-to');
  if (replyTo !== undefined) {
    if (replyTo.length === 0 || replyTo.length > 256 || /[^\x21-\x7e]/.test(replyTo))
      throw badProperty('reply-to', replyTo, 'a destination of 1-256 printable characters');
    out.replyTo = replyTo;
  }
  return out;
}
