/**
 * Accounting for pushes while instances come and go: REST pushes to random instances, each recorded
 * with its answer, held against what ReconnectingStomp clients (test/support/stomp-clients.ts) got
 * on each of their connections. Shared by the instance fault test and the soak.
 */
import type { ReconnectingStomp } from '../../support/stomp-clients';

export interface PushRecord {
  id: number;
  /** The message id the 202 gave (pushes that were answered 202 only). */
  messageId?: string;
  user: string;
  instanceUrl: string;
  startedAt: number;
  endedAt: number;
  status: number;
}

/** POST /api/users/{user}/messages with the push id as the body; -1 when nothing answered. */
export async function pushTo(
  url: string,
  token: string,
  user: string,
  id: number,
  timeoutMs = 10_000,
): Promise<number> {
  return (await pushWithAnswer(url, token, user, id, timeoutMs)).status;
}

/** pushTo(), with the message id of a 202 and the `online` it said. */
export async function pushWithAnswer(
  url: string,
  token: string,
  user: string,
  id: number,
  timeoutMs = 10_000,
): Promise<{ status: number; messageId?: string; online?: boolean }> {
  try {
    const res = await fetch(`${url}/api/users/${encodeURIComponent(user)}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ destination: '/queue/faults', body: id }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    if (res.status !== 202) return { status: res.status };
    const body = JSON.parse(text) as { id?: string; online?: boolean };
    return { status: res.status, messageId: body.id, online: body.online };
  } catch {
    return { status: -1 };
  }
}

/**
 * The accounting rule: a push is owed to every connection of its user that was subscribed before
 * the push was sent and still open `graceMs` after the 202. Lost: owed and not received.
 * Duplicated: received more than once on one connection. Misrouted: received by another user.
 * Only pushes sent from `since` and answered by `until` count: while pushes go on, one answered a
 * moment before the count may still be on its way to its subscribers.
 */
export function account(
  pushes: PushRecord[],
  clients: readonly ReconnectingStomp[],
  graceMs: number,
  since = 0,
  until = Infinity,
): {
  accepted: number;
  owed: number;
  delivered: number;
  lost: string[];
  duplicated: string[];
  misrouted: string[];
} {
  const accepted = pushes.filter((p) => p.status === 202 && p.startedAt >= since && p.endedAt <= until);
  const byId = new Map(pushes.map((p) => [p.id, p]));
  const lost: string[] = [];
  const duplicated: string[] = [];
  const misrouted: string[] = [];
  let owed = 0;
  let delivered = 0;
  for (const client of clients) {
    for (const [ci, c] of client.connections.entries()) {
      const got = new Map<number, number>();
      for (const id of c.bodies.map(Number)) got.set(id, (got.get(id) ?? 0) + 1);
      for (const [id, n] of got) {
        if (n > 1) duplicated.push(`${client.user}[${ci}] push ${id} x${n}`);
        const push = byId.get(id);
        if (push && push.user !== client.user)
          misrouted.push(`${client.user}[${ci}] got push ${id} for ${push.user}`);
      }
      delivered += c.bodies.length;
      for (const p of accepted) {
        if (p.user !== client.user) continue;
        const there =
          c.subscribedAt > 0 &&
          c.subscribedAt < p.startedAt &&
          (c.closedAt === 0 || c.closedAt > p.endedAt + graceMs);
        if (!there) continue;
        owed++;
        if (!got.has(p.id))
          lost.push(`${client.user}[${ci}@${c.instance}] push ${p.id} (202 from ${p.instanceUrl})`);
      }
    }
  }
  return { accepted: accepted.length, owed, delivered, lost, duplicated, misrouted };
}
