/**
 * The session directory's wire format (session-directory.ts): the messages instances fanout to each
 * other, and their parsing. Everything from the network is checked before it is believed; a message
 * that does not parse is dropped whole, except an oversized `announced`, which is dropped alone.
 */
import type { SessionInfo } from './directory';

export type DirectoryMessage =
  | { v: 1; type: 'hello' | 'snapshot'; from: string; sessions: SessionInfo[]; announced?: unknown }
  | { v: 1; type: 'upsert'; from: string; session: SessionInfo }
  | { v: 1; type: 'remove'; from: string; sessionId: string }
  | { v: 1; type: 'gone'; from: string };

/**
 * Largest `announced` value kept from another instance, as JSON text: a few counters fit many times
 * over, and a peer sending more cannot make every instance hold it.
 */
export const MAX_ANNOUNCED_CHARS = 16 * 1024;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isString(v: unknown): v is string {
  return typeof v === 'string';
}

function parseSession(v: unknown): SessionInfo | undefined {
  if (!isRecord(v)) return undefined;
  const { sessionId, user, instance, transport, connectedAt, subscriptions } = v;
  if (!isString(sessionId) || !isString(user) || !isString(instance)) return undefined;
  if (!isString(transport) || !isString(connectedAt) || !Array.isArray(subscriptions)) return undefined;
  const subs: SessionInfo['subscriptions'] = [];
  for (const s of subscriptions) {
    if (!isRecord(s) || !isString(s.id) || !isString(s.destination)) return undefined;
    subs.push({ id: s.id, destination: s.destination });
  }
  return { sessionId, user, instance, transport, connectedAt, subscriptions: subs };
}

/** The announced value if its JSON is small enough to keep, else undefined (the sessions still count). */
function boundedAnnouncement(value: unknown): unknown {
  if (value === undefined) return undefined;
  return JSON.stringify(value).length <= MAX_ANNOUNCED_CHARS ? value : undefined;
}

export function parseMessage(body: unknown): DirectoryMessage | undefined {
  let value = body;
  if (Buffer.isBuffer(body) || typeof body === 'string') {
    try {
      value = JSON.parse(body.toString());
    } catch {
      return undefined;
    }
  }
  if (!isRecord(value) || value.v !== 1 || !isString(value.from) || value.from === '') return undefined;
  const from = value.from;
  switch (value.type) {
    case 'hello':
    case 'snapshot': {
      if (!Array.isArray(value.sessions)) return undefined;
      const sessions = value.sessions.map(parseSession);
      if (!sessions.every((s): s is SessionInfo => s !== undefined)) return undefined;
      return { v: 1, type: value.type, from, sessions, announced: boundedAnnouncement(value.announced) };
    }
    case 'upsert': {
      const session = parseSession(value.session);
      return session ? { v: 1, type: 'upsert', from, session } : undefined;
    }
    case 'remove':
      return isString(value.sessionId)
        ? { v: 1, type: 'remove', from, sessionId: value.sessionId }
        : undefined;
    case 'gone':
      return { v: 1, type: 'gone', from };
    default:
      return undefined;
  }
}
