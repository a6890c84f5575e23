/**
 * Presence: who is connected where. Every instance lists the sessions it holds; a directory answers
 * for all instances (GET /api/users/{user}/sessions, the cluster view). A part of its own beside the
 * Broker seam (as centrifuge keeps PresenceManager apart from Broker), composed in server.ts: the
 * RabbitMQ relay's directory only rides on the relay's AMQP connection (broker/create-broker.ts).
 * Implementations: local-directory.ts (one instance), amqp-directory.ts (instances over RabbitMQ).
 */
import type { Part } from '../start';

export interface SessionSubscriptionInfo {
  id: string;
  destination: string;
}

/** What GET /api/users/{user}/sessions lists, for every instance. */
export interface SessionInfo {
  sessionId: string;
  user: string;
  instance: string;
  transport: string;
  connectedAt: string;
  subscriptions: SessionSubscriptionInfo[];
}

/** One instance as the directory knows it: what it announced, and how recently. */
export interface InstancePresence {
  instance: string;
  /** Milliseconds since this instance last heard from it; 0 for itself. */
  heardAgoMs: number;
  /** Its live sessions, as announced; not copies, so read them, never change them. */
  sessions: readonly Readonly<SessionInfo>[];
  /**
   * What it attached to its announcements (setAnnouncement), exactly as received: unchecked, so its
   * reader must check it. Undefined when it attached nothing.
   */
  announced: unknown;
}

/** Live sessions across instances; implementations keep nothing another instance must ask for. */
export interface SessionDirectory {
  /** Adds or replaces the entry for `info.sessionId`. */
  upsert(info: SessionInfo): void;
  remove(sessionId: string): void;
  list(user: string): Promise<SessionInfo[]>;
  /** Every instance this one hears from (itself first), for the cluster view (app/admin/). */
  instances(): InstancePresence[];
  /**
   * A small JSON value carried on this instance's full announcements (the periodic snapshot),
   * asked for at each one; others see it as `announced`. The last call wins.
   */
  setAnnouncement(provide: () => unknown): void;
}

/**
 * Told when this instance's first entry for a session is added, and when it is removed: the broker
 * routes a user's pushes to this instance while it holds a session of theirs (Broker.localSessionOpened).
 */
export interface LocalSessionListener {
  opened(user: string): void;
  closed(user: string): void;
}

/** The directory as a part of the instance (start.ts): started after the broker, stopped before it. */
export interface PresenceDirectory extends SessionDirectory, Part {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** The order every SessionDirectory lists sessions in: by connectedAt, then a stable total order. */
export function byConnectedAt(a: SessionInfo, b: SessionInfo): number {
  const difference = Date.parse(a.connectedAt) - Date.parse(b.connectedAt);
  if (difference !== 0 && !Number.isNaN(difference)) return difference;
  if (a.connectedAt !== b.connectedAt) return a.connectedAt < b.connectedAt ? -1 : 1;
  return a.sessionId < b.sessionId ? -1 : a.sessionId > b.sessionId ? 1 : 0;
}
