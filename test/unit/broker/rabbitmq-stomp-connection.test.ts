/**
 * The broker-side STOMP connection against a scripted fake broker (a TCP server on port 0): login,
 * receipts, ERROR being fatal, every pending receipt rejected on close, and a silent peer detected
 * by missed heart-beats.
 */
import * as net from 'node:net';
import { expect } from 'chai';

import { StompConnection } from '../../../app/broker/rabbitmq/stomp-connection';
import type { StompAddress } from '../../../app/broker/rabbitmq/broker-url';
import { frame } from '../../../app/stomp/frame';
import { waitFor } from '../../support/wait';

type Script = (socket: net.Socket, received: string) => void;

async function fakeBroker(
  script: Script,
): Promise<{ address: StompAddress; close(): void; sockets: net.Socket[] }> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    let seen = '';
    socket.on('data', (chunk) => {
      seen += chunk.toString('latin1');
      const frames = seen.split('\0');
      seen = frames.pop() ?? '';
      for (const f of frames) script(socket, f.replace(/^\n+/, ''));
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    address: {
      host: '127.0.0.1',
      port,
      login: 'u',
      passcode: 'p',
      vhost: '/',
      label: `stomp://127.0.0.1:${port}/%2F`,
    },
    sockets,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

const CONNECTED = (hb: string) => `CONNECTED\nversion:1.2\nheart-beat:${hb}\n\n\0`;
const receiptOf = (f: string) => /\nreceipt:([^\n]+)/.exec(f)?.[1];

describe('rabbitmq StompConnection', function () {
  let broker: Awaited<ReturnType<typeof fakeBroker>> | undefined;
  afterEach(() => broker?.close());

  it('logs in with login, passcode, host=vhost and a heart-beat offer', async function () {
    let connect = '';
    broker = await fakeBroker((socket, f) => {
      if (f.startsWith('CONNECT')) {
        connect = f;
        socket.write(CONNECTED('0,0'));
      } else if (f.startsWith('DISCONNECT')) {
        socket.end(`RECEIPT\nreceipt-id:${receiptOf(f)}\n\n\0`);
      }
    });
    const connection = await StompConnection.open(broker.address, {
      heartbeatMs: 1500,
      connectTimeoutMs: 2000,
    });
    expect(connect).to.include('login:u\n').and.include('passcode:p\n').and.include('host:/\n');
    expect(connect).to.include('heart-beat:1500,1500\n').and.include('accept-version:1.2\n');
    await connection.close();
  });

  it('rejects open() with the refusal when the broker answers ERROR', async function () {
    broker = await fakeBroker((socket) => socket.end('ERROR\nmessage:Access refused\n\n\0'));
    const error = await StompConnection.open(broker.address, {
      heartbeatMs: 0,
      connectTimeoutMs: 2000,
    }).catch((e: unknown) => e);
    expect((error as Error).message)
      .to.match(/login refused: Access refused/)
      .and.include(broker.address.label);
  });

  it('resolves send() on its RECEIPT, and rejects everything pending when the connection drops', async function () {
    broker = await fakeBroker((socket, f) => {
      if (f.startsWith('CONNECT')) socket.write(CONNECTED('0,0'));
      else if (f.includes('destination:/ok')) socket.write(`RECEIPT\nreceipt-id:${receiptOf(f)}\n\n\0`);
      else if (f.includes('destination:/drop')) setTimeout(() => socket.destroy(), 20);
    });
    const connection = await StompConnection.open(broker.address, { heartbeatMs: 0, connectTimeoutMs: 2000 });
    await connection.send(frame('SEND', { destination: '/ok' }, 'x'), { receipt: true });
    const pending = [1, 2, 3].map(() =>
      connection.send(frame('SEND', { destination: '/never' }), { receipt: true }),
    );
    void connection.send(frame('SEND', { destination: '/drop' }));
    const results = await Promise.allSettled(pending);
    expect(results.map((r) => r.status)).to.deep.equal(['rejected', 'rejected', 'rejected']);
    expect(connection.closed).to.equal(true);
    await connection.send(frame('SEND', { destination: '/ok' })).then(
      () => expect.fail('send after close must reject'),
      (err: Error) => expect(err.message).to.include('closed'),
    );
  });

  it('treats an ERROR frame as fatal and rejects pending receipts with its message', async function () {
    broker = await fakeBroker((socket, f) => {
      if (f.startsWith('CONNECT')) socket.write(CONNECTED('0,0'));
      else socket.write('ERROR\nmessage:not_found\n\nno exchange\0');
    });
    const connection = await StompConnection.open(broker.address, { heartbeatMs: 0, connectTimeoutMs: 2000 });
    const error = await connection
      .send(frame('SEND', { destination: '/x' }), { receipt: true })
      .catch((e: unknown) => e);
    expect((error as Error).message).to.match(/ERROR: not_found \(no exchange\)/);
    expect(connection.closed).to.equal(true);
  });

  it('declares a silent broker dead after missed heart-beats, and sends its own', async function () {
    let beats = 0;
    broker = await fakeBroker((socket, f) => {
      if (f.startsWith('CONNECT')) {
        socket.write(CONNECTED('100,100'));
        socket.on('data', (chunk) => (beats += chunk.toString() === '\n' ? 1 : 0));
      }
    });
    const connection = await StompConnection.open(broker.address, {
      heartbeatMs: 100,
      connectTimeoutMs: 2000,
    });
    let reason: Error | undefined;
    connection.onClose((r) => (reason = r));
    await waitFor(() => reason !== undefined, 2000, 'the heart-beat timeout');
    expect(reason?.message).to.match(/no heart-beat for \d+ ms/);
    expect(beats).to.be.greaterThan(0);
  });

  it('times out a broker that never answers CONNECT', async function () {
    broker = await fakeBroker(() => undefined);
    const error = await StompConnection.open(broker.address, { heartbeatMs: 0, connectTimeoutMs: 200 }).catch(
      (e: unknown) => e,
    );
    expect((error as Error).message).to.match(/no CONNECTED within 200 ms/);
  });
});
