/**
 * The Socket.IO peer: one Socket.IO 4 node, as a Node.js team would run it instead of stomp-relay.
 * Several of these share the local Redis through @socket.io/redis-adapter; a backend pushes with
 * @socket.io/redis-emitter (publishers.ts). Each client proves who it is with a JWT (HS256, the
 * same check the service makes) and joins rooms through a `subscribe` event: its own
 * `user:<name>` room, or any `topic:<name>`. Websocket transport only, no compression.
 *
 * Environment: REDIS_URL, SOCKETIO_KEY (the adapter's channel prefix), JWT_SECRET.
 * Prints `{"port":N}` once listening. Run in its own process, like the service.
 */
import { createServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import jwt from 'jsonwebtoken';
import { createClient } from 'redis';
import { Server } from 'socket.io';
import { SUBSCRIBE_EVENT } from './socketio-client';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

async function main(): Promise<void> {
  const secret = required('JWT_SECRET');
  const pub = createClient({ url: required('REDIS_URL') });
  const sub = pub.duplicate();
  for (const client of [pub, sub])
    client.on('error', (err: Error) => process.stderr.write(`redis: ${err.message}\n`));
  await Promise.all([pub.connect(), sub.connect()]);

  const http = createServer((_req, res) => res.writeHead(404).end());
  const io = new Server(http, {
    transports: ['websocket'],
    serveClient: false,
    adapter: createAdapter(pub, sub, { key: required('SOCKETIO_KEY') }),
  });
  io.use((socket, next) => {
    const token: unknown = socket.handshake.auth.token;
    try {
      if (typeof token !== 'string') throw new Error('no token');
      const claims = jwt.verify(token, secret, { algorithms: ['HS256'] });
      if (typeof claims === 'string' || !claims.sub) throw new Error('no subject');
      socket.data.user = claims.sub;
      next();
    } catch (err: unknown) {
      next(new Error(`unauthorized: ${err instanceof Error ? err.message : String(err)}`));
    }
  });
  io.on('connection', (socket) => {
    const user = String(socket.data.user);
    socket.on(SUBSCRIBE_EVENT, (room: unknown, ack: (answer: true | string) => void) => {
      if (typeof room === 'string' && (room === `user:${user}` || room.startsWith('topic:'))) {
        void socket.join(room);
        ack(true);
      } else {
        ack(`not allowed: ${String(room)}`);
      }
    });
  });
  http.listen(0, '0.0.0.0', () => {
    const address = http.address();
    process.stdout.write(
      `${JSON.stringify({ port: typeof address === 'object' && address ? address.port : 0 })}\n`,
    );
  });
  process.on('SIGTERM', () => {
    io.close(() => {
      void Promise.all([pub.close(), sub.close()]).finally(() => process.exit(0));
    });
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`socket.io node failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
