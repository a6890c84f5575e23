/**
 * Where a REST push goes, from the destination its caller wrote: the single calls and the batch
 * items read destinations the same way, so an item is refused for the same reason as its call.
 */
import {
  parseDestination,
  parseUserPushDestination,
  printable,
  type MessageTarget,
} from '../destinations/destination';
import { ServiceError } from '../errors';
import type { Principal } from './passport';

/** A user push: `/queue/<name>` or `/topic/<name>` (or the `/user/...` spelling) of `user`. */
export function userTarget(destination: string, user: string): MessageTarget {
  return parseUserPushDestination(destination, user);
}

/** POST /api/messages publishes to shared destinations only; user pushes have their own URL. */
export function sharedTarget(destination: string, caller: Principal): MessageTarget {
  if (destination.startsWith('/user/')) {
    throw new ServiceError(
      'bad_destination',
      `destination '${printable(destination)}' is a user destination: push to a user with POST /api/users/{user}/messages`,
    );
  }
  const parsed = parseDestination(destination, caller.user);
  if (parsed.kind === 'app') {
    throw new ServiceError(
      'bad_destination',
      `destination '${printable(destination)}' is an application destination for STOMP clients; ` +
        'publish to /topic/<name> or /queue/<name>, or push to a user with POST /api/users/{user}/messages',
    );
  }
  if (parsed.kind === 'user') {
    throw new ServiceError('bad_destination', 'push to a user with POST /api/users/{user}/messages');
  }
  return parsed;
}
