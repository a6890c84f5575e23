/**
 * Which headers of a client SEND travel with the message. STOMP control headers belong to one hop
 * and are dropped; so are names this service sets itself on MESSAGE frames, so a sender cannot
 * forge them (a `sender` header on chat, `user-name`, ...). Everything else passes through.
 */
import type { HeaderList } from '../stomp/frame';

const HOP_HEADERS = new Set([
  'destination',
  'receipt',
  'transaction',
  'content-length',
  'subscription',
  'message-id',
  'ack',
  'id',
  'redelivered',
  'persistent',
  'expires',
  'priority',
  'reply-to',
  'user-name',
  'sender',
  'session',
  'authorization',
  'passcode',
  'login',
]);

/** Internal header prefixes the broker side uses; clients never set them. */
const RESERVED_PREFIXES = [
  'x-stomp-relay',
  'x-relay',
  'x-queue',
  'x-message',
  'x-user',
  'x-dead',
  'x-max',
  'x-expires',
];

export const MAX_APPLICATION_HEADERS = 32;

export function applicationHeaders(headers: HeaderList): Record<string, string> {
  // No prototype: a header named __proto__ or constructor is just a header here.
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  let count = 0;
  for (const [name, value] of headers) {
    const lower = name.toLowerCase();
    if (HOP_HEADERS.has(lower) || RESERVED_PREFIXES.some((p) => lower.startsWith(p))) continue;
    if (Object.hasOwn(out, name)) continue; // first occurrence wins (STOMP 1.2)
    if (++count > MAX_APPLICATION_HEADERS) break;
    out[name] = value;
  }
  return out;
}
