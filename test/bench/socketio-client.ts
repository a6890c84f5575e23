/**
 * A Socket.IO 4 load client, as a browser app of a Node.js team would hold one: websocket
 * transport only, a JWT in the handshake's `auth`, then one `subscribe` event per room (acked by
 * the server once the socket is in the room, like a STOMP SUBSCRIBE's RECEIPT). Every `m` event is
 * a payload. No reconnection: a connection the server drops counts as closed early.
 */
import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import { subscriptionFor, tokenFor, urlFor, withTimeout, type ClientPlan, type LoadClient } from './clients';
import type { Stats } from './stats';

/** Event name of every pushed payload, on the server, the emitter and here. */
export const PUSH_EVENT = 'm';
/** Client -> server: join a room (`user:<own name>` or `topic:<name>`); acked with true or an error. */
export const SUBSCRIBE_EVENT = 'subscribe';

export class SocketIoClient implements LoadClient {
  private socket: Socket | undefined;
  private closing = false;

  constructor(
    readonly index: number,
    readonly user: string,
    private readonly stats: Stats,
  ) {}

  async open(plan: ClientPlan, timeoutMs: number): Promise<void> {
    if (plan.auth?.kind !== 'jwt') throw new Error('the Socket.IO peer takes a JWT');
    // engine.io-client hands `localAddress` to `ws`; its option types do not list it.
    const options: Partial<ManagerOptions & SocketOptions> & { localAddress?: string } = {
      transports: ['websocket'],
      forceNew: true,
      reconnection: false,
      timeout: timeoutMs,
      auth: { token: tokenFor(this.user, plan.auth.secret) },
      localAddress: plan.localAddress,
    };
    const socket = io(urlFor(plan, this.index), options);
    this.socket = socket;
    socket.on(PUSH_EVENT, (body: string) => this.stats.onText(body));
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('connect_error', reject);
      }),
      timeoutMs,
      `no Socket.IO connection for ${this.user}`,
    );
    socket.on('disconnect', (reason) => {
      if (this.closing) return;
      this.stats.closedEarly++;
      this.stats.error(`${this.user}: disconnected (${reason})`);
    });
    const room = subscriptionFor(plan, this.index, this.user);
    if (room) {
      const answer: unknown = await socket.timeout(timeoutMs).emitWithAck(SUBSCRIBE_EVENT, room);
      if (answer !== true) throw new Error(`${this.user} could not join ${room}: ${String(answer)}`);
    }
  }

  send(): Promise<void> {
    return Promise.reject(new Error('Socket.IO clients only receive in this benchmark'));
  }

  close(): Promise<void> {
    this.closing = true;
    this.socket?.disconnect();
    return Promise.resolve();
  }
}
