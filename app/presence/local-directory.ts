/**
 * The session directory of a single instance (the embedded broker's deployment): "every instance"
 * is this one, so a map by session id is the whole truth. Entries are copied in and out so a caller
 * holding a SessionInfo cannot change what another caller lists.
 */
import { byConnectedAt } from './directory';
import type { InstancePresence, LocalSessionListener, PresenceDirectory, SessionInfo } from './directory';

export class LocalSessionDirectory implements PresenceDirectory {
  readonly name = 'presence';
  private readonly entries = new Map<string, SessionInfo>();
  private announcement: () => unknown = () => undefined;

  constructor(
    private readonly instanceId: string,
    private readonly onLocalSession?: LocalSessionListener,
  ) {}

  async start(): Promise<void> {}

  /** Forgets every entry, telling the listener of each. */
  async stop(): Promise<void> {
    for (const sessionId of [...this.entries.keys()]) this.remove(sessionId);
  }

  upsert(info: SessionInfo): void {
    const previous = this.entries.get(info.sessionId);
    this.entries.set(info.sessionId, structuredClone(info));
    if (previous?.user !== info.user) {
      if (previous) this.onLocalSession?.closed(previous.user);
      this.onLocalSession?.opened(info.user);
    }
  }

  remove(sessionId: string): void {
    const previous = this.entries.get(sessionId);
    if (!previous) return;
    this.entries.delete(sessionId);
    this.onLocalSession?.closed(previous.user);
  }

  async list(user: string): Promise<SessionInfo[]> {
    return [...this.entries.values()]
      .filter((info) => info.user === user)
      .sort(byConnectedAt)
      .map((info) => structuredClone(info));
  }

  instances(): InstancePresence[] {
    return [
      {
        instance: this.instanceId,
        heardAgoMs: 0,
        sessions: [...this.entries.values()],
        announced: this.announcement(),
      },
    ];
  }

  setAnnouncement(provide: () => unknown): void {
    this.announcement = provide;
  }
}
