/**
 * Bulk publishers and a queue reader for the flow-control tests. A Pipeliner is a raw STOMP client
 * on one transport that sends SENDs without waiting for their RECEIPTs, as fast as its own socket
 * takes them (a blocking write, as stomp.py's; a SockJS client's queue behind the send on its way,
 * as sockjs-client's): it never holds more than a little of its own backlog, so what piles up when
 * the server reads slower is held back in the network, not in the test process. A QueueReader
 * keeps only a count and whether bodies came in order, so that thousands of messages cost it
 * nothing worth measuring.
 */
import { header, type Frame } from '../../app/stomp/frame';
import { connectRaw, openTcp, type RawStompClient } from './raw-stomp';
import { openSockJs } from './sockjs-raw';
import { tokenFor, type RunningService } from './service';
import { sleep, waitFor } from './wait';

/** The ways in that flow control pauses differently (jsonp_send is held back as xhr_send is). */
export type PipelineTransport = 'tcp' | 'websocket' | 'sockjs/websocket' | 'sockjs/xhr' | 'sockjs/jsonp';

export const PIPELINE_TRANSPORTS: readonly PipelineTransport[] = [
  'tcp',
  'websocket',
  'sockjs/websocket',
  'sockjs/xhr',
];

/** The `transport` label the service counts a session's pauses under. */
export function metricTransport(transport: PipelineTransport): string {
  return transport.startsWith('sockjs') ? 'sockjs' : transport;
}

/** A connected raw client on `transport` (SockJS xhr: xhr-streaming; jsonp: jsonp-polling; sends batched). */
export async function openPipeliner(
  service: RunningService,
  user: string,
  transport: PipelineTransport,
  headers: Record<string, string> = {},
): Promise<RawStompClient> {
  if (transport === 'tcp' || transport === 'websocket')
    return connectRaw(service, user, { transport, headers });
  const sockjs =
    transport === 'sockjs/xhr'
      ? 'xhr-streaming'
      : transport === 'sockjs/jsonp'
        ? 'jsonp-polling'
        : 'websocket';
  const client = await openSockJs(service.url, sockjs, { batchSends: true });
  await client.connect(tokenFor(service, user), headers);
  return client;
}

export interface PipelineOptions {
  destination: string;
  count: number;
  /** Every SEND asks for a RECEIPT (`p<i>`), or only the last one does. */
  receiptEach: boolean;
  /** Body of SEND i: its number, or the number, `:` and anything (QueueReader reads both). */
  body?: (i: number) => string | Buffer;
  /** Longest wait for the last RECEIPT. */
  timeoutMs?: number;
}

/** Above this the pipeliner waits for its own socket to take what it wrote. */
const OWN_BACKLOG_BYTES = 256 * 1024;

/**
 * Sends `count` SENDs back to back and waits for their RECEIPTs; rejects on an ERROR or a missing
 * or out-of-order RECEIPT. Resolves with the time it took.
 */
export async function pipeline(client: RawStompClient, options: PipelineOptions): Promise<number> {
  const { destination, count, receiptEach } = options;
  const body = options.body ?? ((i: number) => String(i));
  const receiptsBefore = client.all('RECEIPT').length;
  const started = Date.now();
  for (let i = 0; i < count; i++) {
    const last = i === count - 1;
    client.send('SEND', { destination, receipt: receiptEach || last ? `p${i}` : undefined }, body(i));
    if (client.outgoing() > OWN_BACKLOG_BYTES) {
      while (client.outgoing() > OWN_BACKLOG_BYTES / 4 && !client.closed && client.all('ERROR').length === 0)
        await sleep(2);
    }
    if (client.closed || client.all('ERROR').length > 0) break;
  }
  const expected = receiptEach ? count : 1;
  await waitFor(
    () =>
      client.all('ERROR').length > 0 ||
      client.closed ||
      client.all('RECEIPT').length - receiptsBefore >= expected,
    options.timeoutMs ?? 60_000,
    `${expected} RECEIPT(s) (have ${client.all('RECEIPT').length - receiptsBefore})`,
  );
  const errors = client.all('ERROR').map((f) => header(f, 'message'));
  if (errors.length > 0) throw new Error(`ERROR from the server: ${errors.join('; ')}`);
  if (client.closed) throw new Error('the server closed the connection');
  const receipts = client
    .all('RECEIPT')
    .slice(receiptsBefore)
    .map((f) => header(f, 'receipt-id'));
  const wanted = receiptEach ? [...Array(count).keys()].map((i) => `p${i}`) : [`p${count - 1}`];
  if (receipts.join(',') !== wanted.join(','))
    throw new Error(
      `RECEIPTs out of order or missing: got ${receipts.length}, first ${receipts.slice(0, 5).join(',')}`,
    );
  return Date.now() - started;
}

/**
 * A raw TCP subscriber to one destination that keeps only how many bodies it got and the first
 * that broke the order `0, 1, 2, ...` (`prefix` before each number).
 */
export class QueueReader {
  received = 0;
  /** The first body that was not the next number, with what was expected. */
  disorder: string | undefined;
  errors: string[] = [];

  private client: RawStompClient | undefined;

  private constructor(private readonly prefix: string) {}

  static async open(
    service: RunningService,
    user: string,
    destination: string,
    prefix = '',
  ): Promise<QueueReader> {
    const reader = new QueueReader(prefix);
    let subscribed = false;
    const client = await openTcp(service, {
      keep: false,
      onFrame: (f: Frame) => {
        if (f.command === 'RECEIPT') subscribed = true;
        else if (f.command === 'MESSAGE') reader.take(f.body.toString());
        else if (f.command === 'ERROR') reader.errors.push(header(f, 'message') ?? '?');
      },
    });
    reader.client = client;
    client.sendRaw(`CONNECT\naccept-version:1.2\nhost:x\npasscode:${tokenFor(service, user)}\n\n\0`);
    client.sendRaw(`SUBSCRIBE\nid:q\ndestination:${destination}\nreceipt:sub\n\n\0`);
    await waitFor(
      () => subscribed || reader.errors.length > 0,
      10_000,
      `the reader of ${destination} to subscribe`,
    );
    if (reader.errors.length > 0) throw new Error(`reader refused: ${reader.errors.join('; ')}`);
    return reader;
  }

  /** Bodies are `<prefix><n>`, or `<prefix><n>:<padding>`. */
  private take(body: string): void {
    const expected = `${this.prefix}${this.received}`;
    const inOrder = body === expected || body.startsWith(`${expected}:`);
    if (this.disorder === undefined && !inOrder)
      this.disorder = `got '${body.slice(0, 40)}' where '${expected}' was next`;
    this.received++;
  }

  /** Waits for `count` messages, then a little longer, and checks there were exactly those, in order. */
  async expectExactly(count: number, timeoutMs = 60_000): Promise<void> {
    await waitFor(() => this.received >= count, timeoutMs, `${count} messages (have ${this.received})`);
    // Long enough for a duplicate right behind the last one to show.
    await sleep(200);
    if (this.disorder !== undefined) throw new Error(`out of order: ${this.disorder}`);
    if (this.received !== count) throw new Error(`${this.received} messages where ${count} were sent`);
    if (this.errors.length > 0) throw new Error(`reader got ERROR: ${this.errors.join('; ')}`);
  }

  close(): void {
    this.client?.close();
  }
}

/**
 * Push round trips of a bystander while something else goes on: a REST push to the bystander's
 * own user queue, timed until its session has the MESSAGE, one after another until `stop`.
 */
export class RoundTrips {
  worstMs = 0;
  count = 0;
  private stopping = false;
  private failure: unknown;
  private readonly loop: Promise<void>;

  private constructor(
    private readonly service: RunningService,
    private readonly client: RawStompClient,
    private readonly user: string,
  ) {
    this.loop = this.run().catch((err: unknown) => {
      this.failure = err;
    });
  }

  static async start(service: RunningService, user: string): Promise<RoundTrips> {
    const client = await connectRaw(service, user, { transport: 'tcp' });
    await client.sendWithReceipt('SUBSCRIBE', { id: 'rtt', destination: '/user/queue/rtt' });
    return new RoundTrips(service, client, user);
  }

  private async run(): Promise<void> {
    const token = tokenFor(this.service, 'backend', 'push');
    while (!this.stopping) {
      const body = `rtt-${this.count}`;
      const started = Date.now();
      const res = await fetch(`${this.service.url}/api/users/${this.user}/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ destination: '/queue/rtt', body }),
        signal: AbortSignal.timeout(30_000),
      });
      if (res.status !== 202) throw new Error(`bystander push answered ${res.status}: ${await res.text()}`);
      await this.client.waitForFrame('MESSAGE', (f) => f.body.toString() === body, 30_000);
      this.worstMs = Math.max(this.worstMs, Date.now() - started);
      this.count++;
      await sleep(20);
    }
  }

  /** Stops after the round trip under way; rejects with what went wrong in any of them. */
  async stop(): Promise<{ worstMs: number; count: number }> {
    this.stopping = true;
    await this.loop;
    this.client.close();
    if (this.failure !== undefined) throw this.failure;
    return { worstMs: this.worstMs, count: this.count };
  }
}
