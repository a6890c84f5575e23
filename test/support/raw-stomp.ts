/**
 * A raw STOMP test client: writes exactly the bytes a test asks for (valid frames, broken ones,
 * half frames) over TCP or a plain WebSocket, and records everything the server answers as parsed
 * frames, heart-beats (EOLs) and the close. Server output is parsed with the service's own codec,
 * so a test sees the frames a real client would, byte for byte.
 *
 * Frames are consumed in order: each `waitForFrame` returns the oldest matching frame not returned
 * before, so a test can await "the next MESSAGE" repeatedly without bookkeeping. For load (a
 * thousand subscribers, a fuzzer's thousands of batches) a client can keep nothing and only hand
 * each frame to `onFrame`, and `until` waits on arrivals instead of polling.
 */
import { connect as netConnect, type Socket } from 'node:net';
import WebSocket from 'ws';
import { frame as makeFrame, header, type Frame, type StompVersion } from '../../app/stomp/frame';
import { StompParser } from '../../app/stomp/parser';
import { serializeFrame } from '../../app/stomp/serializer';
import type { RunningService } from './service';
import { tokenFor } from './service';
import { waitFor } from './wait';

/** What the client needs of a byte stream. */
interface RawSocket {
  write(bytes: Buffer): void;
  end(): void;
  /** Stops reading from the socket: the server's writes back up (slow-consumer tests). */
  pause(): void;
  resume(): void;
  /** Bytes written and not yet on the wire (the client's own send buffer). */
  outgoing(): number;
}

export interface RawClientOptions {
  /** Keep every frame and chunk received (default true); false for clients that only count. */
  keep?: boolean;
  /** Called with each frame as it is parsed, kept or not. */
  onFrame?: (f: Frame) => void;
}

export class RawStompClient {
  /** Every frame received, in order. */
  readonly frames: Frame[] = [];
  /** Every chunk received, unparsed: for checks on the exact bytes. */
  readonly bytesIn: Buffer[] = [];
  /** Arrival times (Date.now()) of heart-beat EOLs from the server. */
  readonly heartbeats: number[] = [];
  closed = false;
  closedAt = 0;
  /** Version used to escape what we send and unescape what we receive; set from CONNECTED. */
  version: StompVersion = '1.2';
  /** A parse failure of server output: a test bug or a server bug, either way worth seeing. */
  parseError: unknown;

  private readonly taken = new Set<Frame>();
  private readonly parser: StompParser;
  private readonly keep: boolean;
  /** Callers of `until` waiting for the next frame, close or parse error. */
  private readonly wakers = new Set<() => void>();
  private socket: RawSocket | undefined;

  constructor(options: RawClientOptions = {}) {
    this.keep = options.keep ?? true;
    this.parser = new StompParser(
      { maxFrameBytes: 64 * 1024 * 1024, maxHeaders: 10_000, maxHeaderBytes: 1024 * 1024 },
      (f) => {
        if (f.command === 'CONNECTED') {
          const v = header(f, 'version');
          if (v === '1.0' || v === '1.1' || v === '1.2') {
            this.version = v;
            this.parser.version = v;
          }
        }
        if (this.keep) this.frames.push(f);
        options.onFrame?.(f);
        this.wake();
      },
      () => this.heartbeats.push(Date.now()),
    );
  }

  /** @internal: the transport helpers below wire a socket to the client. */
  attach(socket: RawSocket): void {
    this.socket = socket;
  }

  /** @internal */
  received(chunk: Buffer): void {
    if (this.keep) this.bytesIn.push(chunk);
    if (this.parseError !== undefined) return;
    try {
      this.parser.push(chunk);
    } catch (err: unknown) {
      this.parseError = err;
      this.wake();
    }
  }

  /** @internal */
  markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.closedAt = Date.now();
    this.wake();
  }

  private wake(): void {
    for (const waker of [...this.wakers]) waker();
  }

  /**
   * Resolves true once `done()` holds, false once `timeoutMs` passes first. Checked at each frame,
   * close or parse error, not on a timer: cheap enough for thousands of waits in a row.
   */
  async until(done: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const waker = (): void => {
          clearTimeout(timer);
          this.wakers.delete(waker);
          resolve();
        };
        const timer = setTimeout(waker, left);
        this.wakers.add(waker);
      });
    }
    return true;
  }

  /** The first frame kept with this command (and this receipt-id), taken or not. */
  find(command: string, receiptId?: string): Frame | undefined {
    return this.frames.find(
      (f) => f.command === command && (receiptId === undefined || header(f, 'receipt-id') === receiptId),
    );
  }

  /** Writes bytes exactly as given. */
  sendRaw(bytes: Buffer | string): void {
    if (!this.socket) throw new Error('raw client has no socket');
    this.socket.write(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, 'utf8'));
  }

  /** Serialises and writes one frame (content-length is added for a non-empty body). */
  send(command: string, headers: Record<string, string | undefined> = {}, body?: Buffer | string): void {
    this.sendRaw(serializeFrame(makeFrame(command, headers, body), this.version));
  }

  /**
   * CONNECT (with `token` as `Authorization: Bearer` unless headers say otherwise) and wait for
   * CONNECTED; fails with the ERROR's message when the server refuses.
   */
  async connect(token: string | undefined, headers: Record<string, string | undefined> = {}): Promise<Frame> {
    this.send('CONNECT', {
      'accept-version': '1.0,1.1,1.2',
      host: 'localhost',
      ...(token === undefined ? {} : { Authorization: `Bearer ${token}` }),
      ...headers,
    });
    const answer = await this.waitForFrame((f) => f.command === 'CONNECTED' || f.command === 'ERROR');
    if (answer.command === 'ERROR') throw new Error(`CONNECT refused: ${header(answer, 'message') ?? '?'}`);
    return answer;
  }

  /** Sends a frame with a fresh `receipt` header and waits for its RECEIPT. */
  async sendWithReceipt(
    command: string,
    headers: Record<string, string> = {},
    body?: Buffer | string,
    timeoutMs = 3000,
  ): Promise<void> {
    const receipt = `r-${Math.random().toString(36).slice(2)}`;
    this.send(command, { ...headers, receipt }, body);
    const answer = await this.waitForFrame(
      (f) => (f.command === 'RECEIPT' && header(f, 'receipt-id') === receipt) || f.command === 'ERROR',
      timeoutMs,
    );
    if (answer.command === 'ERROR')
      throw new Error(`${command} refused: ${header(answer, 'message') ?? '?'}`);
  }

  /**
   * The oldest frame not returned before with this command (or matching this predicate).
   * Rejects after `timeoutMs`, listing what did arrive.
   */
  async waitForFrame(
    match: string | ((f: Frame) => boolean),
    predicateOrTimeout?: ((f: Frame) => boolean) | number,
    timeoutMs = 3000,
  ): Promise<Frame> {
    let predicate: (f: Frame) => boolean;
    if (typeof match === 'string') {
      const extra = typeof predicateOrTimeout === 'function' ? predicateOrTimeout : () => true;
      predicate = (f) => f.command === match && extra(f);
    } else {
      predicate = match;
    }
    if (typeof predicateOrTimeout === 'number') timeoutMs = predicateOrTimeout;
    let found: Frame | undefined;
    const what = typeof match === 'string' ? `a ${match} frame` : 'a matching frame';
    try {
      await waitFor(
        () => {
          found = this.frames.find((f) => !this.taken.has(f) && predicate(f));
          if (found) return true;
          if (this.parseError !== undefined) throw this.parseError;
          return false;
        },
        timeoutMs,
        what,
      );
    } catch (err: unknown) {
      const seen = this.frames.map((f) => `${f.command}${describe(f)}`).join(', ') || 'nothing';
      throw new Error(`${err instanceof Error ? err.message : String(err)}; received: ${seen}`, {
        cause: err,
      });
    }
    this.taken.add(found!);
    return found!;
  }

  /** Frames with this command received so far (taken or not). */
  all(command: string): Frame[] {
    return this.frames.filter((f) => f.command === command);
  }

  async waitForClose(timeoutMs = 3000): Promise<void> {
    await waitFor(() => this.closed, timeoutMs, 'the server to close the connection');
  }

  /** The ERROR frame the server ends with, then the close. */
  async expectErrorAndClose(timeoutMs = 3000): Promise<Frame> {
    const error = await this.waitForFrame('ERROR', timeoutMs);
    await this.waitForClose(timeoutMs);
    return error;
  }

  /**
   * Bytes this client has written that have not left it yet: a bulk publisher that respects its
   * socket's backpressure (as a blocking write does) waits while this is high.
   */
  outgoing(): number {
    return this.socket?.outgoing() ?? 0;
  }

  /** Stops reading: whatever the server sends stays in kernel and server buffers. */
  pause(): void {
    this.socket?.pause();
  }

  resume(): void {
    this.socket?.resume();
  }

  close(): void {
    this.socket?.end();
  }
}

function describe(f: Frame): string {
  const message = header(f, 'message');
  return message === undefined ? '' : `(${message})`;
}

export interface TcpOptions extends RawClientOptions {
  /** Each write goes out at once, not coalesced with the next (Nagle off): exact splits. */
  noDelay?: boolean;
}

/** Raw STOMP over TCP to `target.tcpPort` (start a service with `stompTcpPort: 0`). */
export async function openTcp(
  target: { tcpPort?: number },
  options: TcpOptions = {},
): Promise<RawStompClient> {
  if (target.tcpPort === undefined) throw new Error('start the service with stompTcpPort: 0');
  return openTcpPort(target.tcpPort, options);
}

/** Raw STOMP over TCP to any STOMP server on 127.0.0.1:`port` (a RabbitMQ node's STOMP plugin, say). */
export async function openTcpPort(port: number, options: TcpOptions = {}): Promise<RawStompClient> {
  const client = new RawStompClient(options);
  const socket: Socket = netConnect(port, '127.0.0.1');
  if (options.noDelay) socket.setNoDelay(true);
  socket.on('data', (chunk: Buffer) => client.received(chunk));
  socket.on('close', () => client.markClosed());
  socket.on('error', () => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  client.attach({
    write: (bytes) => {
      if (!socket.destroyed) socket.write(bytes);
    },
    end: () => socket.destroy(),
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    outgoing: () => socket.writableLength,
  });
  return client;
}

export interface WebSocketOptions extends RawClientOptions {
  /** Path and query after the service URL; default `/stomp`. */
  path?: string;
  /** Offered subprotocols; default `['v12.stomp', 'v11.stomp', 'v10.stomp']`. */
  protocols?: string[];
  headers?: Record<string, string>;
  /** Send frames as text messages instead of binary ones. */
  text?: boolean;
}

/** The WebSocket after the handshake, or the reason it failed (e.g. "Unexpected server response: 403"). */
export function openWebSocketRaw(
  target: { url: string },
  options: WebSocketOptions = {},
): Promise<WebSocket> {
  const url = target.url.replace(/^http/, 'ws') + (options.path ?? '/stomp');
  const ws = new WebSocket(url, options.protocols ?? ['v12.stomp', 'v11.stomp', 'v10.stomp'], {
    headers: options.headers,
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/**
 * How a WebSocket handshake to `path` of `target.url` ends, the socket closed at once: 'open',
 * `HTTP <status>` when the server answered the upgrade with a status instead, or the error's message.
 */
export function handshakeOutcome(
  target: { url: string },
  path: string,
  options: { protocols?: string[]; origin?: string } = {},
): Promise<string> {
  return new Promise((resolve) => {
    const ws = new WebSocket(target.url.replace(/^http/, 'ws') + path, options.protocols ?? [], {
      headers: options.origin === undefined ? {} : { origin: options.origin },
    });
    ws.once('open', () => {
      ws.terminate();
      resolve('open');
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve(`HTTP ${res.statusCode}`);
      ws.terminate();
    });
    ws.once('error', (err) => resolve(err.message));
  });
}

/** Raw STOMP over a plain WebSocket at `/stomp` (or `options.path`) of `target.url`. */
export async function openWebSocket(
  target: { url: string },
  options: WebSocketOptions = {},
): Promise<RawStompClient> {
  const ws = await openWebSocketRaw(target, options);
  return wrapWebSocket(ws, options.text === true, options);
}

export function wrapWebSocket(ws: WebSocket, text = false, options: RawClientOptions = {}): RawStompClient {
  const client = new RawStompClient(options);
  ws.on('message', (data: WebSocket.RawData) => {
    client.received(
      Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data),
    );
  });
  ws.on('close', () => client.markClosed());
  ws.on('error', () => ws.terminate());
  client.attach({
    write: (bytes) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(text ? bytes.toString('utf8') : bytes, { binary: !text });
    },
    end: () => ws.terminate(),
    pause: () => ws.pause(),
    resume: () => ws.resume(),
    outgoing: () => ws.bufferedAmount,
  });
  return client;
}

export type RawTransport = 'tcp' | 'websocket';

export function openRaw(service: RunningService, transport: RawTransport): Promise<RawStompClient> {
  return transport === 'tcp' ? openTcp(service) : openWebSocket(service);
}

export interface ConnectRawOptions {
  transport?: RawTransport;
  headers?: Record<string, string | undefined>;
}

/** Opens a raw client and completes CONNECT as `user` with a valid token. */
export async function connectRaw(
  service: RunningService,
  user: string,
  options: ConnectRawOptions = {},
): Promise<RawStompClient> {
  const client = await openRaw(service, options.transport ?? 'websocket');
  try {
    await client.connect(tokenFor(service, user), options.headers);
  } catch (err: unknown) {
    client.close();
    throw err;
  }
  return client;
}

/** Tracks raw clients a test opens so afterEach can close them all. */
export class RawClients {
  private readonly open: RawStompClient[] = [];

  add<T extends RawStompClient>(client: T): T {
    this.open.push(client);
    return client;
  }

  /** `connectRaw`, tracked. */
  async connect(
    service: RunningService,
    user: string,
    options: ConnectRawOptions = {},
  ): Promise<RawStompClient> {
    return this.add(await connectRaw(service, user, options));
  }

  /** Connected as `user` and subscribed to `destination` (id `sub`), the SUBSCRIBE confirmed by a RECEIPT. */
  async subscribed(
    service: RunningService,
    user: string,
    destination: string,
    options: ConnectRawOptions = {},
  ): Promise<RawStompClient> {
    const client = await this.connect(service, user, options);
    await client.sendWithReceipt('SUBSCRIBE', { id: 'sub', destination });
    return client;
  }

  closeAll(): void {
    for (const c of this.open.splice(0)) c.close();
  }
}
