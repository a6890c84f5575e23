/** Raw STOMP over TCP (STOMP_TCP_PORT) for non-browser clients: stomp.py, Java clients, devices. */
import { createServer, type Server, type Socket } from 'node:net';
import type { ClientSocket, ConnectionInfo } from './transport';

class TcpClient implements ClientSocket {
  readonly info: ConnectionInfo;

  constructor(private readonly socket: Socket) {
    this.info = { transport: 'tcp', protocol: 'tcp', remoteAddress: socket.remoteAddress ?? '' };
    socket.setNoDelay(true);
    // A socket error (reset by peer) ends the session through 'close'; nothing else to report.
    socket.on('error', () => socket.destroy());
  }

  send(data: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(data);
  }

  bufferedAmount(): number {
    return this.socket.writableLength;
  }

  close(): void {
    this.socket.end();
    // Read again, or the client's own FIN would wait unread in a paused socket until the timer.
    this.socket.resume();
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  onData(listener: (chunk: Buffer) => void): void {
    this.socket.on('data', listener);
  }

  /** No more 'data' until resume: what arrives waits in Node's buffer, then the kernel's. */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  onClose(listener: () => void): void {
    this.socket.on('close', listener);
  }
}

export class TcpEndpoint {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  constructor(onConnection: (socket: ClientSocket) => void) {
    this.server = createServer((socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      onConnection(new TcpClient(socket));
    });
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        const address = this.server.address();
        resolve(typeof address === 'object' && address ? address.port : port);
      });
    });
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
