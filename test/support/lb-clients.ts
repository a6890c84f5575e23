/**
 * @stomp/stompjs clients through a load balancer, as browsers use it: plain WebSocket (/stomp) or
 * SockJS limited to one transport (xhr-streaming, xhr-polling). Each subscribes to one destination
 * on every CONNECTED (stompjs reconnects when `reconnectDelay` is set) and records what a user
 * would notice: ERROR messages, socket closes with their codes, which instances it was connected
 * to, and the message bodies it got.
 */
import { Client, type IStompSocket } from '@stomp/stompjs';
import SockJS from 'sockjs-client';
import WebSocket from 'ws';
import { waitFor } from './wait';

export type LbTransport = 'websocket' | 'xhr-streaming' | 'xhr-polling';

export interface LbClientOptions {
  /** The balancer's http:// base URL. */
  baseUrl: string;
  transport: LbTransport;
  token: string;
  destination: string;
  /** 0: never reconnect. */
  reconnectDelay?: number;
}

export class LbClient {
  /** CONNECTED frames received. */
  connects = 0;
  /** `instance` header of each CONNECTED, in order. */
  readonly instances: string[] = [];
  /** `message` header of each ERROR frame. */
  readonly errors: string[] = [];
  /** Close code of each socket close. */
  readonly closeCodes: number[] = [];
  readonly bodies: string[] = [];
  /** True while connected and subscribed (the SUBSCRIBE's RECEIPT arrived). */
  subscribed = false;
  private readonly client: Client;

  constructor(private readonly options: LbClientOptions) {
    const { baseUrl, transport } = options;
    this.client = new Client({
      webSocketFactory: (): IStompSocket =>
        transport === 'websocket'
          ? (new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/stomp`, [
              'v12.stomp',
            ]) as unknown as IStompSocket)
          : (new SockJS(`${baseUrl}/ws`, null, {
              transports: [transport],
              timeout: 5000,
            }) as unknown as IStompSocket),
      connectHeaders: { Authorization: `Bearer ${options.token}` },
      reconnectDelay: options.reconnectDelay ?? 0,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      connectionTimeout: 10_000,
      debug: () => undefined,
    });
    this.client.onConnect = (frame) => {
      this.connects++;
      this.instances.push(frame.headers.instance ?? '?');
      const receipt = `sub-${this.connects}`;
      this.client.watchForReceipt(receipt, () => (this.subscribed = true));
      this.client.subscribe(options.destination, (message) => this.bodies.push(message.body), { receipt });
    };
    this.client.onStompError = (frame) => this.errors.push(frame.headers.message ?? '');
    this.client.onWebSocketClose = (event: { code?: number }) => {
      this.subscribed = false;
      this.closeCodes.push(event.code ?? 0);
    };
  }

  get label(): string {
    return `${this.options.transport} client`;
  }

  /** Activates it and waits for the first subscription to be in place. */
  async start(timeoutMs = 20_000): Promise<void> {
    this.client.activate();
    await waitFor(() => this.subscribed, timeoutMs, `${this.label} to connect and subscribe`);
  }

  async stop(): Promise<void> {
    await this.client.deactivate({ force: true });
  }
}
