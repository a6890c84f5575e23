/**
 * Which user destinations keep their pushes (INBOX_DESTINATIONS). Patterns are read by the
 * authorization rules' matcher (`*` one name word, `**` anything), so both settings mean the same
 * by the same spelling. Destinations are compared as the client subscribes to them
 * (`/user/queue/inbox`), after destination.ts has made that spelling canonical.
 */
import { Authorizer } from '../destinations/authorization';

export const DURABLE_PREFIXES = ['/user/queue/', '/user/topic/'] as const;

export class DurableDestinations {
  private readonly matcher: Authorizer;

  constructor(readonly patterns: readonly string[]) {
    this.matcher = new Authorizer(
      { subscribe: patterns.map((destination) => ({ destination, users: '*' })), send: [] },
      'INBOX_DESTINATIONS',
    );
  }

  isDurable(destination: string): boolean {
    return this.matcher.canSubscribe('', destination);
  }
}
