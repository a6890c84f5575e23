/**
 * Which headers of a client SEND travel with the message. Those no message may carry in
 * (broker/reserved-headers.ts: STOMP control headers, what RabbitMQ acts on, our internals) are
 * dropped; so are names this service sets itself on MESSAGE frames, so a sender cannot forge them
 * (`sender` on chat, `user-name`), and credentials. Everything else passes through.
 */
import { isReservedHeader } from '../broker/reserved-headers';
import type { HeaderList } from '../stomp/frame';

const SERVICE_HEADERS = new Set(['user-name', 'sender', 'authorization']);

/** Prefixes a client never sets: ours, and RabbitMQ argument families in their broadest spelling. */
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
    if (
      isReservedHeader(lower) ||
      SERVICE_HEADERS.has(lower) ||
      RESERVED_PREFIXES.some((p) => lower.startsWith(p))
    ) {
      continue;
    }
    if (Object.hasOwn(out, name)) continue; // first occurrence wins (STOMP 1.2)
    if (++count > MAX_APPLICATION_HEADERS) break;
    out[name] = value;
  }
  return out;
}
