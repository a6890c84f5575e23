/**
 * Consumers for the slow-consumer tests and the soak: clients that subscribe and then stop reading
 * (their socket paused, so the kernel buffers fill and the server's send queue grows; a SockJS
 * polling client simply stops polling), and healthy subscribers light enough to run a thousand in
 * one process, keeping only a count and the order of a `seq` header.
 */
import { connect as netConnect, type Socket } from 'node:net';
import WebSocket from 'ws';
import { header, type Frame } from '../../../app/stomp/frame';
import { StompParser } from '../../../app/stomp/parser';
import { openSockJs, openSockJsLeg, type SockJsRawTransport } from '../../support/sockjs-raw';
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

export async function stalledTcp(target: Target, token: string, destinations: string[]): Promise<Stalled> {
  const socket = netConnect(target.tcpPort!, '127.0.0.1');
  socket.on('error', () => socket.destroy());
  await new Promise((resolve) => socket.once('connect', resolve));
  let seen = '';
  socket.on('data', (chunk: Buffer) => (seen += chunk.toString('latin1')));
  socket.write(`CONNECT\naccept-version:1.2\nhost:x\npasscode:${token}\n\n\0`);
  destinations.forEach((d, i) => socket.write(`SUBSCRIBE\nid:${i}\ndestination:${d}\nreceipt:r${i}\n\n\0`));
  await waitFor(
    () => seen.includes(`receipt-id:r${destinations.length - 1}`),
    5000,
    'the stalled TCP client to subscribe',
  );
  socket.removeAllListeners('data');
  socket.pause();
  return { transport: 'tcp', close: () => socket.destroy() };
}

export async function stalledWebSocket(
  target: Target,
  token: string,
  destinations: string[],
): Promise<Stalled> {
  const ws = new WebSocket(`${target.url.replace(/^http/, 'ws')}/stomp`, ['v12.stomp']);
  ws.on('error', () => ws.terminate());
  await new Promise((resolve) => ws.once('open', resolve));
  let seen = '';
  ws.on('message', (data: WebSocket.RawData) => (seen += String(data)));
  ws.send(`CONNECT\naccept-version:1.2\nhost:x\npasscode:${token}\n\n\0`);
  destinations.forEach((d, i) => ws.send(`SUBSCRIBE\nid:${i}\ndestination:${d}\nreceipt:r${i}\n\n\0`));
  await waitFor(
    () => seen.includes(`receipt-id:r${destinations.length - 1}`),
    5000,
    'the stalled WebSocket client to subscribe',
  );
  const socket = Reflect.get(ws, '_socket') as Socket;
  socket.pause();
  return { transport: 'websocket', close: () => ws.terminate() };
}

/** A SockJS client over `transport` that subscribes, then stops reading (or polling). */
export async function stalledSockJs(
  target: Target,
  token: string,
  destinations: string[],
  transport: SockJsRawTransport,
): Promise<Stalled> {
  const client = await openSockJs(target.url, transport);
  await client.connect(token);
  for (const [i, d] of destinations.entries())
    await client.sendWithReceipt('SUBSCRIBE', { id: String(i), destination: d });
  client.pause();
  return { transport: `sockjs/${transport}`, close: () => client.close() };
}

/** A healthy subscriber that keeps nothing but a count and the order of `seq` headers (or `seqOf`). */
export class Counter {
  received = 0;
  outOfOrder = 0;
  closed = false;
  private constructor(
    readonly transport: CounterTransport,
    private readonly end: () => void,
  ) {}

  static async open(
    target: Target,
    token: string,
    transport: CounterTransport,
    destination: string,
    /** The message's place in the sequence; by default its `seq` header. */
    seqOf: (f: Frame) => string | undefined = (f) => header(f, 'seq'),
  ): Promise<Counter> {
    let counter: Counter | undefined;
    let ready = false;
    const parser = new StompParser({ maxFrameBytes: 1 << 20, maxHeaders: 100, maxHeaderBytes: 8192 }, (f) => {
      if (f.command === 'RECEIPT') ready = true;
      if (f.command !== 'MESSAGE' || !counter) return;
      if (seqOf(f) !== String(counter.received)) counter.outOfOrder++;
      counter.received++;
    });
    const hello = Buffer.from(
      `CONNECT\naccept-version:1.2\nhost:x\npasscode:${token}\n\n\0SUBSCRIBE\nid:f\ndestination:${destination}\nreceipt:ok\n\n\0`,
    );
    if (transport === 'tcp') {
      const socket = netConnect(target.tcpPort!, '127.0.0.1');
      socket.on('error', () => socket.destroy());
      await new Promise((resolve) => socket.once('connect', resolve));
      counter = new Counter(transport, () => socket.destroy());
      const c = counter;
      socket.on('data', (chunk: Buffer) => parser.push(chunk));
      socket.on('close', () => (c.closed = true));
      socket.write(hello);
    } else if (transport.startsWith('sockjs/')) {
      let end = (): void => undefined;
      counter = new Counter(transport, () => end());
      const c = counter;
      const sink = { received: (chunk: Buffer) => parser.push(chunk), markClosed: () => (c.closed = true) };
      const leg = await openSockJsLeg(
        target.url,
        transport.slice('sockjs/'.length) as SockJsRawTransport,
        sink,
      );
      end = () => leg.end();
      leg.write(hello);
    } else {
      const ws = new WebSocket(`${target.url.replace(/^http/, 'ws')}/stomp`, ['v12.stomp']);
      ws.on('error', () => ws.terminate());
      await new Promise((resolve) => ws.once('open', resolve));
      counter = new Counter(transport, () => ws.terminate());
      const c = counter;
      ws.on('message', (data: WebSocket.RawData) =>
        parser.push(Buffer.isBuffer(data) ? data : Buffer.from(String(data))),
      );
      ws.on('close', () => (c.closed = true));
      ws.send(hello);
    }
    await waitFor(() => ready, 5000, 'a counting client to subscribe');
    return counter;
  }

  close(): void {
    this.end();
  }
}

/** The counters below `count`, as `transport received` (for a failure message). */
export function behind(counters: readonly Counter[], count: number): string {
  const late = counters.filter((c) => c.received < count);
  return late.length === 0
    ? 'none'
    : late.map((c) => `${c.transport} ${c.received}${c.closed ? ' (closed)' : ''}`).join(', ');
}
