/**
 * Plain WebSocket endpoint (/stomp) with STOMP subprotocol negotiation. A JWT may ride in
 * Sec-WebSocket-Protocol after the STOMP subprotocol (`v12.stomp, <jwt>`), because browsers cannot
 * set an Authorization header on a WebSocket; it is never echoed back as the chosen protocol.
 */
import { isUtf8 } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import type { ClientSocket, ConnectionInfo } from './transport';
import { originAllowed, refuseUpgrade } from './origin';
import { queryToken } from './url-token';
import { SharedWebSocketFrame, frameSender } from './ws-frame';

const SUBPROTOCOL_VERSIONS: Record<string, string[]> = {
  'v12.stomp': ['1.2'],
  'v11.stomp': ['1.1'],
  'v10.stomp': ['1.0'],
};

/** How long a closing peer has to answer the close handshake before its socket is dropped. */
export const CLOSE_GRACE_MS = 2000;

/** A `ws` message's bytes, whichever of its forms it arrived in. */
export function messageBytes(data: RawData): Buffer {
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
}

/** Own keys only: `p in SUBPROTOCOL_VERSIONS` would also accept 'constructor' or 'toString'. */
const isStompProtocol = (p: string): boolean => Object.hasOwn(SUBPROTOCOL_VERSIONS, p);

export interface WebSocketEndpointOptions {
  allowedOrigins: readonly string[];
  maxPayloadBytes: number;
  onConnection(socket: ClientSocket): void;
}

/** One for the process: it holds only the last frame built (ws-frame.ts). */
const sharedFrame = new SharedWebSocketFrame();

/**
 * Frames written to one client during one turn of the event loop (a fan-out burst: several broker
 * messages parsed from one TCP read) leave as ONE WebSocket message, flushed once that turn's
 * synchronous work is done (a microtask): no added delay, but one socket write instead of one per
 * frame, and the socket write is what a fan-out spends most of its time on. STOMP clients read a
 * WebSocket message as a stream of frames (stompjs, Spring's and RabbitMQ's decoders do), so several
 * frames in one message parse exactly as they would from TCP.
 */
export class WebSocketClient implements ClientSocket {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(
    private readonly ws: WebSocket,
    readonly info: ConnectionInfo,
  ) {
    // ws reports a peer's protocol violation (a message over maxPayload, invalid UTF-8 in a text
    // message, a bad opcode) as an 'error' after it has already started the close with the fitting
    // status (1009, 1007, 1002); the session ends through 'close'. Unlistened, that 'error' would be
    // thrown and take the whole instance down with it.
    ws.on('error', () => undefined);
  }

  send(data: Buffer): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    if (this.pending.length === 0) queueMicrotask(this.flush);
    this.pending.push(data);
    this.pendingBytes += data.length;
  }

  private readonly flush = (): void => {
    const frames = this.pending;
    if (frames.length === 0) return;
    this.pending = [];
    this.pendingBytes = 0;
    if (this.ws.readyState !== this.ws.OPEN) return;
    const sender = frameSender(this.ws);
    if (sender) {
      sender.sendFrame([sharedFrame.frameFor(frames)]);
      return;
    }
    const data = frames.length === 1 ? frames[0] : Buffer.concat(frames);
    // STOMP is text-framed unless a body is binary; stompjs accepts both, text is cheaper for it.
    this.ws.send(data, { binary: !isUtf8(data) });
  };

  bufferedAmount(): number {
    return this.ws.bufferedAmount + this.pendingBytes;
  }

  close(): void {
    this.flush();
    // The peer's close frame must be read for the handshake to finish.
    this.ws.resume();
    if (this.ws.readyState === this.ws.OPEN) this.ws.close(1000);
    // A peer that never answers the close handshake must not hold the socket.
    setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS).unref();
  }

  onData(listener: (chunk: Buffer) => void): void {
    this.ws.on('message', (data: RawData) => listener(messageBytes(data)));
  }

  /**
   * Pauses the socket under `ws`: messages already in the socket read it is decoding still arrive
   * (at most one read's worth), nothing after them.
   */
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

export class WebSocketEndpoint {
  private readonly server: WebSocketServer;

  constructor(private readonly options: WebSocketEndpointOptions) {
    this.server = new WebSocketServer({
      noServer: true,
      maxPayload: options.maxPayloadBytes,
      perMessageDeflate: false,
      handleProtocols: (protocols) => {
        for (const p of protocols) if (isStompProtocol(p)) return p;
        return false;
      },
    });
    this.server.on('connection', (ws: WebSocket, req: IncomingMessage) => this.accept(ws, req));
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (!originAllowed(req, this.options.allowedOrigins)) {
      refuseUpgrade(socket);
      return;
    }
    this.server.handleUpgrade(req, socket, head, (ws) => this.server.emit('connection', ws, req));
  }

  private accept(ws: WebSocket, req: IncomingMessage): void {
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    const stompIndex = offered.findIndex(isStompProtocol);
    // The token is the first offered value after the STOMP subprotocols that is not one itself.
    const protocolToken =
      stompIndex >= 0 ? offered.slice(stompIndex).find((p) => p && !isStompProtocol(p)) : undefined;
    const info: ConnectionInfo = {
      transport: 'websocket',
      protocol: ws.protocol || 'websocket',
      remoteAddress: req.socket.remoteAddress ?? '',
      handshakeToken: queryToken(req.url) ?? protocolToken,
      // Every STOMP subprotocol the client offered says it speaks that version; the one chosen for
      // the handshake is only the first of them, so it must not narrow what CONNECT may negotiate.
      versions:
        stompIndex >= 0
          ? offered.flatMap((p) => (isStompProtocol(p) ? SUBPROTOCOL_VERSIONS[p] : []))
          : undefined,
    };
    this.options.onConnection(new WebSocketClient(ws, info));
  }

  close(): void {
    for (const ws of this.server.clients) ws.terminate();
    this.server.close();
  }
}
