/**
 * Clients of a multi-instance cluster as a browser would hold them: @stomp/stompjs reconnecting
 * with a webSocketFactory that rotates through every instance URL, re-subscribing on each connect.
 * Each records when its subscription was confirmed (RECEIPT), on which instance, every push it got
 * (by id) and every ERROR; REST pushes go to a random instance. Shared by the instance fault test
 * and the soak, which account for every push accepted against the sessions that were there for it.
 */
import { Client, type IStompSocket } from '@stomp/stompjs';
import jwt from 'jsonwebtoken';
import WebSocket from 'ws';

export function clusterToken(secret: string, user: string, scope = ''): string {
  return jwt.sign({ scope }, secret, { algorithm: 'HS256', subject: user, expiresIn: 3600 });
}

export interface Connection {
  instance: string;
  /** When the server confirmed SUBSCRIBE (the session can receive from here on). */
  subscribedAt: number;
  /** When the connection ended (0 while open). */
  closedAt: number;
  /** Push ids received on this connection, in order. */
  received: number[];
}

let clientSeq = 0;

export class ReconnectingClient {
  readonly connections: Connection[] = [];
  readonly errors: string[] = [];
  private readonly client: Client;
  private current: Connection | undefined;

  constructor(
    readonly user: string,
    urls: string[],
    secret: string,
    readonly destination = '/user/queue/faults',
  ) {
    const id = clientSeq++;
    let next = id;
    this.client = new Client({
      webSocketFactory: () =>
        new WebSocket(`${urls[next++ % urls.length]!.replace(/^http/, 'ws')}/stomp`, [
          'v12.stomp',
        ]) as unknown as IStompSocket,
      connectHeaders: { Authorization: `Bearer ${clusterToken(secret, user)}` },
      reconnectDelay: 200,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      connectionTimeout: 3000,
      debug: () => undefined,
    });
    this.client.onConnect = (frame) => {
      const connection: Connection = {
        instance: frame.headers.instance ?? '?',
        subscribedAt: 0,
        closedAt: 0,
        received: [],
      };
      this.current = connection;
      this.connections.push(connection);
      const receipt = `sub-${id}-${this.connections.length}`;
      this.client.watchForReceipt(receipt, () => (connection.subscribedAt = Date.now()));
      this.client.subscribe(destination, (m) => connection.received.push(Number(m.body)), { receipt });
    };
    this.client.onStompError = (frame) => this.errors.push(frame.headers.message ?? '(no message)');
    this.client.onWebSocketClose = () => {
      if (this.current && this.current.closedAt === 0) this.current.closedAt = Date.now();
      this.current = undefined;
    };
  }

  start(): void {
    this.client.activate();
  }

  /** Connected right now (subscribed or not yet). */
  get connected(): boolean {
    return this.current !== undefined && this.current.closedAt === 0;
  }

  /** Subscribed and open right now. */
  get live(): Connection | undefined {
    return this.current && this.current.subscribedAt > 0 && this.current.closedAt === 0
      ? this.current
      : undefined;
  }

  async stop(): Promise<void> {
    await Promise.race([this.client.deactivate(), new Promise((r) => setTimeout(r, 2000))]);
    if (this.current && this.current.closedAt === 0) this.current.closedAt = Date.now();
    if (this.client.active) await this.client.deactivate({ force: true });
  }
}

export interface PushRecord {
  id: number;
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
  try {
    const res = await fetch(`${url}/api/users/${encodeURIComponent(user)}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ destination: '/queue/faults', body: id }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return -1;
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
  clients: ReconnectingClient[],
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
      for (const id of c.received) got.set(id, (got.get(id) ?? 0) + 1);
      for (const [id, n] of got) {
        if (n > 1) duplicated.push(`${client.user}[${ci}] push ${id} x${n}`);
        const push = byId.get(id);
        if (push && push.user !== client.user)
          misrouted.push(`${client.user}[${ci}] got push ${id} for ${push.user}`);
      }
      delivered += c.received.length;
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
