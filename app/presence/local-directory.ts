/**
 * The embedded broker's session directory: with a single instance, "every instance" is this one,
 * so a map by session id is the whole truth. Entries are copied in and out so a caller holding a
 * SessionInfo cannot change what another caller lists.
 */
import { byConnectedAt, type InstancePresence, type SessionDirectory, type SessionInfo } from './directory';

export class LocalSessionDirectory implements SessionDirectory {
  private readonly entries = new Map<string, SessionInfo>();
  /** Sessions per user, so a push can say whether its user is online without a scan. */
  private readonly perUser = new Map<string, number>();
  private announcement: () => unknown = () => undefined;

  constructor(private readonly instanceId: string) {}

  upsert(info: SessionInfo): void {
    const previous = this.entries.get(info.sessionId);
    if (previous) this.forgetUser(previous.user);
    this.entries.set(info.sessionId, structuredClone(info));
    this.perUser.set(info.user, (this.perUser.get(info.user) ?? 0) + 1);
  }

  remove(sessionId: string): void {
    const previous = this.entries.get(sessionId);
    if (!previous) return;
    this.entries.delete(sessionId);
    this.forgetUser(previous.user);
  }

  async list(user: string): Promise<SessionInfo[]> {
    return [...this.entries.values()]
      .filter((info) => info.user === user)
      .sort(byConnectedAt)
      .map((info) => structuredClone(info));
  }

  hasUser(user: string): boolean {
    return this.perUser.has(user);
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

  clear(): void {
    this.entries.clear();
    this.perUser.clear();
  }

  private forgetUser(user: string): void {
    const left = (this.perUser.get(user) ?? 1) - 1;
    if (left > 0) this.perUser.set(user, left);
    else this.perUser.delete(user);
  }
}
