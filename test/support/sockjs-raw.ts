/**
 * A raw SockJS client: the SockJS protocol spoken by hand over each sub-transport (websocket, raw
 * websocket, xhr-streaming, xhr-polling, eventsource, htmlfile, jsonp-polling), so that a test can
 * send exactly the SockJS messages it wants, hostile ones included, and can stop reading the way a
 * stalled browser tab does. STOMP on top is a RawStompClient: what arrives is taken out of the
 * SockJS framing and fed to it, and each frame it writes goes out as one SockJS message.
 *
 * Sends over the HTTP transports go one request at a time, in order, as sockjs-client sends them
 * (xhr_send; jsonp_send for jsonp-polling); every request carries the endpoint URL's query.
 */
import { randomBytes } from 'node:crypto';
import http, { type IncomingMessage } from 'node:http';
import WebSocket from 'ws';
import { RawStompClient, type RawClientOptions } from './raw-stomp';
import { waitFor } from './wait';

export type SockJsRawTransport =
  | 'websocket'
  | 'websocket-raw'
  | 'xhr-streaming'
  | 'xhr-polling'
  | 'eventsource'
  | 'htmlfile'
  | 'jsonp-polling';

/** Every sub-transport, for tests that must hold on each of them. */
export const SOCKJS_RAW_TRANSPORTS: readonly SockJsRawTransport[] = [
  'websocket',
  'websocket-raw',
  'xhr-streaming',
  'xhr-polling',
  'eventsource',
  'htmlfile',
  'jsonp-polling',
];

export interface SockJsRawOptions extends RawClientOptions {
  /** Appended to every URL, e.g. `?access_token=...`. */
  query?: string;
  /**
   * HTTP transports: frames written while a send is on its way go together, as one JSON array, in
   * the next send, which is how sockjs-client sends them. Default: one send per frame.
   */
  batchSends?: boolean;
}

/** An answer to an xhr_send or jsonp_send request. */
export interface SendAnswer {
  status: number;
  body: string;
}

/** Where a leg delivers what the server sends, once out of the SockJS framing. */
export interface SockJsSink {
  received(chunk: Buffer): void;
  markClosed(): void;
}

/** One SockJS session over one sub-transport, below STOMP. */
export interface SockJsLeg {
  readonly transport: SockJsRawTransport;
  /** The close frame the server sent (`c[code,"reason"]`), if one came. */
  readonly closeFrame: [number, string] | undefined;
  /** Answers to xhr_send / jsonp_send requests, in order. */
  readonly sendAnswers: SendAnswer[];
  /** HTTP transports: `<base>/ws/<server>/<session>`, where xhr_send and the others go. */
  readonly sessionUrl?: string;
  /** Sends one SockJS message body exactly as given (a WebSocket text message, an xhr_send body). */
  sendMessage(text: string): void;
  /** Sends STOMP bytes as one SockJS message. */
  write(bytes: Buffer): void;
  /** Stops reading, as a stalled client does; `resume` reads again. */
  pause(): void;
  resume(): void;
  /** Bytes written and not yet sent (queued sends, or what the WebSocket holds). */
  outgoing(): number;
  end(): void;
}

const HTTP_FRAMING: Record<string, (text: string) => string[]> = {
  'xhr-streaming': lines,
  'xhr-polling': lines,
  eventsource: (text) =>
    text
      .split('\r\n\r\n')
      .map((e) => e.replace(/^(\r\n)+/, ''))
      .filter((e) => e.startsWith('data: '))
      .map((e) =>
        e.slice(6).replace(/%(25|0D|0A|00)/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16))),
      ),
  htmlfile: (text) =>
    text
      .split('\n')
      .filter((l) => l.startsWith('p(') && l.endsWith(');'))
      .map((l) => JSON.parse(l.slice(2, -2)) as string),
  'jsonp-polling': (text) =>
    text
      .split('\r\n')
      .filter((l) => l.startsWith('/**/cb(') && l.endsWith(');'))
      .map((l) => JSON.parse(l.slice(7, -2)) as string),
};

function lines(text: string): string[] {
  // The xhr-streaming prelude is 2048 'h's on one line; a heart-beat is a single 'h'.
  return text.split('\n').filter((l) => l !== '' && !(l.length > 1 && /^h+$/.test(l)));
}

/** Where each HTTP receiving transport is fetched, and whether its answer stays open. */
const RECEIVERS: Record<string, { method: string; path: string; streaming: boolean; separator: string }> = {
  'xhr-streaming': { method: 'POST', path: '/xhr_streaming', streaming: true, separator: '\n' },
  'xhr-polling': { method: 'POST', path: '/xhr', streaming: false, separator: '\n' },
  eventsource: { method: 'GET', path: '/eventsource', streaming: true, separator: '\r\n\r\n' },
  htmlfile: { method: 'GET', path: '/htmlfile?c=p', streaming: true, separator: '\n' },
  'jsonp-polling': { method: 'GET', path: '/jsonp?c=cb', streaming: false, separator: '\r\n' },
};

export class SockJsRawClient extends RawStompClient {
  private leg: SockJsLeg | undefined;

  constructor(
    readonly transport: SockJsRawTransport,
    options: RawClientOptions = {},
  ) {
    super(options);
  }

  /** @internal */
  setLeg(leg: SockJsLeg): void {
    this.leg = leg;
    this.attach(leg);
  }

  get closeFrame(): [number, string] | undefined {
    return this.leg?.closeFrame;
  }

  get sendAnswers(): SendAnswer[] {
    return this.leg?.sendAnswers ?? [];
  }

  get sessionUrl(): string | undefined {
    return this.leg?.sessionUrl;
  }

  /** One SockJS message body exactly as given (hostile ones included). */
  sendMessage(text: string): void {
    this.leg?.sendMessage(text);
  }
}

/** Opens a SockJS session on `${baseUrl}/ws` over `transport`, STOMP on top, once it is open. */
export async function openSockJs(
  baseUrl: string,
  transport: SockJsRawTransport,
  options: SockJsRawOptions = {},
): Promise<SockJsRawClient> {
  const client = new SockJsRawClient(transport, options);
  client.setLeg(await openSockJsLeg(baseUrl, transport, client, options));
  return client;
}

/** Frames common to every leg: `o` opens, `h` is a heart-beat, `a[...]` messages, `c[...]` close. */
abstract class LegBase {
  closeFrame: [number, string] | undefined;
  readonly sendAnswers: SendAnswer[] = [];
  opened = false;

  constructor(
    readonly transport: SockJsRawTransport,
    protected readonly sink: SockJsSink,
  ) {}

  abstract end(): void;

  protected frame(text: string): void {
    const type = text[0];
    if (type === 'o') this.opened = true;
    else if (type === 'a') {
      for (const message of JSON.parse(text.slice(1)) as string[])
        this.sink.received(Buffer.from(message, 'utf8'));
    } else if (type === 'c') {
      this.closeFrame = JSON.parse(text.slice(1)) as [number, string];
      this.sink.markClosed();
      this.end();
    }
  }
}

/** Opens a SockJS session over `transport` delivering to `sink`; resolves once it is open. */
export async function openSockJsLeg(
  baseUrl: string,
  transport: SockJsRawTransport,
  sink: SockJsSink,
  options: SockJsRawOptions = {},
): Promise<SockJsLeg> {
  const session = randomBytes(6).toString('hex');
  const query = options.query ?? '';
  const leg =
    transport === 'websocket' || transport === 'websocket-raw'
      ? await WebSocketLeg.open(baseUrl, transport, session, query, sink)
      : new HttpLeg(transport, sink, `${baseUrl}/ws/000/${session}`, query, options.batchSends === true);
  await waitFor(() => leg.opened || leg.ended, 5000, `the SockJS ${transport} open frame`);
  if (!leg.opened) throw new Error(`SockJS ${transport} closed before it opened`);
  return leg;
}

class WebSocketLeg extends LegBase implements SockJsLeg {
  ended = false;

  private constructor(
    transport: SockJsRawTransport,
    sink: SockJsSink,
    private readonly ws: WebSocket,
  ) {
    super(transport, sink);
    ws.on('close', () => {
      this.ended = true;
      sink.markClosed();
    });
    ws.on('message', (data: WebSocket.RawData) => {
      const text = Buffer.isBuffer(data) ? data.toString('utf8') : String(data);
      if (transport === 'websocket') this.frame(text);
      else sink.received(Buffer.from(text, 'utf8'));
    });
    if (transport === 'websocket-raw') this.opened = true;
  }

  static async open(
    baseUrl: string,
    transport: SockJsRawTransport,
    session: string,
    query: string,
    sink: SockJsSink,
  ): Promise<WebSocketLeg> {
    const path = transport === 'websocket' ? `/ws/000/${session}/websocket` : '/ws/websocket';
    const ws = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}${path}${query}`);
    ws.on('error', () => ws.terminate());
    const leg = new WebSocketLeg(transport, sink, ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return leg;
  }

  sendMessage(text: string): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(text);
  }

  write(bytes: Buffer): void {
    const text = bytes.toString('utf8');
    this.sendMessage(this.transport === 'websocket' ? JSON.stringify([text]) : text);
  }

  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  outgoing(): number {
    return this.ws.bufferedAmount;
  }

  end(): void {
    this.ws.terminate();
  }
}

/** The HTTP transports: one receiving request at a time (re-opened when it ends), sends in order. */
class HttpLeg extends LegBase implements SockJsLeg {
  ended = false;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  private readonly receiver: (typeof RECEIVERS)[string];
  /** SockJS messages to send: as given, or frames to send as one JSON array (batched). */
  private readonly queue: ({ message: string } | { frames: string[] })[] = [];
  private sending = false;
  private paused = false;
  private current: IncomingMessage | undefined;

  constructor(
    transport: SockJsRawTransport,
    sink: SockJsSink,
    private readonly base: string,
    private readonly query: string,
    private readonly batchSends = false,
  ) {
    super(transport, sink);
    this.receiver = RECEIVERS[transport]!;
    this.receive();
  }

  private url(path: string): string {
    const [p, q] = path.split('?');
    const parts = [q, this.query.replace(/^\?/, '')].filter((s) => s);
    return `${this.base}${p}${parts.length > 0 ? `?${parts.join('&')}` : ''}`;
  }

  /**
   * One request. A kept-alive connection that the server closed as idle (keepAliveTimeout) just as
   * it was reused fails with a reset before any answer: that request is sent again, as browsers do.
   */
  private request(
    method: string,
    path: string,
    body?: string,
    contentType?: string,
  ): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = http.request(this.url(path), {
        method,
        agent: this.agent,
        headers: contentType ? { 'content-type': contentType } : {},
      });
      req.on('response', resolve);
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE') && !this.ended)
          this.request(method, path, body, contentType).then(resolve, reject);
        else reject(err);
      });
      req.end(body);
    });
  }

  /** Reads one receiving request; streaming ones frame by frame, as the bytes come. */
  private receive(): void {
    if (this.ended || this.paused) return;
    const { method, path, separator } = this.receiver;
    const decode = HTTP_FRAMING[this.transport]!;
    this.request(method, path).then(
      (res) => {
        this.current = res;
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
          const cut = text.lastIndexOf(separator);
          if (cut < 0) return;
          const complete = text.slice(0, cut + separator.length);
          text = text.slice(cut + separator.length);
          for (const f of decode(complete)) this.frame(f);
        });
        res.on('end', () => {
          for (const f of decode(text)) this.frame(f);
          this.current = undefined;
          this.receive();
        });
        res.on('error', () => this.fail());
      },
      () => this.fail(),
    );
  }

  private fail(): void {
    if (this.ended) return;
    this.sink.markClosed();
    this.end();
  }

  private async flush(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    try {
      for (let item = this.queue.shift(); item && !this.ended; item = this.queue.shift()) {
        const jsonp = this.transport === 'jsonp-polling';
        let text: string;
        if ('frames' in item) {
          const frames = [...item.frames];
          for (let next = this.queue[0]; next && 'frames' in next; next = this.queue[0]) {
            frames.push(...next.frames);
            this.queue.shift();
          }
          text = JSON.stringify(frames);
        } else text = item.message;
        const res = await this.request(
          'POST',
          jsonp ? '/jsonp_send' : '/xhr_send',
          jsonp ? `d=${encodeURIComponent(text)}` : text,
          jsonp ? 'application/x-www-form-urlencoded' : 'text/plain;charset=UTF-8',
        );
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        await new Promise((resolve) => res.on('end', resolve));
        this.sendAnswers.push({ status: res.statusCode ?? 0, body });
      }
    } catch {
      // The server closed a send request (a body cut off): the answer list shows it as status 0.
      this.sendAnswers.push({ status: 0, body: '' });
    } finally {
      this.sending = false;
      if (this.ended) this.agent.destroy();
    }
  }

  sendMessage(text: string): void {
    this.queue.push({ message: text });
    void this.flush();
  }

  write(bytes: Buffer): void {
    if (!this.batchSends) {
      this.sendMessage(JSON.stringify([bytes.toString('utf8')]));
      return;
    }
    this.queue.push({ frames: [bytes.toString('utf8')] });
    void this.flush();
  }

  get sessionUrl(): string {
    return this.base;
  }

  /** Frames and messages queued behind the send on its way (which waits for its answer). */
  outgoing(): number {
    let bytes = 0;
    for (const item of this.queue) {
      if ('frames' in item) for (const f of item.frames) bytes += f.length;
      else bytes += item.message.length;
    }
    return bytes;
  }

  /** Stops reading: the open response is left unread and no new receiving request is made. */
  pause(): void {
    this.paused = true;
    this.current?.pause();
  }

  resume(): void {
    this.paused = false;
    if (this.current) this.current.resume();
    else this.receive();
  }

  /** Stops receiving at once; a send already on its way is let finish, so its answer is seen. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.current?.destroy();
    if (!this.sending) this.agent.destroy();
  }
}
