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

/** How a reconnecting client reaches its endpoint: plain WebSocket at /stomp, or one SockJS transport. */
export type ReconnectingTransport = 'websocket' | 'xhr-streaming' | 'xhr-polling';

export interface ReconnectingOptions {
  /** Whom `token` names: for labels and for accounting deliveries to users. */
  user: string;
  /** http:// base URLs; each (re)connect takes the next one round-robin (a balancer is one URL). */
  urls: readonly string[];
  token: string;
  /** Subscribed on every CONNECTED, with a RECEIPT marking when the session can receive. */
  destination: string;
  transport?: ReconnectingTransport;
  /** 0: never reconnect. */
  reconnectDelay?: number;
  connectionTimeout?: number;
}

/** One connection of a reconnecting client, from CONNECTED to its socket's close. */
export interface StompConnection {
  /** The `instance` header of CONNECTED. */
  instance: string;
  /** The `session` header of CONNECTED: the session id instance logs name. */
  session: string;
  /** When the server confirmed SUBSCRIBE (the session can receive from here on); 0 until then. */
  subscribedAt: number;
  /** When the connection ended (0 while open). */
  closedAt: number;
  /** Bodies received on this connection, in order. */
  bodies: string[];
}

let reconnectingSeq = 0;

/**
 * A client as a browser holds one: @stomp/stompjs reconnecting, re-subscribing to one destination on
 * every CONNECTED, and recording what a user would notice: each connection (which instance, when it
 * could receive, when it ended, what it got), ERROR messages and socket close codes.
 */
export class ReconnectingStomp {
  readonly connections: StompConnection[] = [];
  /** `message` header of each ERROR frame. */
  readonly errors: string[] = [];
  /** Code of each socket close, connected or not. */
  readonly closeCodes: number[] = [];
  readonly user: string;
  readonly label: string;
  private readonly client: Client;
  private current: StompConnection | undefined;

  constructor(options: ReconnectingOptions) {
    const seq = reconnectingSeq++;
    const transport = options.transport ?? 'websocket';
    this.user = options.user;
    this.label = `${transport} client of ${options.user}`;
    // Clients start at different URLs, so a set of them spreads over the instances.
    let next = seq;
    const factories = options.urls.map((url) =>
      transport === 'websocket'
        ? socketFactory(url, { transport: 'websocket' })
        : socketFactory(url, { transport: 'sockjs', sockjsTransports: [transport] }),
    );
    this.client = new Client({
      webSocketFactory: () => factories[next++ % factories.length]!(),
      connectHeaders: { Authorization: `Bearer ${options.token}` },
      reconnectDelay: options.reconnectDelay ?? 0,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      connectionTimeout: options.connectionTimeout ?? 10_000,
      debug: () => undefined,
    });
    this.client.onConnect = (frame) => {
      const connection: StompConnection = {
        instance: frame.headers.instance ?? '?',
        session: frame.headers.session ?? '?',
        subscribedAt: 0,
        closedAt: 0,
        bodies: [],
      };
      this.current = connection;
      this.connections.push(connection);
      const receipt = `sub-${seq}-${this.connections.length}`;
      this.client.watchForReceipt(receipt, () => (connection.subscribedAt = Date.now()));
      this.client.subscribe(options.destination, (m) => connection.bodies.push(m.body), { receipt });
    };
    this.client.onStompError = (frame) => this.errors.push(frame.headers.message ?? '');
    this.client.onWebSocketClose = (event: { code?: number }) => {
      this.closeCodes.push(event.code ?? 0);
      if (this.current && this.current.closedAt === 0) this.current.closedAt = Date.now();
      this.current = undefined;
    };
  }

  /** Activates it: it connects (and reconnects) from here on. */
  start(): void {
    this.client.activate();
  }

  /** Waits until it is subscribed and open. */
  async waitLive(timeoutMs = 20_000): Promise<void> {
    await waitFor(() => this.live !== undefined, timeoutMs, `${this.label} to connect and subscribe`);
  }

  /** Connected right now (subscribed or not yet). */
  get connected(): boolean {
    return this.current !== undefined && this.current.closedAt === 0;
  }

  /** The connection that is subscribed and open right now. */
  get live(): StompConnection | undefined {
    return this.current && this.current.subscribedAt > 0 && this.current.closedAt === 0
      ? this.current
      : undefined;
  }

  /** `instance` of each CONNECTED, in order. */
  get instances(): string[] {
    return this.connections.map((c) => c.instance);
  }

  /** Every body received, over all connections, in order. */
  get bodies(): string[] {
    return this.connections.flatMap((c) => c.bodies);
  }

  async stop(): Promise<void> {
    await closeClient(this.client);
    if (this.current && this.current.closedAt === 0) this.current.closedAt = Date.now();
  }
}
