/**
 * SockJS's WebSocket transport (`/ws/<server>/<session>/websocket`, what sockjs-client uses first)
 * and its raw WebSocket (`/ws/websocket`), served on `ws` as /stomp is, not by sockjs-node.
 * sockjs-node writes to WebSockets through faye-websocket, which counts nothing it has queued (its
 * `bufferedAmount` stays 0), so a client that stopped reading went unseen while its socket buffer
 * grew without bound; it JSON-parses every message whole, whatever its shape, before any of our
 * code sees it; and it waits 30 s for a close handshake that a stalled peer never answers.
 *
 * The SockJS framing over a WebSocket is small: the server opens with `o`, sends frames as
 * `a["...", ...]`, a heart-beat `h` when it has sent nothing for a while, and `c[code,"reason"]`
 * before it closes; the client sends a JSON array of strings, or one string (sockjs-protocol 0.3.3).
 * The raw WebSocket carries STOMP as it is, like /stomp without the subprotocols.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { ClientSocket, ConnectionInfo } from './transport';
import { readSockJsMessage, type RefusalReason } from './sockjs-message';
import { CLOSE_GRACE_MS, messageBytes, WebSocketClient } from './websocket';
import { queryToken } from './url-token';
import { SharedWebSocketFrame, frameSender, webSocketFrame } from './ws-frame';

/** sockjs-node's default: proxies drop connections idle for much longer than this. */
const HEARTBEAT_MS = 25_000;

export interface SockJsWebSocketOptions {
  /** Largest WebSocket message; longer ones are closed with 1009 unread. */
  maxMessageBytes: number;
  /** A message was refused (counted by the caller); the session is told and closed. */
  onRefused(protocol: string, reason: RefusalReason): void;
  onConnection(socket: ClientSocket): void;
}

/** `a["<frame>", ...]`: STOMP frames as SockJS sends them, each frame's bytes as UTF-8 text. */
function sockJsArray(frames: readonly Buffer[]): string {
  return `a${JSON.stringify(frames.map((f) => f.toString('utf8')))}`;
}

/** The last `a[...]` WebSocket frame built, shared by the clients a fan-out writes to (ws-frame.ts). */
const sharedFrame = new SharedWebSocketFrame((frames) => webSocketFrame([Buffer.from(sockJsArray(frames))]));

/**
 * One SockJS session over a WebSocket. Frames written during one turn of the event loop leave as
 * one `a[...]` message once that turn's work is done (as on /stomp), so what is queued is this
 * batch plus what `ws` and the socket hold: `ws.bufferedAmount` counts both.
 */
class SockJsWebSocketClient implements ClientSocket {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private lastSentAt = Date.now();
  private refused = false;
  private refusedListener: ((reason: string) => void) | undefined;
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    private readonly ws: WebSocket,
    readonly info: ConnectionInfo,
    private readonly onRefusedMessage: (reason: RefusalReason) => void,
  ) {
    // Protocol violations (a message over the limit, invalid UTF-8) close with 1009 or 1007 and are
    // then reported as 'error'; the session ends through 'close'.
    ws.on('error', () => undefined);
    this.frame('o');
    this.heartbeat = setInterval(() => {
      if (Date.now() - this.lastSentAt >= HEARTBEAT_MS) this.frame('h');
    }, HEARTBEAT_MS);
    ws.on('close', () => clearInterval(this.heartbeat));
  }

  private frame(text: string): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    this.lastSentAt = Date.now();
    this.ws.send(text);
  }

  send(data: Buffer): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    if (this.pending.length === 0) queueMicrotask(this.flush);
    this.pending.push(data);
    this.pendingBytes += data.length;
  }

  private readonly flush = (): void => {
    if (this.pending.length === 0) return;
    const frames = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    if (this.ws.readyState !== this.ws.OPEN) return;
    const sender = frameSender(this.ws);
    if (sender) {
      this.lastSentAt = Date.now();
      sender.sendFrame([sharedFrame.frameFor(frames)]);
    } else {
      this.frame(sockJsArray(frames));
    }
  };

  bufferedAmount(): number {
    return this.ws.bufferedAmount + this.pendingBytes;
  }

  close(): void {
    this.flush();
    this.ws.resume();
    this.frame('c[1000,"closed"]');
    if (this.ws.readyState === this.ws.OPEN) this.ws.close(1000);
    setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS).unref();
  }

  onData(listener: (chunk: Buffer) => void): void {
    this.ws.on('message', (data: RawData) => {
      if (this.refused) return;
      const text = messageBytes(data).toString('utf8');
      if (text === '') return; // sockjs-client never sends one; SockJS servers ignore it
      const message = readSockJsMessage(text, true);
      if (message.ok) {
        listener(Buffer.from(message.strings.join(''), 'utf8'));
        return;
      }
      this.refused = true;
      this.onRefusedMessage(message.reason);
      if (this.refusedListener) this.refusedListener(message.detail);
      else this.close();
    });
  }

  onRefused(listener: (reason: string) => void): void {
    this.refusedListener = listener;
  }

  /** As on /stomp: the socket under `ws` stops being read. */
  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  onClose(listener: () => void): void {
    this.ws.on('close', listener);
  }
}

export class SockJsWebSockets {
  private readonly server: WebSocketServer;

  constructor(private readonly options: SockJsWebSocketOptions) {
    this.server = new WebSocketServer({
      noServer: true,
      maxPayload: options.maxMessageBytes,
      perMessageDeflate: false,
      // SockJS speaks no subprotocol: choosing none makes a client that insists on one fail.
      handleProtocols: () => false,
    });
  }

  /** `raw`: the raw WebSocket (`/ws/websocket`), else SockJS framing. Origin already checked. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, raw: boolean): void {
    this.server.handleUpgrade(req, socket, head, (ws) => {
      const info: ConnectionInfo = {
        transport: 'sockjs',
        protocol: raw ? 'websocket-raw' : 'websocket',
        remoteAddress: req.socket.remoteAddress ?? '',
        handshakeToken: queryToken(req.url),
      };
      this.options.onConnection(
        raw
          ? new WebSocketClient(ws, info)
          : new SockJsWebSocketClient(ws, info, (reason) => this.options.onRefused(info.protocol, reason)),
      );
    });
  }

  close(): void {
    for (const ws of this.server.clients) ws.terminate();
    this.server.close();
  }
}
