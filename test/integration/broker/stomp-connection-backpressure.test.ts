/**
 * Issue 11.16, the broker half: writes to a broker connection respect its socket. A broker that
 * stops reading (RabbitMQ blocks a connection on a memory or disk alarm) is played by a real TCP
 * server that answers CONNECTED and then never reads again. Before, every SEND was queued in
 * memory without bound; now, past the limit, send() is refused with broker_unavailable (REST 503,
 * STOMP ERROR) and what waits stays bounded.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { expect } from 'chai';

import { StompConnection } from '../../../app/broker/rabbitmq/stomp-connection';
import { ServiceError } from '../../../app/errors';
import { frame } from '../../../app/stomp/frame';

describe('broker connection: writes respect socket backpressure', function () {
  this.timeout(20_000);
  let server: Server;
  const sockets: Socket[] = [];

  before(async () => {
    server = createServer((socket) => {
      sockets.push(socket);
      socket.once('data', () => {
        socket.write('CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0');
        socket.pause(); // and never reads again
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  after(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  it('refuses frames once the broker stops reading, instead of holding them without bound', async () => {
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    const connection = await StompConnection.open(
      { host: '127.0.0.1', port: address.port, login: 'g', passcode: 'g', vhost: '/', label: 'test broker' },
      { heartbeatMs: 0, connectTimeoutMs: 5000 },
    );
    try {
      const body = Buffer.alloc(64 * 1024, 1);
      let accepted = 0;
      let refused: unknown;
      // At most 64 MiB offered; each batch is flushed (setImmediate) before the next is tried.
      for (let i = 0; i < 1024 && refused === undefined; i++) {
        try {
          await connection.send(frame('SEND', { destination: '/queue/q' }, body));
          accepted++;
        } catch (err: unknown) {
          refused = err;
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
      expect(refused, 'a frame refused before 64 MiB were queued').to.be.instanceOf(Error);
      expect((refused as { code?: string }).code).to.equal('broker_unavailable');
      expect((refused as Error).message).to.match(/not reading fast enough/);
      // What was taken: the 8 MiB limit plus what the kernel's socket buffers hold.
      expect(accepted * body.length).to.be.below(40 * 1024 * 1024);
      expect(connection.closed, 'the connection itself stays').to.equal(false);
    } finally {
      connection.destroy(new ServiceError('broker_unavailable', 'test over'));
    }
  });
});
