/**
 * The load clients a worker process holds: STOMP over WebSocket (to the service's /stomp or to
 * RabbitMQ Web-STOMP) and plain WebSocket (to the bare-ws ceiling server). Every client records
 * the latency of what it receives into its worker's one Stats; nothing per message is kept.
 */
import jwt from 'jsonwebtoken';
import WebSocket from 'ws';
import { Histogram, type HistogramData } from './histogram';
import { nowMs, sentAtMs } from './payload';
import { encodeFrame, forEachFrame, type FrameView, type Headers } from './stomp-lite';

export type ClientAuth =
  | { kind: 'jwt'; secret: string; scope?: string }
  | { kind: 'login'; login: string; passcode: string; host: string };

export interface ClientPlan {
  protocol: 'stomp' | 'ws';
  url: string;
  /** Client i is user `${userPrefix}${i}`. */
  userPrefix: string;
  auth?: ClientAuth;
  /** What each STOMP client subscribes to; `{i}` becomes its index. */
  subscribe?: string;
  /** Source address (127.0.0.x), so that many clients do not run out of ephemeral ports. */
  localAddress?: string;
}

export interface StatsData {
  received: number;
  firstAt: number;
  lastAt: number;
  errors: number;
  errorSamples: string[];
  closedEarly: number;
  latency: HistogramData;
}

export class Stats {
  readonly hist = new Histogram();
  received = 0;
  firstAt = 0;
  lastAt = 0;
  errors = 0;
  closedEarly = 0;
  readonly errorSamples: string[] = [];

  onBody(buf: Buffer, start: number): void {
    const now = nowMs();
    this.hist.record((now - sentAtMs(buf, start)) * 1000);
    this.received++;
    if (this.firstAt === 0) this.firstAt = now;
    this.lastAt = now;
  }

  error(what: string): void {
    this.errors++;
    if (this.errorSamples.length < 5) this.errorSamples.push(what.slice(0, 300));
  }

  reset(): void {
    this.hist.reset();
    this.received = 0;
    this.firstAt = 0;
    this.lastAt = 0;
    this.errors = 0;
    this.closedEarly = 0;
    this.errorSamples.length = 0;
  }

  data(): StatsData {
    return {
      received: this.received,
      firstAt: this.firstAt,
      lastAt: this.lastAt,
      errors: this.errors,
      errorSamples: [...this.errorSamples],
      closedEarly: this.closedEarly,
      latency: this.hist.data(),
    };
  }
}

export function tokenFor(user: string, secret: string, scope = ''): string {
  return jwt.sign({ scope }, secret, { algorithm: 'HS256', subject: user, expiresIn: 3600 });
}

function stompConnectHeaders(user: string, auth: ClientAuth | undefined): Headers {
  // No heart-beats: idle means idle, and a load client cannot promise timely beats under load.
  const headers: Headers = { 'accept-version': '1.2', 'heart-beat': '0,0' };
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

  async open(plan: ClientPlan, timeoutMs: number): Promise<void> {
    await this.connect(plan.url, ['v12.stomp'], plan.localAddress, timeoutMs);
    const ws = this.ws!;
    const connected = new Promise<void>((resolve, reject) =>
      this.receipts.set('CONNECTED', { resolve, reject }),
    );
    ws.on('message', (data: Buffer) => forEachFrame(data, (f, buf) => this.onFrame(f, buf)));
    ws.send(encodeFrame('CONNECT', stompConnectHeaders(this.user, plan.auth)));
    await withTimeout(connected, timeoutMs, `no CONNECTED for ${this.user}`);
    if (plan.subscribe) {
      const destination = plan.subscribe.replace('{i}', String(this.index));
      const subscribed = this.expectReceipt('sub');
      ws.send(encodeFrame('SUBSCRIBE', { id: 'sub-0', destination, ack: 'auto', receipt: 'sub' }));
      await withTimeout(subscribed, timeoutMs, `no RECEIPT for ${this.user}'s SUBSCRIBE`);
    }
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
    const waiting = [...this.receipts.values()];
    this.receipts.clear();
    for (const w of waiting) w.reject(err);
  }
}

/** Plain WebSocket client of the bare-ws server: every message is a payload; `k` acks a publish. */
export class BareWsClient extends BaseClient implements LoadClient {
  private readonly acks: Waiter[] = [];

  async open(plan: ClientPlan, timeoutMs: number): Promise<void> {
    await this.connect(plan.url, [], plan.localAddress, timeoutMs);
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
    plan.protocol === 'stomp' ? new StompWsClient(index, user, stats) : new BareWsClient(index, user, stats);
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
