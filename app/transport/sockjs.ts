/**
 * SockJS endpoint (/ws) with every SockJS transport (websocket, xhr-streaming, xhr-polling,
 * eventsource, iframe/htmlfile, jsonp). SockJS carries text only, so frames travel as UTF-8
 * strings, as with Spring's SockJS support; binary bodies need /stomp or TCP.
 *
 * Requests are routed here before sockjs-node sees them: the origin policy is applied on the raw
 * request (sockjs does not pass Origin on to connections); WebSocket upgrades go to
 * sockjs-websocket.ts; xhr_send and jsonp_send to sockjs-send.ts; sockjs-node serves the rest
 * (info, iframe, the receiving HTTP transports), and each receiving response is remembered for the
 * session it serves (sockjs-http.ts), so that what waits for a client there can be counted.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import sockjs, { type Connection } from 'sockjs';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import { originAllowed, refuseUpgrade } from './origin';
import { ResponseOutlets, SockJsHttpClient } from './sockjs-http';
import type { RefusalReason } from './sockjs-message';
import { refusedAsTooLarge, SockJsSendHandler } from './sockjs-send';
import { SockJsWebSockets } from './sockjs-websocket';
import type { ClientSocket, ConnectionInfo } from './transport';
import { queryToken, redactTokens } from './url-token';

export interface SockJsEndpointOptions {
  prefix: string;
  allowedOrigins: readonly string[];
  /** URL of sockjs-client for the iframe transports; served by this service, never a CDN. */
  clientScriptUrl: string;
  /**
   * Largest SockJS message: an xhr_send/jsonp_send body or one WebSocket message (sockjs-node
   * itself would buffer a send body of any size, and faye-websocket take 64 MiB messages).
   */
  maxMessageBytes: number;
  logger: Logger;
  metrics: Metrics;
  onConnection(socket: ClientSocket): void;
}

/** Where a SockJS URL leads: `<prefix>/<server>/<session>/<transport>` or `<prefix>/websocket`. */
type Route =
  { kind: 'session'; session: string; transport: string } | { kind: 'raw-websocket' } | { kind: 'other' };

const SESSION_PATH = /^\/([^/.]+)\/([^/.]+)\/([a-z_]+)\/?$/;
const RECEIVING = new Set(['xhr', 'xhr_streaming', 'eventsource', 'htmlfile', 'jsonp']);

function routeOf(prefix: string, url: string): Route {
  const path = url.split('?', 1)[0] ?? '';
  if (!path.startsWith(prefix)) return { kind: 'other' };
  const rest = path.slice(prefix.length);
  if (rest === '/websocket' || rest === '/websocket/') return { kind: 'raw-websocket' };
  const m = SESSION_PATH.exec(rest);
  return m?.[2] && m[3] ? { kind: 'session', session: m[2], transport: m[3] } : { kind: 'other' };
}

/** sockjs's log callback: its lines hold request URLs, and with them any `access_token`. */
export function sockjsLog(logger: Logger): (severity: string, message: string) => void {
  return (severity, message) => {
    const line = redactTokens(message);
    if (severity === 'error') logger.error({ component: 'sockjs' }, line);
    else logger.debug({ component: 'sockjs' }, line);
  };
}

type Handler = (req: IncomingMessage, res: ServerResponse | Duplex, head?: Buffer) => boolean;

export class SockJsEndpoint {
  private readonly handler: Handler;
  private readonly connections = new Set<Connection>();
  /** Open sessions on the HTTP transports, by SockJS session id: where xhr_send delivers. */
  private readonly httpSessions = new Map<string, SockJsHttpClient>();
  private readonly outlets = new ResponseOutlets();
  private readonly sends: SockJsSendHandler;
  private readonly webSockets: SockJsWebSockets;

  constructor(private readonly options: SockJsEndpointOptions) {
    const refused = (protocol: string, reason: RefusalReason): void =>
      options.metrics.sockjsRefused.inc({ protocol, reason });
    this.sends = new SockJsSendHandler({
      maxMessageBytes: options.maxMessageBytes,
      session: (id) => this.httpSessions.get(id),
      onRefused: refused,
    });
    this.webSockets = new SockJsWebSockets({
      maxMessageBytes: options.maxMessageBytes,
      onRefused: refused,
      onConnection: options.onConnection,
    });
    const server = sockjs.createServer({
      prefix: options.prefix,
      sockjs_url: options.clientScriptUrl,
      disconnect_delay: 5000,
      heartbeat_delay: 25000,
      log: sockjsLog(options.logger),
    });
    server.on('connection', (conn: Connection | null) => {
      if (conn) this.accept(conn);
    });
    const listener = (server as unknown as { listener(o: object): { getHandler(): Handler } }).listener({});
    this.handler = listener.getHandler();
  }

  /** A session opened on one of sockjs's HTTP transports (sockjs emits null for one closed first). */
  private accept(conn: Connection): void {
    const r = routeOf(this.options.prefix, conn.pathname);
    const session = r.kind === 'session' ? r.session : '';
    const info: ConnectionInfo = {
      transport: 'sockjs',
      protocol: conn.protocol,
      remoteAddress: conn.remoteAddress,
      handshakeToken: queryToken(conn.url),
    };
    const client = new SockJsHttpClient(conn, info, session, this.outlets);
    this.connections.add(conn);
    this.httpSessions.set(session, client);
    conn.on('close', () => {
      this.connections.delete(conn);
      if (this.httpSessions.get(session) === client) this.httpSessions.delete(session);
    });
    this.options.onConnection(client);
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
    const r = routeOf(this.options.prefix, req.url ?? '');
    if (
      req.method === 'POST' &&
      r.kind === 'session' &&
      (r.transport === 'xhr_send' || r.transport === 'jsonp_send')
    ) {
      this.sends.handle(req, res, r.session, r.transport).catch((err: unknown) => {
        this.options.logger.error({ component: 'sockjs', err }, 'SockJS send failed');
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'internal', detail: 'the message could not be handled' }));
      });
      return;
    }
    if (req.method === 'POST' && !this.limitBody(req, res)) return;
    if (r.kind === 'session' && RECEIVING.has(r.transport)) this.outlets.track(r.session, res);
    this.handler(req, res);
  }

  /**
   * Holds a POST body sockjs reads itself (chunking_test; the receiving transports ignore theirs)
   * to maxMessageBytes: a declared larger one is answered 413, a chunked one cut off at the limit.
   */
  private limitBody(req: IncomingMessage, res: ServerResponse): boolean {
    const max = this.options.maxMessageBytes;
    if (refusedAsTooLarge(req, res, max)) return false;
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
    const r = routeOf(this.options.prefix, req.url ?? '');
    if (r.kind === 'raw-websocket' || (r.kind === 'session' && r.transport === 'websocket')) {
      this.webSockets.handleUpgrade(req, socket, head, r.kind === 'raw-websocket');
    } else {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
    }
  }

  close(): void {
    for (const conn of this.connections) conn.close('1001', 'server stopping');
    this.webSockets.close();
  }
}
