/**
 * Real client libraries against a running service: @stomp/stompjs over the plain WebSocket endpoint
 * (`/stomp`, the `ws` package standing in for the browser's WebSocket) and over sockjs-client at
 * `/ws` with a chosen set of SockJS transports. `connectStomp` resolves once CONNECTED has arrived;
 * `subscribe` resolves once the server has confirmed the SUBSCRIBE with a RECEIPT, so a test can
 * publish right after it without racing the subscription.
 */
import { Client, type IFrame, type IMessage, type IStompSocket, type StompHeaders } from '@stomp/stompjs';
import SockJS from 'sockjs-client';
import WebSocket from 'ws';
import type { RunningService } from './service';
import { tokenFor } from './service';
import { sleep, waitFor } from './wait';

export type ClientTransport = 'websocket' | 'sockjs';

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
  timeoutMs?: number;
}

/** Messages received on one subscription. */
export class MessageLog {
  readonly messages: IMessage[] = [];

  constructor(
    readonly destination: string,
    private readonly unsubscribeFn: () => void,
  ) {}

  bodies(): string[] {
    return this.messages.map((m) => m.body);
  }

  async waitForCount(count: number, timeoutMs = 3000): Promise<void> {
    await waitFor(
      () => this.messages.length >= count,
      timeoutMs,
      `${count} message(s) on ${this.destination} (have ${this.messages.length})`,
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
  /** ERROR frames received after connecting. */
  readonly errors: IFrame[];
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

function socketFactory(service: RunningService, options: ConnectOptions): () => IStompSocket {
  if ((options.transport ?? 'websocket') === 'websocket') {
    const url = `${service.url.replace(/^http/, 'ws')}/stomp${options.query ?? ''}`;
    return () => new WebSocket(url, ['v12.stomp', 'v11.stomp', 'v10.stomp']) as unknown as IStompSocket;
  }
  const transports = options.sockjsTransports ?? ['websocket', 'xhr-streaming', 'xhr-polling'];
  return () =>
    new SockJS(`${service.url}/ws${options.query ?? ''}`, null, {
      transports,
      timeout: 5000,
    }) as unknown as IStompSocket;
}

/** An @stomp/stompjs client connected as `user`; rejects with the server's reason if refused. */
export async function connectStomp(
  service: RunningService,
  user: string,
  options: ConnectOptions = {},
): Promise<ConnectedStomp> {
  const transport =
    (options.transport ?? 'websocket') === 'websocket'
      ? 'websocket'
      : `sockjs/${(options.sockjsTransports ?? ['any']).join('+')}`;
  const errors: IFrame[] = [];
  let closed = false;
  const client = new Client({
    webSocketFactory: socketFactory(service, options),
    connectHeaders: options.connectHeaders ?? { Authorization: `Bearer ${tokenFor(service, user)}` },
    reconnectDelay: 0,
    heartbeatIncoming: options.heartbeatIncoming ?? 0,
    heartbeatOutgoing: options.heartbeatOutgoing ?? 0,
    connectionTimeout: options.timeoutMs ?? 5000,
    debug: () => undefined,
  });

  const connected = await new Promise<IFrame>((resolve, reject) => {
    const timer = setTimeout(() => {
      void client.deactivate({ force: true });
      reject(new Error(`${transport}: no CONNECTED for ${user} within ${options.timeoutMs ?? 5000} ms`));
    }, options.timeoutMs ?? 5000);
    client.onConnect = (frame) => {
      clearTimeout(timer);
      resolve(frame);
    };
    client.onStompError = (frame) => {
      errors.push(frame);
      clearTimeout(timer);
      reject(new Error(`${transport}: ERROR ${frame.headers.message ?? ''}`));
    };
    client.onWebSocketClose = () => {
      closed = true;
      clearTimeout(timer);
      reject(new Error(`${transport}: socket closed before CONNECTED`));
    };
    client.activate();
  }).catch(async (err: unknown) => {
    await client.deactivate({ force: true });
    throw err;
  });

  client.onStompError = (frame) => errors.push(frame);
  client.onWebSocketClose = () => {
    closed = true;
  };

  const sendWithReceipt = (send: (receipt: string) => void): Promise<void> =>
    withReceipt(client, transport, 3000, send);

  return {
    client,
    user,
    transport,
    connected,
    errors,
    isClosed: () => closed,
    async subscribe(destination, headers = {}) {
      let log: MessageLog | undefined;
      await sendWithReceipt((receipt) => {
        const sub = client.subscribe(destination, (m) => log?.messages.push(m), { ...headers, receipt });
        log = new MessageLog(destination, () => sub.unsubscribe());
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

  async connect(
    service: RunningService,
    user: string,
    options: ConnectOptions = {},
  ): Promise<ConnectedStomp> {
    const client = await connectStomp(service, user, options);
    this.open.push(client);
    return client;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.open.splice(0).map((c) => c.close()));
  }
}
