/**
 * Consumers for the slow-consumer tests and the soak: clients that subscribe and then stop reading
 * (their socket paused, so the kernel buffers fill and the server's send queue grows; a SockJS
 * polling client simply stops polling), and healthy subscribers light enough to run a thousand in
 * one process, keeping only a count and the order of a `seq` header.
 */
import { header, type Frame } from '../../../app/stomp/frame';
import { openTcp, openWebSocket, type RawClientOptions, type RawStompClient } from '../../support/raw-stomp';
import { openSockJs, type SockJsRawTransport } from '../../support/sockjs-raw';
import { waitFor } from '../../support/wait';

/** Where to connect: an instance's HTTP URL, and its raw STOMP TCP port when it has one. */
export interface Target {
  url: string;
  tcpPort?: number;
}

/** A client that subscribes and then stops reading: its socket is paused, the kernel buffers fill. */
export interface Stalled {
  transport: string;
  close(): void;
}

/** Where a Counter connects: raw TCP, /stomp, or SockJS over one of its sub-transports. */
export type CounterTransport = 'tcp' | 'websocket' | `sockjs/${SockJsRawTransport}`;

function openRawTo(
  target: Target,
  transport: CounterTransport,
  options: RawClientOptions = {},
): Promise<RawStompClient> {
  if (transport === 'tcp') return openTcp(target, options);
  if (transport === 'websocket') return openWebSocket(target, { ...options, protocols: ['v12.stomp'] });
  return openSockJs(target.url, transport.slice('sockjs/'.length) as SockJsRawTransport, options);
}

/** Connects, subscribes to every destination (each confirmed), then stops reading (or polling). */
async function stalled(
  target: Target,
  token: string,
  destinations: string[],
  transport: CounterTransport,
): Promise<Stalled> {
  const client = await openRawTo(target, transport);
  await client.connect(token, { 'accept-version': '1.2' });
  for (const [i, d] of destinations.entries())
    await client.sendWithReceipt('SUBSCRIBE', { id: String(i), destination: d }, undefined, 5000);
  client.pause();
  return { transport, close: () => client.close() };
}

export function stalledTcp(target: Target, token: string, destinations: string[]): Promise<Stalled> {
  return stalled(target, token, destinations, 'tcp');
}

export function stalledWebSocket(target: Target, token: string, destinations: string[]): Promise<Stalled> {
  return stalled(target, token, destinations, 'websocket');
}

/** A SockJS client over `transport` that subscribes, then stops reading (or polling). */
export function stalledSockJs(
  target: Target,
  token: string,
  destinations: string[],
  transport: SockJsRawTransport,
): Promise<Stalled> {
  return stalled(target, token, destinations, `sockjs/${transport}`);
}

/** A healthy subscriber that keeps nothing but a count and the order of `seq` headers (or `seqOf`). */
export class Counter {
  received = 0;
  outOfOrder = 0;
  private client: RawStompClient | undefined;
  private constructor(readonly transport: CounterTransport) {}

  get closed(): boolean {
    return this.client?.closed ?? false;
  }

  static async open(
    target: Target,
    token: string,
    transport: CounterTransport,
    destination: string,
    /** The message's place in the sequence; by default its `seq` header. */
    seqOf: (f: Frame) => string | undefined = (f) => header(f, 'seq'),
  ): Promise<Counter> {
    const counter = new Counter(transport);
    let ready = false;
    const client = await openRawTo(target, transport, {
      keep: false,
      onFrame: (f) => {
        if (f.command === 'RECEIPT') ready = true;
        if (f.command !== 'MESSAGE') return;
        if (seqOf(f) !== String(counter.received)) counter.outOfOrder++;
        counter.received++;
      },
    });
    counter.client = client;
    // CONNECT and SUBSCRIBE in one write (one SockJS message): a thousand of these connect at once.
    client.sendRaw(
      `CONNECT\naccept-version:1.2\nhost:x\npasscode:${token}\n\n\0SUBSCRIBE\nid:f\ndestination:${destination}\nreceipt:ok\n\n\0`,
    );
    await waitFor(() => ready, 5000, 'a counting client to subscribe');
    return counter;
  }

  close(): void {
    this.client?.close();
  }
}

/** The counters below `count`, as `transport received` (for a failure message). */
export function behind(counters: readonly Counter[], count: number): string {
  const late = counters.filter((c) => c.received < count);
  return late.length === 0
    ? 'none'
    : late.map((c) => `${c.transport} ${c.received}${c.closed ? ' (closed)' : ''}`).join(', ');
}
