/**
 * What a destination string means. Parsing is strict on purpose: a destination a client sends is
 * later turned into broker names (RabbitMQ routing keys, queue names), so anything that could be read
 * two ways there — wildcards, path tricks, percent-encoding, control characters — is refused here,
 * before authorization sees it. One canonical spelling per destination means "no spelling lets
 * another user in" is a property of this parser rather than of every check downstream.
 */
import { ServiceError } from '../errors';

/** Where a message goes or comes from, once the client's spelling has been understood. */
export type MessageTarget =
  | { kind: 'topic'; name: string }
  | { kind: 'queue'; name: string }
  /** A user's private destination: `/user/queue/<name>` or `/user/topic/<name>` of `user`. */
  | { kind: 'user'; user: string; type: 'queue' | 'topic'; name: string };

export type Destination = MessageTarget | { kind: 'app'; route: string };

/** Names: letters, digits and `_ - . : @`; no wildcards (`*`, `#`), no `/`, no `%`. */
const NAME = /^[A-Za-z0-9_\-.:@]{1,200}$/;
/** App routes may have several segments (`/app/chat/room1`, `/app/orders/create`). */
const ROUTE = /^[A-Za-z0-9_\-.:@]{1,100}(\/[A-Za-z0-9_\-.:@]{1,100}){0,7}$/;

function badName(destination: string, why: string): ServiceError {
  return new ServiceError(
    'bad_destination',
    `destination '${printable(destination)}' is not allowed: ${why}`,
  );
}

/** Destinations end up in ERROR messages: keep them printable and short. */
export function printable(s: string): string {
  const clean = s.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 120 ? `${clean.slice(0, 120)}...` : clean;
}

function checkName(destination: string, name: string): string {
  if (!NAME.test(name) || name.startsWith('.') || name.endsWith('.') || name.includes('..')) {
    throw badName(destination, 'names use letters, digits and _ - . : @ (no wildcards or empty words)');
  }
  return name;
}

/**
 * Parses a destination as a client wrote it. `user` is the session's user: `/user/queue/x` always
 * means *this* user's queue; there is no spelling that names another user's (`/user/bob/queue/x`
 * is refused, unlike Spring where it is a send-to-user form).
 */
export function parseDestination(destination: string, user: string): Destination {
  if (destination.length === 0) throw badName(destination, 'it is empty');
  if (destination.length > 256) throw badName(destination, 'it is longer than 256 characters');
  const topic = /^\/topic\/(.*)$/.exec(destination);
  if (topic) return { kind: 'topic', name: checkName(destination, topic[1]) };
  const queue = /^\/queue\/(.*)$/.exec(destination);
  if (queue) return { kind: 'queue', name: checkName(destination, queue[1]) };
  const own = /^\/user\/(queue|topic)\/(.*)$/.exec(destination);
  if (own) {
    return { kind: 'user', user, type: own[1] as 'queue' | 'topic', name: checkName(destination, own[2]) };
  }
  if (destination.startsWith('/user/')) {
    throw badName(
      destination,
      'user destinations are /user/queue/<name> or /user/topic/<name> of your own user',
    );
  }
  const app = /^\/app\/(.*)$/.exec(destination);
  if (app) {
    if (!ROUTE.test(app[1])) throw badName(destination, 'app routes are /app/<segment>[/<segment>...]');
    return { kind: 'app', route: app[1] };
  }
  throw badName(
    destination,
    'only /topic/, /queue/, /user/queue/, /user/topic/ and /app/ destinations exist here',
  );
}

/**
 * The destination as a REST caller names it for a user push (`/queue/greetings` or
 * `/user/queue/greetings`, as Spring's convertAndSendToUser accepts both).
 */
export function parseUserPushDestination(destination: string, user: string): MessageTarget {
  const own =
    /^\/user\/(queue|topic)\/(.*)$/.exec(destination) ?? /^\/(queue|topic)\/(.*)$/.exec(destination);
  // Checked as the caller wrote it, so an error names their spelling, not a /user-prefixed one.
  if (!own) throw badName(destination, 'a user push goes to /queue/<name> or /topic/<name>');
  return { kind: 'user', user, type: own[1] as 'queue' | 'topic', name: checkName(destination, own[2]) };
}

/** The destination string a subscriber of `target` sees on MESSAGE frames. */
export function formatTarget(target: MessageTarget): string {
  switch (target.kind) {
    case 'topic':
      return `/topic/${target.name}`;
    case 'queue':
      return `/queue/${target.name}`;
    case 'user':
      return `/user/${target.type}/${target.name}`;
  }
}
