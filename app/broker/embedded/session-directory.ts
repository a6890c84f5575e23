/**
 * The embedded broker's session directory: with a single instance, "every instance" is this one,
 * so a map by session id is the whole truth. Entries are copied in and out so a caller holding a
 * SessionInfo cannot change what another caller lists.
 */
import type { SessionDirectory, SessionInfo } from '../broker';

function byConnectedAt(a: SessionInfo, b: SessionInfo): number {
  const difference = Date.parse(a.connectedAt) - Date.parse(b.connectedAt);
  if (difference !== 0 && !Number.isNaN(difference)) return difference;
  // Same instant or unparsable: fall back to a stable, total order.
  if (a.connectedAt !== b.connectedAt) return a.connectedAt < b.connectedAt ? -1 : 1;
  return a.sessionId < b.sessionId ? -1 : a.sessionId > b.sessionId ? 1 : 0;
}

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
