/**
 * @stomp/stompjs clients and REST calls against child-process instances (test/support/instances.ts).
 * test/support/stomp-clients.ts does the same for in-process services, but it takes a
 * RunningService (URL and token issuer from the service object); here all we have of an instance is
 * its URL and the shared secret (the RECEIPT wait and the close are shared with it). Clients never reconnect (reconnectDelay 0), so a test can tell
 * "stayed connected" from "came back": `closes` counts socket closes, `sessionId` is from CONNECTED.
 */
import { Client, type IFrame, type IMessage, type IStompSocket } from '@stomp/stompjs';
import SockJS from 'sockjs-client';
import WebSocket from 'ws';
import type { Instance } from '../../support/instances';
import { closeClient, withReceipt } from '../../support/stomp-clients';
import { waitFor } from '../../support/wait';

export type Transport = 'websocket' | 'sockjs';

export interface Subscription {
  readonly destination: string;
  readonly messages: IMessage[];
  bodies(): string[];
  waitForCount(count: number, timeoutMs?: number): Promise<void>;
}

export interface ClusterClient {
  readonly user: string;
  readonly instance: Instance;
  readonly transport: Transport;
  /** The `session` header of CONNECTED. */
  readonly sessionId: string;
  /** The `instance` header of CONNECTED. */
  readonly connectedTo: string;
  /** Socket closes seen since CONNECTED (0 while the client stays connected). */
  readonly closes: number;
  readonly errors: IFrame[];
  subscribe(destination: string): Promise<Subscription>;
  publishWithReceipt(destination: string, body: string): Promise<void>;
  close(): Promise<void>;
}

function socketFactory(instance: Instance, transport: Transport): () => IStompSocket {
  if (transport === 'websocket') {
    return () => new WebSocket(`${instance.wsUrl}/stomp`, ['v12.stomp']) as unknown as IStompSocket;
  }
  return () => new SockJS(`${instance.url}/ws`, null, { timeout: 5000 }) as unknown as IStompSocket;
}

/** Connects `user` to `instance`; resolves on CONNECTED, rejects with the server's ERROR message. */
export async function connectClient(
  instance: Instance,
  user: string,
  transport: Transport = 'websocket',
  timeoutMs = 5000,
): Promise<ClusterClient> {
  const errors: IFrame[] = [];
  let closes = 0;
  const client = new Client({
    webSocketFactory: socketFactory(instance, transport),
    connectHeaders: { Authorization: `Bearer ${instance.token(user)}` },
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    connectionTimeout: timeoutMs,
    debug: () => undefined,
  });
  const connected = await new Promise<IFrame>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${user}@${instance.id}: no CONNECTED`)), timeoutMs);
    client.onConnect = (frame) => {
      clearTimeout(timer);
      resolve(frame);
    };
    client.onStompError = (frame) => {
      clearTimeout(timer);
      reject(new Error(`${user}@${instance.id}: ERROR ${frame.headers.message ?? ''}`));
    };
    client.onWebSocketClose = () => {
      clearTimeout(timer);
      reject(new Error(`${user}@${instance.id}: socket closed before CONNECTED`));
    };
    client.activate();
  }).catch(async (err: unknown) => {
    await client.deactivate({ force: true });
    throw err;
  });
  client.onStompError = (frame) => errors.push(frame);
  client.onWebSocketClose = () => {
    closes++;
  };

  const sendWithReceipt = (send: (receipt: string) => void): Promise<void> =>
    withReceipt(client, `${user}@${instance.id}`, 5000, send);

  return {
    user,
    instance,
    transport,
    sessionId: connected.headers.session ?? '',
    connectedTo: connected.headers.instance ?? '',
    get closes() {
      return closes;
    },
    errors,
    async subscribe(destination) {
      const messages: IMessage[] = [];
      await sendWithReceipt((receipt) => client.subscribe(destination, (m) => messages.push(m), { receipt }));
      return {
        destination,
        messages,
        bodies: () => messages.map((m) => m.body),
        waitForCount: (count, ms = 5000) =>
          waitFor(
            () => messages.length >= count,
            ms,
            `${count} message(s) for ${user}@${instance.id} on ${destination} (have ${messages.length})`,
          ),
      };
    },
    publishWithReceipt(destination, body) {
      return sendWithReceipt((receipt) => client.publish({ destination, body, headers: { receipt } }));
    },
    close: () => closeClient(client),
  };
}

/** Tracks clients so that afterEach can close them all. */
export class ClientSet {
  private readonly open: ClusterClient[] = [];

  async connect(
    instance: Instance,
    user: string,
    transport: Transport = 'websocket',
  ): Promise<ClusterClient> {
    const client = await connectClient(instance, user, transport);
    this.open.push(client);
    return client;
  }

  /** Connects `count` clients to `instance` (user `userOf(i)`), `parallel` at a time, then runs `setup` on each. */
  async connectMany(
    count: number,
    instance: Instance,
    userOf: (i: number) => string,
    setup: (client: ClusterClient) => Promise<void> = async () => undefined,
    parallel = 50,
  ): Promise<ClusterClient[]> {
    const made: ClusterClient[] = [];
    for (let start = 0; start < count; start += parallel) {
      const batch = Array.from({ length: Math.min(parallel, count - start) }, async (_, k) => {
        const client = await this.connect(instance, userOf(start + k));
        await setup(client);
        return client;
      });
      made.push(...(await Promise.all(batch)));
    }
    return made;
  }

  get size(): number {
    return this.open.length;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.open.splice(0).map((c) => c.close()));
  }
}

export interface HttpAnswer {
  status: number;
  body: unknown;
}

/** A JSON call with a Bearer token for `user` (scope `push` by default). */
export async function api(
  instance: Instance,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  user = 'backend',
): Promise<HttpAnswer> {
  const res = await fetch(`${instance.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${instance.token(user, 'push')}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed };
}

export function pushToUser(
  instance: Instance,
  user: string,
  destination: string,
  body: unknown,
): Promise<HttpAnswer> {
  return api(instance, 'POST', `/api/users/${encodeURIComponent(user)}/messages`, { destination, body });
}

export function publish(instance: Instance, destination: string, body: unknown): Promise<HttpAnswer> {
  return api(instance, 'POST', '/api/messages', { destination, body });
}

export async function readyStatus(instance: Instance): Promise<number> {
  try {
    const res = await fetch(`${instance.url}/readyz`, { signal: AbortSignal.timeout(2000) });
    await res.text();
    return res.status;
  } catch {
    return 0;
  }
}
