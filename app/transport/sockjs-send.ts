/**
 * xhr_send and jsonp_send, the way in for SockJS's HTTP transports, answered here rather than by
 * sockjs-node. sockjs-node re-concatenates a send body on every chunk it reads, then trusts the
 * parsed JSON's shape: `{"__proto__":[],"length":1e15}` passes its array check and starts a loop of
 * 10^15 steps, `{"__proto__":null}` throws inside it (a 500, logged with the URL and its token), and
 * every element, string or not, goes on to the session. Here a body is read once, up to the message
 * limit, checked by readSockJsMessage, and handed to the session its URL names, answered as
 * sockjs-client expects (204 for xhr_send, 200 `ok` for jsonp_send) once the session reads again:
 * holding the answer back is how a SockJS client is paused.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SockJsHttpClient } from './sockjs-http';
import { readSockJsMessage, type RefusalReason, type SockJsMessage } from './sockjs-message';

export type SendKind = 'xhr_send' | 'jsonp_send';

export interface SockJsSendOptions {
  maxMessageBytes: number;
  /** The open session with this SockJS session id, if there is one. */
  session(id: string): SockJsHttpClient | undefined;
  /** A message was refused (counted by the caller). */
  onRefused(protocol: string, reason: RefusalReason): void;
}

const NO_CACHE = 'no-store, no-cache, no-transform, must-revalidate, max-age=0';

/** sockjs-node's CORS answer for xhr_send: the Origin was checked against ALLOWED_ORIGINS already. */
function corsHeaders(req: IncomingMessage): Record<string, string> {
  const origin = req.headers.origin;
  const headers: Record<string, string> = { 'access-control-allow-origin': origin ?? '*', vary: 'Origin' };
  if (origin !== undefined) headers['access-control-allow-credentials'] = 'true';
  return headers;
}

function answerJson(
  res: ServerResponse,
  status: number,
  headers: Record<string, string>,
  error: string,
  detail: string,
): void {
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'cache-control': NO_CACHE });
  res.end(JSON.stringify({ error, detail }));
}

/** A request that declares a body longer than `max` gets 413 before any of it is read. */
export function refusedAsTooLarge(req: IncomingMessage, res: ServerResponse, max: number): boolean {
  if (Number(req.headers['content-length'] ?? 0) <= max) return false;
  res.writeHead(413, { 'content-type': 'application/json', connection: 'close' });
  res.end(JSON.stringify({ error: 'payload_too_large', detail: `SockJS message larger than ${max} bytes` }));
  return true;
}

/**
 * Reads a request body up to `max` bytes: a declared longer one is answered 413 unread, an
 * undeclared (chunked) one is cut off once it passes the limit. Resolves undefined when refused.
 */
function readBody(req: IncomingMessage, res: ServerResponse, max: number): Promise<Buffer | undefined> {
  if (refusedAsTooLarge(req, res, max)) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let received = 0;
    req.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > max) {
        req.destroy();
        resolve(undefined);
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', () => resolve(undefined));
  });
}

/**
 * A jsonp_send body: a form with the message in field `d` (what sockjs-client sends), or the
 * message as text; as text it may also be a JSON string holding the message (sockjs-node reads
 * both).
 */
function readJsonpSend(req: IncomingMessage, body: string): SockJsMessage {
  const type = (req.headers['content-type'] ?? '').split(';', 1)[0]?.trim();
  if (type === 'application/x-www-form-urlencoded') {
    const fields = new URLSearchParams(body).getAll('d');
    if (fields.length !== 1) {
      return {
        ok: false,
        reason: 'not_json',
        detail: "a jsonp_send form must carry the message in one 'd' field",
      };
    }
    return readSockJsMessage(fields[0] ?? '', false);
  }
  const message = readSockJsMessage(body, true);
  return message.ok && body.trimStart().startsWith('"')
    ? readSockJsMessage(message.strings[0] ?? '', false)
    : message;
}

export class SockJsSendHandler {
  constructor(private readonly options: SockJsSendOptions) {}

  /** Handles a POST to `.../<session>/<kind>`. */
  async handle(req: IncomingMessage, res: ServerResponse, session: string, kind: SendKind): Promise<void> {
    const headers = kind === 'xhr_send' ? corsHeaders(req) : {};
    const body = await readBody(req, res, this.options.maxMessageBytes);
    if (body === undefined) return;
    const client = this.options.session(session);
    if (!client) {
      answerJson(res, 404, headers, 'not_found', 'no open SockJS session with this id');
      return;
    }
    const text = body.toString('utf8');
    const message = kind === 'xhr_send' ? readSockJsMessage(text, false) : readJsonpSend(req, text);
    if (!message.ok) {
      this.options.onRefused(client.info.protocol, message.reason);
      client.refuse(message.detail);
      answerJson(res, 400, headers, 'bad_request', message.detail);
      return;
    }
    if (!client.receive(message.strings)) {
      answerJson(res, 404, headers, 'not_found', 'this SockJS session is closed');
      return;
    }
    // Flow control: while the session is not reading, the answer waits, and so does the client.
    await client.whenReading();
    if (kind === 'xhr_send') {
      res.writeHead(204, {
        ...headers,
        'content-type': 'text/plain; charset=UTF-8',
        'cache-control': NO_CACHE,
      });
      res.end();
    } else {
      res.writeHead(200, {
        'content-type': 'text/plain; charset=UTF-8',
        'content-length': '2',
        'cache-control': NO_CACHE,
      });
      res.end('ok');
    }
  }
}
