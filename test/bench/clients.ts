/**
 * The load clients a worker process holds: STOMP over WebSocket (to the service's /stomp or to
 * RabbitMQ Web-STOMP), plain WebSocket (to the bare-ws ceiling server) and Socket.IO (to the
 * Socket.IO peer, socketio-client.ts). Every client records the latency of what it receives into
 * its worker's one Stats; nothing per message is kept.
 */
import jwt from 'jsonwebtoken';
import WebSocket from 'ws';
import { SocketIoClient } from './socketio-client';
import type { Stats } from './stats';
import { encodeFrame, forEachFrame, type FrameView, type Headers } from './stomp-lite';

export type ClientAuth =
  | { kind: 'jwt'; secret: string; scope?: string }
  | { kind: 'login'; login: string; passcode: string; host: string };

export interface ClientPlan {
  protocol: 'stomp' | 'ws' | 'socketio';
  url: string;
  /**
   * Several servers of one system (instances, nodes): client i connects to `instances[i % n]`
   * straight, with no balancer between, instead of to `url`.
   */
  instances?: string[];
  /** Client i is user `${userPrefix}${i}`. */
  userPrefix: string;
  auth?: ClientAuth;
  /**
   * What each client subscribes to (a STOMP destination, a Socket.IO room); `{i}` becomes its
   * index, `{u}` its user name.
   */
  subscribe?: string;
  /** STOMP heart-beats both ways at this interval (0 or unset: none, `heart-beat: 0,0`). */
  heartbeatMs?: number;
  /** Source address (127.0.0.x), so that many clients do not run out of ephemeral ports. */
  localAddress?: string;
}

/** Where client `index` of `plan` connects. */
export function urlFor(plan: ClientPlan, index: number): string {
  const spread = plan.instances;
  return spread && spread.length > 0 ? spread[index % spread.length] : plan.url;
}

/** `plan.subscribe` for one client. */
export function subscriptionFor(plan: ClientPlan, index: number, user: string): string | undefined {
  return plan.subscribe?.replace('{i}', String(index)).replace('{u}', user);
}

export function tokenFor(user: string, secret: string, scope = ''): string {
  return jwt.sign({ scope }, secret, { algorithm: 'HS256', subject: user, expiresIn: 3600 });
}

function stompConnectHeaders(user: string, auth: ClientAuth | undefined, heartbeatMs = 0): Headers {
  // No heart-beats unless asked: idle means idle, and a load client cannot promise timely beats
  // under load. The idle crowd asks for them, to measure what they cost the service.
  const headers: Headers = { 'accept-version': '1.2', 'heart-beat': `${heartbeatMs},${heartbeatMs}` };
  if (auth?.kind === 'jwt') headers.Authorization = `Bearer ${tokenFor(user, auth.secret, auth.scope)}`;
  if (auth?.kind === 'login')
    Object.assign(headers, { host: auth.host, login: auth.login, passcode: auth.passcode });
  return headers;
}

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

export interface LoadClient {
  readonly index: number;
  readonly user: string;
  /** Resolves on the RECEIPT (STOMP) or the server's ack (ws) when `confirm`, else once written. */
  send(destination: string, body: string, confirm: boolean): Promise<void>;
  close(): Promise<void>;
}

abstract class BaseClient {
  protected ws: WebSocket | undefined;
  protected closing = false;

  constructor(
    readonly index: number,
    readonly user: string,
    protected readonly stats: Stats,
  ) {}

  protected connect(
    url: string,
    protocols: string[],
    localAddress: string | undefined,
    timeoutMs: number,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocols, {
        localAddress,
        perMessageDeflate: false,
        handshakeTimeout: timeoutMs,
      });
      this.ws = ws;
      let opened = false;
      ws.once('open', () => {
        opened = true;
        resolve();
      });
      ws.on('error', (err) => {
        if (opened) this.stats.error(`${this.user}: ${err.message}`);
        else reject(err);
      });
      ws.on('close', () => {
        if (!this.closing) {
          this.stats.closedEarly++;
          this.onLost(new Error(`connection of ${this.user} closed by the server`));
        }
      });
    });
  }

  protected abstract onLost(err: Error): void;

  close(): Promise<void> {
    const ws = this.ws;
    this.closing = true;
    if (!ws || ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        ws.terminate();
        resolve();
      }, 3000);
      ws.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      ws.close(1000);
    });
  }
}

export class StompWsClient extends BaseClient implements LoadClient {
  private readonly receipts = new Map<string, Waiter>();
  private receiptSeq = 0;
  private beats: NodeJS.Timeout | undefined;

  async open(plan: ClientPlan, timeoutMs: number): Promise<void> {
    await this.connect(urlFor(plan, this.index), ['v12.stomp'], plan.localAddress, timeoutMs);
    const ws = this.ws!;
    const connected = new Promise<void>((resolve, reject) =>
      this.receipts.set('CONNECTED', { resolve, reject }),
    );
    ws.on('message', (data: Buffer) => forEachFrame(data, (f, buf) => this.onFrame(f, buf)));
    ws.send(encodeFrame('CONNECT', stompConnectHeaders(this.user, plan.auth, plan.heartbeatMs)));
    await withTimeout(connected, timeoutMs, `no CONNECTED for ${this.user}`);
    if (plan.heartbeatMs) this.beat(plan.heartbeatMs);
    const destination = subscriptionFor(plan, this.index, this.user);
    if (destination) {
      const subscribed = this.expectReceipt('sub');
      ws.send(encodeFrame('SUBSCRIBE', { id: 'sub-0', destination, ack: 'auto', receipt: 'sub' }));
      await withTimeout(subscribed, timeoutMs, `no RECEIPT for ${this.user}'s SUBSCRIBE`);
    }
  }

  /** An EOL every `everyMs`, first at a random point of the period so that beats do not bunch. */
  private beat(everyMs: number): void {
    const send = (): void => {
      if (this.ws?.readyState === WebSocket.OPEN) this.ws.send('\n');
    };
    this.beats = setTimeout(
      () => {
        send();
        this.beats = setInterval(send, everyMs);
      },
      Math.floor(Math.random() * everyMs),
    );
  }

  override close(): Promise<void> {
    clearTimeout(this.beats);
    clearInterval(this.beats);
    return super.close();
  }

  send(destination: string, body: string, confirm: boolean): Promise<void> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error('not connected'));
    const headers: Headers = { destination, 'content-type': 'text/plain' };
    let done = Promise.resolve();
    if (confirm) {
      const id = `r${++this.receiptSeq}`;
      headers.receipt = id;
      done = this.expectReceipt(id);
    }
    ws.send(encodeFrame('SEND', headers, body));
    return done;
  }

  private expectReceipt(id: string): Promise<void> {
    return new Promise((resolve, reject) => this.receipts.set(id, { resolve, reject }));
  }

  private onFrame(f: FrameView, buf: Buffer): void {
    switch (f.command) {
      case 'MESSAGE':
        this.stats.onBody(buf, f.bodyStart);
        return;
      case 'RECEIPT':
      case 'CONNECTED': {
        const id = f.command === 'CONNECTED' ? 'CONNECTED' : (f.headers['receipt-id'] ?? '');
        const waiter = this.receipts.get(id);
        this.receipts.delete(id);
        waiter?.resolve();
        return;
      }
      case 'ERROR': {
        const why = f.headers.message ?? buf.toString('utf8', f.bodyStart, f.bodyEnd);
        this.stats.error(`${this.user}: ERROR ${why}`);
        this.onLost(new Error(`ERROR: ${why}`));
        return;
      }
    }
  }

  protected onLost(err: Error): void {
    clearInterval(this.beats);
    const waiting = [...this.receipts.values()];
    this.receipts.clear();
    for (const w of waiting) w.reject(err);
  }
}

/** Plain WebSocket client of the bare-ws server: every message is a payload; `k` acks a publish. */
export class BareWsClient extends BaseClient implements LoadClient {
  private readonly acks: Waiter[] = [];

  async open(plan: ClientPlan, timeoutMs: number): Promise<void> {
    await this.connect(urlFor(plan, this.index), [], plan.localAddress, timeoutMs);
    this.ws!.on('message', (data: Buffer) => {
      if (data.length === 1 && data[0] === 0x6b) this.acks.shift()?.resolve();
      else this.stats.onBody(data, 0);
    });
  }

  send(_destination: string, body: string, confirm: boolean): Promise<void> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error('not connected'));
    ws.send(body);
    return confirm
      ? new Promise((resolve, reject) => this.acks.push({ resolve, reject }))
      : Promise.resolve();
  }

  protected onLost(err: Error): void {
    for (const w of this.acks.splice(0)) w.reject(err);
  }
}

export async function openClient(
  plan: ClientPlan,
  index: number,
  stats: Stats,
  timeoutMs: number,
): Promise<LoadClient> {
  const user = `${plan.userPrefix}${index}`;
  const client =
    plan.protocol === 'stomp'
      ? new StompWsClient(index, user, stats)
      : plan.protocol === 'socketio'
        ? new SocketIoClient(index, user, stats)
        : new BareWsClient(index, user, stats);
  try {
    await client.open(plan, timeoutMs);
  } catch (err: unknown) {
    await client.close();
    throw err;
  }
  return client;
}

export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
