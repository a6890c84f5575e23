/**
 * A SockJS session on one of sockjs-node's HTTP transports (xhr-streaming, xhr-polling,
 * eventsource, htmlfile, jsonp-polling) as a ClientSocket.
 *
 * What such a session holds for its client sits in two places, and bufferedAmount() counts both:
 * - sockjs-node's send buffer: frames waiting for the next poll, or for the next streaming request
 *   once a stream has reached sockjs's response limit (128 KiB) and been ended;
 * - the HTTP responses sockjs has written frames into: their bytes wait in Node's socket buffers
 *   until the client reads them, and a response sockjs has already ended (a poll answered, a stream
 *   at its limit) still holds them until then. ResponseOutlets keeps every receiving response of a
 *   session, from the request (which the endpoint sees before sockjs does) until it has flushed or
 *   its connection is gone; `writableLength` is what it still holds, Node's buffer included.
 */
import type { ServerResponse } from 'node:http';
import type { Connection } from 'sockjs';
import type { ClientSocket, ConnectionInfo } from './transport';
import { CLOSE_GRACE_MS } from './websocket';

/** The receiving HTTP responses of each SockJS session id, until each has flushed or closed. */
export class ResponseOutlets {
  private readonly bySession = new Map<string, Set<ServerResponse>>();

  track(session: string, res: ServerResponse): void {
    let responses = this.bySession.get(session);
    if (!responses) {
      responses = new Set();
      this.bySession.set(session, responses);
    }
    responses.add(res);
    const held = responses;
    res.once('close', () => {
      held.delete(res);
      if (held.size === 0 && this.bySession.get(session) === held) this.bySession.delete(session);
    });
  }

  heldBytes(session: string): number {
    let total = 0;
    for (const res of this.bySession.get(session) ?? []) total += res.writableLength;
    return total;
  }

  /** The session's responses as they are now (to drop later if they never drain). */
  snapshot(session: string): ServerResponse[] {
    return [...(this.bySession.get(session) ?? [])];
  }
}

/**
 * sockjs-node's queue for a session (`_session.send_buffer`): it offers no public way to read it.
 * Strings, counted in UTF-16 units, which is what they take in memory for ASCII frames.
 */
function sendBufferLength(conn: Connection): number {
  const session: unknown = Reflect.get(conn, '_session');
  const buffer: unknown =
    session && typeof session === 'object' ? Reflect.get(session, 'send_buffer') : undefined;
  if (!Array.isArray(buffer)) return 0;
  let total = 0;
  for (const item of buffer) if (typeof item === 'string') total += item.length;
  return total;
}

export class SockJsHttpClient implements ClientSocket {
  private closed = false;
  private refused = false;
  private paused = false;
  /** Answers to sends held back while paused (sockjs-send.ts awaits whenReading). */
  private heldAnswers: (() => void)[] = [];
  private dataListener: ((chunk: Buffer) => void) | undefined;
  private refusedListener: ((reason: string) => void) | undefined;

  constructor(
    private readonly conn: Connection,
    readonly info: ConnectionInfo,
    /** The SockJS session id in this session's URLs. */
    readonly session: string,
    private readonly outlets: ResponseOutlets,
  ) {
    conn.on('close', () => {
      this.closed = true;
      this.releaseAnswers();
    });
  }

  send(data: Buffer): void {
    this.conn.write(data.toString('utf8'));
  }

  bufferedAmount(): number {
    return sendBufferLength(this.conn) + this.outlets.heldBytes(this.session);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.releaseAnswers();
    this.conn.close('1000', 'closed');
    // A client that stopped reading never lets those responses finish: they are dropped.
    const responses = this.outlets.snapshot(this.session);
    setTimeout(() => {
      for (const res of responses) if (!res.writableFinished) res.destroy();
    }, CLOSE_GRACE_MS).unref();
  }

  /** Messages from xhr_send or jsonp_send, already read as strings; false once the session is over. */
  receive(strings: string[]): boolean {
    if (this.closed || this.refused || !this.dataListener) return false;
    this.dataListener(Buffer.from(strings.join(''), 'utf8'));
    return true;
  }

  /**
   * An HTTP client sends nothing unless asked, so pausing means holding back the answer to its
   * send: sockjs-client sends its next batch only once the previous one is answered. A client that
   * sends again without waiting gets its data taken, and the session counts it as unread.
   */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.releaseAnswers();
  }

  /** Resolves once the session reads again, or is over: when a send may be answered. */
  whenReading(): Promise<void> {
    if (!this.paused || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.heldAnswers.push(resolve));
  }

  private releaseAnswers(): void {
    const answers = this.heldAnswers;
    this.heldAnswers = [];
    for (const answer of answers) answer();
  }

  /** A send that was not a JSON array of strings: the session is told `reason`, then closed. */
  refuse(reason: string): void {
    if (this.closed || this.refused) return;
    this.refused = true;
    if (this.refusedListener) this.refusedListener(reason);
    else this.close();
  }

  onData(listener: (chunk: Buffer) => void): void {
    this.dataListener = listener;
    // xhr_send and jsonp_send never reach sockjs (sockjs.ts answers them), so sockjs has nothing to
    // hand on; if it ever does, only a string is data.
    this.conn.on('data', (message: unknown) => {
      if (typeof message === 'string') this.receive([message]);
      else this.refuse('a SockJS message must be a JSON array of strings (STOMP frames as text)');
    });
  }

  onRefused(listener: (reason: string) => void): void {
    this.refusedListener = listener;
  }

  onClose(listener: () => void): void {
    this.conn.on('close', listener);
  }
}
