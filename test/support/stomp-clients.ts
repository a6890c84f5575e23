/**
 * The @stomp/stompjs helper every test uses, against an in-process service (a RunningService) or any
 * instance known by its URL and a token issuer (child processes, a load balancer): over the plain
 * WebSocket endpoint (`/stomp`, the `ws` package standing in for the browser's WebSocket) or over
 * sockjs-client at `/ws` with a chosen set of SockJS transports. `connectStomp` resolves once
 * CONNECTED has arrived; `subscribe` resolves once the server has confirmed the SUBSCRIBE with a
 * RECEIPT, so a test can publish right after it without racing the subscription. Clients never
 * reconnect (reconnectDelay 0), so a test can tell "stayed connected" from "came back".
 */
import { Client, type IFrame, type IMessage, type IStompSocket, type StompHeaders } from '@stomp/stompjs';
import SockJS from 'sockjs-client';
import WebSocket from 'ws';
import type { RunningService } from './service';
import { tokenFor } from './service';
import { sleep, waitFor } from './wait';

export type ClientTransport = 'websocket' | 'sockjs';

/** Where a client connects when it is not an in-process service: `Instance` is one. */
export interface StompEndpoint {
  /** The http:// base URL. */
  readonly url: string;
  /** A token the endpoint accepts for `user`. */
  token(user: string): string;
}

export type StompTarget = RunningService | StompEndpoint;

function endpointOf(target: StompTarget): StompEndpoint {
  if ('verifier' in target) return { url: target.url, token: (user) => tokenFor(target, user) };
  return target;
}

/** SockJS transports sockjs-client can use in Node. */
export type SockJsTransport = 'websocket' | 'xhr-streaming' | 'xhr-polling';

export interface ConnectOptions {
  transport?: ClientTransport;
  /** With transport 'sockjs': the transports sockjs-client may use (forces one when given one). */
  sockjsTransports?: SockJsTransport[];
  /** Appended to the endpoint URL, e.g. `?access_token=...`. */
  query?: string;
  /** Default: a valid token for the user, sent as `Authorization: Bearer`. */
  connectHeaders?: StompHeaders;
  heartbeatIncoming?: number;
  heartbeatOutgoing?: number;
  /** For CONNECTED; default 5000 ms. */
  timeoutMs?: number;
  /** Default wait for a RECEIPT and for `waitForCount`; 3000 ms unless given. */
  waitMs?: number;
}

/** Messages received on one subscription. */
export class MessageLog {
  readonly messages: IMessage[] = [];

  constructor(
    readonly destination: string,
    private readonly unsubscribeFn: () => void,
    /** Who receives, for a timeout's message. */
    private readonly label = '',
    private readonly waitMs = 3000,
  ) {}

  bodies(): string[] {
    return this.messages.map((m) => m.body);
  }

  async waitForCount(count: number, timeoutMs = this.waitMs): Promise<void> {
    await waitFor(
      () => this.messages.length >= count,
      timeoutMs,
      `${count} message(s)${this.label ? ` for ${this.label}` : ''} on ${this.destination} (have ${this.messages.length})`,
    );
  }

  unsubscribe(): void {
    this.unsubscribeFn();
  }
}

export interface ConnectedStomp {
  readonly client: Client;
  readonly user: string;
  readonly transport: string;
  /** The CONNECTED frame. */
  readonly connected: IFrame;
  /** The `session` header of CONNECTED. */
  readonly sessionId: string;
  /** The `instance` header of CONNECTED: which instance took the connection. */
  readonly connectedTo: string;
  /** ERROR frames received after connecting. */
  readonly errors: IFrame[];
  /** Socket closes seen since CONNECTED (0 while the client stays connected). */
  readonly closes: number;
  /** True once the underlying socket closed. */
  isClosed(): boolean;
  /** SUBSCRIBE and wait for the server's RECEIPT. */
  subscribe(destination: string, headers?: StompHeaders): Promise<MessageLog>;
  /** SEND without waiting. */
  publish(destination: string, body: string, headers?: StompHeaders): void;
  /** SEND and wait for the server's RECEIPT (the server has handled it). */
  publishWithReceipt(destination: string, body: string, headers?: StompHeaders): Promise<void>;
  close(): Promise<void>;
}

let receiptCounter = 0;

/**
 * Calls `send` with a fresh receipt id to put in its frame; resolves when the server's RECEIPT for
 * it arrives, rejects after `timeoutMs` with `label` (who sent it) in the message.
 */
export function withReceipt(
  client: Client,
  label: string,
  timeoutMs: number,
  send: (receipt: string) => void,
): Promise<void> {
  const receipt = `receipt-${++receiptCounter}`;
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${label}: no RECEIPT ${receipt}`)), timeoutMs);
    client.watchForReceipt(receipt, () => {
      clearTimeout(timer);
      resolve();
    });
    send(receipt);
  });
}

/** Disconnects politely, then by force if the server has not let go within 2 s. */
export async function closeClient(client: Client): Promise<void> {
  await Promise.race([client.deactivate(), sleep(2000)]);
  if (client.active) await client.deactivate({ force: true });
}

function socketFactory(baseUrl: string, options: ConnectOptions): () => IStompSocket {
  if ((options.transport ?? 'websocket') === 'websocket') {
    const url = `${baseUrl.replace(/^http/, 'ws')}/stomp${options.query ?? ''}`;
    return () => new WebSocket(url, ['v12.stomp', 'v11.stomp', 'v10.stomp']) as unknown as IStompSocket;
  }
  const transports = options.sockjsTransports ?? ['websocket', 'xhr-streaming', 'xhr-polling'];
  return () =>
    new SockJS(`${baseUrl}/ws${options.query ?? ''}`, null, {
      transports,
      timeout: 5000,
    }) as unknown as IStompSocket;
}

/** An @stomp/stompjs client connected as `user`; rejects with the server's reason if refused. */
export async function connectStomp(
  target: StompTarget,
  user: string,
  options: ConnectOptions = {},
): Promise<ConnectedStomp> {
  const endpoint = endpointOf(target);
  const transport =
    (options.transport ?? 'websocket') === 'websocket'
      ? 'websocket'
      : `sockjs/${(options.sockjsTransports ?? ['any']).join('+')}`;
  const label = `${transport} ${user}@${endpoint.url}`;
  const waitMs = options.waitMs ?? 3000;
  const errors: IFrame[] = [];
  let closes = 0;
  const client = new Client({
    webSocketFactory: socketFactory(endpoint.url, options),
    connectHeaders: options.connectHeaders ?? { Authorization: `Bearer ${endpoint.token(user)}` },
    reconnectDelay: 0,
    heartbeatIncoming: options.heartbeatIncoming ?? 0,
    heartbeatOutgoing: options.heartbeatOutgoing ?? 0,
    connectionTimeout: options.timeoutMs ?? 5000,
    debug: () => undefined,
  });

  const connected = await new Promise<IFrame>((resolve, reject) => {
    const timer = setTimeout(() => {
      void client.deactivate({ force: true });
      reject(new Error(`${label}: no CONNECTED within ${options.timeoutMs ?? 5000} ms`));
    }, options.timeoutMs ?? 5000);
    client.onConnect = (frame) => {
      clearTimeout(timer);
      resolve(frame);
    };
    client.onStompError = (frame) => {
      errors.push(frame);
      clearTimeout(timer);
      reject(new Error(`${label}: ERROR ${frame.headers.message ?? ''}`));
    };
    client.onWebSocketClose = () => {
      clearTimeout(timer);
      reject(new Error(`${label}: socket closed before CONNECTED`));
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
    withReceipt(client, label, waitMs, send);

  return {
    client,
    user,
    transport,
    connected,
    sessionId: connected.headers.session ?? '',
    connectedTo: connected.headers.instance ?? '',
    errors,
    get closes() {
      return closes;
    },
    isClosed: () => closes > 0,
    async subscribe(destination, headers = {}) {
      let log: MessageLog | undefined;
      await sendWithReceipt((receipt) => {
        const sub = client.subscribe(destination, (m) => log?.messages.push(m), { ...headers, receipt });
        log = new MessageLog(destination, () => sub.unsubscribe(), label, waitMs);
      });
      return log!;
    },
    publish(destination, body, headers = {}) {
      client.publish({ destination, body, headers });
    },
    publishWithReceipt(destination, body, headers = {}) {
      return sendWithReceipt((receipt) =>
        client.publish({ destination, body, headers: { ...headers, receipt } }),
      );
    },
    close: () => closeClient(client),
  };
}

/** Tracks the clients a test opens so afterEach can close them all. */
export class StompClients {
  private readonly open: ConnectedStomp[] = [];

  /** `defaults` apply to every client connected through this set (a call's options win). */
  constructor(private readonly defaults: ConnectOptions = {}) {}

  async connect(target: StompTarget, user: string, options: ConnectOptions = {}): Promise<ConnectedStomp> {
    const client = await connectStomp(target, user, { ...this.defaults, ...options });
    this.open.push(client);
    return client;
  }

  /** Connects `count` clients to `target` (user `userOf(i)`), `parallel` at a time, then runs `setup` on each. */
  async connectMany(
    count: number,
    target: StompTarget,
    userOf: (i: number) => string,
    setup: (client: ConnectedStomp) => Promise<void> = async () => undefined,
    parallel = 50,
  ): Promise<ConnectedStomp[]> {
    const made: ConnectedStomp[] = [];
    for (let start = 0; start < count; start += parallel) {
      const batch = Array.from({ length: Math.min(parallel, count - start) }, async (_, k) => {
        const client = await this.connect(target, userOf(start + k));
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
