/**
 * SockJS endpoint (/ws) with every SockJS transport (websocket, xhr-streaming, xhr-polling,
 * eventsource, iframe, jsonp). SockJS carries text only, so frames travel as UTF-8 strings, as with
 * Spring's SockJS support; binary bodies need /stomp or TCP.
 *
 * sockjs-node does not pass the Origin header on to connections, so the origin policy is applied
 * here on the raw HTTP request, before sockjs sees it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import sockjs, { type Connection } from 'sockjs';
import type { ClientSocket, ConnectionInfo } from './transport';
import { originAllowed, queryToken, refuseUpgrade } from './origin';
import type { Logger } from '../observability/logger';

export interface SockJsEndpointOptions {
  prefix: string;
  allowedOrigins: readonly string[];
  /** URL of sockjs-client for the iframe transports; served by this service, never a CDN. */
  clientScriptUrl: string;
  /**
   * Largest SockJS message: an xhr_send/jsonp_send body or one WebSocket message. sockjs-node
   * itself buffers send bodies without a limit (re-concatenating on every chunk) and lets
   * faye-websocket take 64 MiB messages, before the session's frame limits ever see them.
   */
  maxMessageBytes: number;
  logger: Logger;
  onConnection(socket: ClientSocket): void;
}

/** sockjs keeps undelivered messages per session (xhr-polling waits for the next poll). */
function queuedChars(conn: Connection): number {
  const session: unknown = Reflect.get(conn, '_session');
  const buffer: unknown =
    session && typeof session === 'object' ? Reflect.get(session, 'send_buffer') : undefined;
  if (!Array.isArray(buffer)) return 0;
  let total = 0;
  for (const item of buffer) if (typeof item === 'string') total += item.length;
  return total;
}

class SockJsClient implements ClientSocket {
  constructor(
    private readonly conn: Connection,
    readonly info: ConnectionInfo,
  ) {}

  send(data: Buffer): void {
    this.conn.write(data.toString('utf8'));
  }

  bufferedAmount(): number {
    return queuedChars(this.conn);
  }

  close(): void {
    this.conn.close('1000', 'closed');
  }

  onData(listener: (chunk: Buffer) => void): void {
    this.conn.on('data', (message: string) => listener(Buffer.from(message, 'utf8')));
  }

  onClose(listener: () => void): void {
    this.conn.on('close', listener);
  }
}

type Handler = (req: IncomingMessage, res: ServerResponse | Duplex, head?: Buffer) => boolean;

export class SockJsEndpoint {
  private readonly handler: Handler;
  private readonly connections = new Set<Connection>();

  constructor(private readonly options: SockJsEndpointOptions) {
    // sockjs hands faye_server_options to faye-websocket; @types/sockjs does not know the option.
    const serverOptions: sockjs.ServerOptions & { faye_server_options: { maxLength: number } } = {
      prefix: options.prefix,
      sockjs_url: options.clientScriptUrl,
      disconnect_delay: 5000,
      heartbeat_delay: 25000,
      faye_server_options: { maxLength: options.maxMessageBytes },
      log: (severity: string, message: string) => {
        if (severity === 'error') options.logger.error({ component: 'sockjs' }, message);
        else options.logger.debug({ component: 'sockjs' }, message);
      },
    };
    const server = sockjs.createServer(serverOptions);
    server.on('connection', (conn: Connection | null) => {
      if (!conn) return; // sockjs emits null for a session closed before it opened
      this.connections.add(conn);
      conn.on('close', () => this.connections.delete(conn));
      const info: ConnectionInfo = {
        transport: 'sockjs',
        protocol: conn.protocol,
        remoteAddress: conn.remoteAddress,
        handshakeToken: queryToken(conn.url),
      };
      this.options.onConnection(new SockJsClient(conn, info));
    });
    const listener = (server as unknown as { listener(o: object): { getHandler(): Handler } }).listener({});
    this.handler = listener.getHandler();
  }

  matches(url: string | undefined): boolean {
    return (
      url !== undefined &&
      (url === this.options.prefix ||
        url.startsWith(`${this.options.prefix}/`) ||
        url.startsWith(`${this.options.prefix}?`))
    );
  }

  handleRequest(req: IncomingMessage, res: ServerResponse): void {
    if (!originAllowed(req, this.options.allowedOrigins)) {
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'forbidden', detail: 'origin not allowed' }));
      return;
    }
    if (req.method === 'POST' && !this.limitBody(req, res)) return;
    this.handler(req, res);
  }

  /**
   * Holds a POST body (xhr_send, jsonp_send) to maxMessageBytes: a declared larger one is answered
   * 413 before it is read, an undeclared (chunked) one is cut off once it passes the limit.
   */
  private limitBody(req: IncomingMessage, res: ServerResponse): boolean {
    const max = this.options.maxMessageBytes;
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > max) {
      res.writeHead(413, { 'content-type': 'application/json', connection: 'close' });
      res.end(
        JSON.stringify({ error: 'payload_too_large', detail: `SockJS message larger than ${max} bytes` }),
      );
      return false;
    }
    let received = 0;
    req.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > max) req.destroy();
    });
    return true;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (!originAllowed(req, this.options.allowedOrigins)) {
      refuseUpgrade(socket);
      return;
    }
    this.handler(req, socket, head);
  }

  close(): void {
    for (const conn of this.connections) conn.close('1001', 'server stopping');
  }
}
