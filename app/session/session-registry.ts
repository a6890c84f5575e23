/**
 * The sessions live on this instance: per-user counts for the session limit, the set SIGTERM drains,
 * the transport gauge, and the bridge to the cross-instance SessionDirectory.
 */
import type { SessionDirectory, SessionInfo } from '../presence/directory';
import type { Metrics } from '../observability/metrics';

export interface RegisteredSession {
  readonly id: string;
  /** Ends the session with an ERROR carrying `message` (drain, shutdown). */
  terminate(code: 'draining', message: string): void;
}

export class SessionRegistry {
  /**
   * What remove() needs of each session, not its SessionInfo: the directory keeps the one copy of
   * that (a second one here cost every idle session its info object, list and date string again).
   */
  private readonly sessions = new Map<
    string,
    { session: RegisteredSession; user: string; transport: string }
  >();
  private readonly perUser = new Map<string, number>();

  constructor(
    private readonly directory: SessionDirectory,
    private readonly metrics: Metrics,
  ) {}

  countForUser(user: string): number {
    return this.perUser.get(user) ?? 0;
  }

  add(session: RegisteredSession, info: SessionInfo): void {
    this.sessions.set(session.id, { session, user: info.user, transport: info.transport });
    this.perUser.set(info.user, this.countForUser(info.user) + 1);
    this.metrics.sessions.inc({ transport: info.transport });
    this.directory.upsert(info);
  }

  /** The session's subscriptions changed: the directory shows the current list. */
  update(info: SessionInfo): void {
    if (!this.sessions.has(info.sessionId)) return;
    this.directory.upsert(info);
  }

  remove(sessionId: string): void {
    const entry = this.sessions.get(sessionId);
    if (!entry) return;
    this.sessions.delete(sessionId);
    const left = this.countForUser(entry.user) - 1;
    if (left > 0) this.perUser.set(entry.user, left);
    else this.perUser.delete(entry.user);
    this.metrics.sessions.dec({ transport: entry.transport });
    this.directory.remove(sessionId);
  }

  get size(): number {
    return this.sessions.size;
  }

  all(): RegisteredSession[] {
    return [...this.sessions.values()].map((e) => e.session);
  }
}
