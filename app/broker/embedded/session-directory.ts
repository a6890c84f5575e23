/**
 * The embedded broker's session directory: with a single instance, "every instance" is this one,
 * so a map by session id is the whole truth. Entries are copied in and out so a caller holding a
 * SessionInfo cannot change what another caller lists.
 */
import { byConnectedAt, type SessionDirectory, type SessionInfo } from '../broker';

export class LocalSessionDirectory implements SessionDirectory {
  private readonly entries = new Map<string, SessionInfo>();

  upsert(info: SessionInfo): void {
    this.entries.set(info.sessionId, structuredClone(info));
  }

  remove(sessionId: string): void {
    this.entries.delete(sessionId);
  }

  async list(user: string): Promise<SessionInfo[]> {
    return [...this.entries.values()]
      .filter((info) => info.user === user)
      .sort(byConnectedAt)
      .map((info) => structuredClone(info));
  }

  clear(): void {
    this.entries.clear();
  }
}
