/**
 * One STOMP 1.2 client connection to RabbitMQ's STOMP plugin, for the life of one TCP socket. The
 * pool (connection-pool.ts) owns reconnecting; this object never comes back once closed.
 *
 * - CONNECT carries login, passcode and `host` = vhost, and offers heart-beats both ways
 *   (spec 1.2 §Heart-beating). A peer silent for twice the agreed interval is declared dead: a
 *   half-open TCP connection would otherwise look healthy until the OS gives up, minutes later.
 * - Receipts (spec 1.2 §RECEIPT): send(frame, { receipt: true }) resolves when RabbitMQ answers
 *   with the RECEIPT. For SEND the plugin answers only after the publish is confirmed, which is
 *   what "the broker has taken the message" means.
 * - Every ERROR frame is fatal here, as with rabbitmq-client's channel errors: the plugin closes
 *   the connection after most of them anyway, and one we did not expect means our view of the
 *   connection's state (subscriptions, delivery tags) can no longer be trusted. Closing and letting
 *   the pool re-subscribe is the one recovery that is always right. The one exception is the
 *   plugin's "Server cancelled subscription" (an ERROR with a `subscription` header, sent when the
 *   queue of a consumer is deleted): the plugin keeps the connection, and so do we; the owner of
 *   that subscription hears of it through onCancel.
 * - The close reason of an ERROR carries the broker's own short `message` (not_found,
 *   precondition_failed ...) in `detail.brokerMessage`, so a caller can tell a client what the broker
 *   refused without the broker's address or internal queue names.
 * - On close, every pending receipt is rejected with the reason (like rabbitmq-client), and close
 *   listeners hear it once.
 */
import * as net from 'node:net';

import { ServiceError } from '../../errors';
import { frame, header, type Frame } from '../../stomp/frame';
import { negotiateHeartbeat } from '../../stomp/negotiate';
import { StompParser } from '../../stomp/parser';
import { HEARTBEAT_FRAME, serializeFrame } from '../../stomp/serializer';
import type { StompAddress } from './broker-url';

export interface StompConnectionOptions {
  /** Heart-beat we offer both ways, in ms; 0 turns heart-beating off. */
  heartbeatMs: number;
  /** Time allowed from opening the socket to CONNECTED. */
  connectTimeoutMs: number;
}

/** Frames from the broker can be much larger than client frames (AMQP publishers, backends). */
const BROKER_FRAME_LIMITS = {
  maxFrameBytes: 64 * 1024 * 1024,
  maxHeaders: 1024,
  maxHeaderBytes: 1024 * 1024,
};
/** A peer is dead after this many agreed intervals of silence (spec suggests some tolerance). */
const HEARTBEAT_GRACE_FACTOR = 2;
/**
 * Most bytes that may wait to be written to one broker connection (ours, then the socket's own
 * buffer): a frame beyond it is refused rather than held. RabbitMQ stops reading a connection it
 * blocks (memory or disk alarm, flow control); 8 MiB is many seconds of ordinary traffic and a
 * bounded cost per pool connection.
 */
const MAX_UNWRITTEN_BYTES = 8 * 1024 * 1024;
/** How long close() waits for the DISCONNECT receipt before cutting the socket. */
const DISCONNECT_TIMEOUT_MS = 2_000;

interface PendingReceipt {
  resolve(): void;
  reject(reason: ServiceError): void;
}

export type CloseListener = (reason: ServiceError) => void;

export class StompConnection {
  /** Told about every MESSAGE frame; set by the owner right after open(). */
  onMessage: (message: Frame) => void = () => {};
  /** Told when the broker cancelled one subscription (its queue was deleted); set by the owner. */
  onCancel: (subscriptionId: string) => void = () => {};

  private readonly pending = new Map<string, PendingReceipt>();
  private readonly closeListeners: CloseListener[] = [];
  private receiptSeq = 0;
  private closedWith: ServiceError | undefined;
  private lastHeardAt = Date.now();
  private readonly timers: NodeJS.Timeout[] = [];
  /** Bytes written this turn of the event loop, sent together by flush(). */
  private unwritten: Buffer[] = [];
  private unwrittenBytes = 0;

  private constructor(
    private readonly socket: net.Socket,
    readonly address: StompAddress,
  ) {}

  /** Connects and logs in; rejects with broker_unavailable naming the address and what went wrong. */
  static open(address: StompAddress, options: StompConnectionOptions): Promise<StompConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: address.host, port: address.port });
      socket.setNoDelay(true);
      const connection = new StompConnection(socket, address);
      let settled = false;
      const fail = (reason: ServiceError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timeout);
        connection.destroy(reason);
        reject(reason);
      };
      const timeout = setTimeout(
        () => fail(connection.error(`no CONNECTED within ${options.connectTimeoutMs} ms`)),
        options.connectTimeoutMs,
      );
      const parser = new StompParser(BROKER_FRAME_LIMITS, (received) => {
        if (settled) {
          connection.handleFrame(received);
          return;
        }
        if (received.command === 'CONNECTED') {
          settled = true;
          clearTimeout(timeout);
          connection.startHeartbeats(header(received, 'heart-beat'), options.heartbeatMs);
          resolve(connection);
        } else if (received.command === 'ERROR') {
          fail(connection.error(`login refused: ${header(received, 'message') ?? 'ERROR frame'}`));
        } else {
          fail(connection.error(`expected CONNECTED, got ${received.command}`));
        }
      });
      socket.on('data', (chunk: Buffer) => {
        connection.lastHeardAt = Date.now();
        try {
          parser.push(chunk);
        } catch (err: unknown) {
          const why = err instanceof Error ? err.message : String(err);
          const reason = connection.error(`unreadable data from the broker: ${why}`);
          if (settled) connection.destroy(reason);
          else fail(reason);
        }
      });
      socket.on('error', (err: Error) => {
        const reason = connection.error(err.message);
        if (settled) connection.destroy(reason);
        else fail(reason);
      });
      socket.on('close', () => {
        const reason = connection.error('the connection was closed');
        if (settled) connection.destroy(reason);
        else fail(reason);
      });
      socket.once('connect', () => {
        const hb = `${options.heartbeatMs},${options.heartbeatMs}`;
        const connect = frame('CONNECT', {
          'accept-version': '1.2',
          host: address.vhost,
          login: address.login,
          passcode: address.passcode,
          'heart-beat': hb,
        });
        socket.write(serializeFrame(connect, '1.2'));
      });
    });
  }

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  /** Why the connection closed, once it has. */
  get closeReason(): ServiceError | undefined {
    return this.closedWith;
  }

  onClose(listener: CloseListener): void {
    if (this.closedWith) listener(this.closedWith);
    else this.closeListeners.push(listener);
  }

  /**
   * Writes `out`. With `receipt`, resolves once the broker has answered with the RECEIPT; without,
   * once the bytes are handed to the socket. Rejects with the close reason if the connection is
   * closed or closes first.
   */
  send(out: Frame, options: { receipt?: boolean } = {}): Promise<void> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const id = options.receipt ? `r${++this.receiptSeq}` : undefined;
    const toWrite: Frame = id === undefined ? out : { ...out, headers: [...out.headers, ['receipt', id]] };
    let bytes: Buffer;
    try {
      bytes = serializeFrame(toWrite, '1.2');
    } catch (err: unknown) {
      return Promise.reject(err);
    }
    // Bounded, like every buffer a client can fill (issue 11.16): while the broker does not read,
    // what waits for its socket stops growing here and the caller is told (REST 503, STOMP ERROR).
    const waiting = this.socket.writableLength + this.unwrittenBytes;
    if (waiting + bytes.length > MAX_UNWRITTEN_BYTES) {
      return Promise.reject(
        new ServiceError(
          'broker_unavailable',
          `the broker is not reading fast enough: ${waiting} bytes already wait to be written to it (limit ${MAX_UNWRITTEN_BYTES}); try again shortly`,
        ),
      );
    }
    const done =
      id === undefined
        ? Promise.resolve()
        : new Promise<void>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.write(bytes);
    return done;
  }

  /**
   * Frames written during one turn of the event loop leave in one socket write, after the turn's
   * I/O callbacks: under load, the SENDs of many REST requests and the ACKs of many deliveries
   * arrive in the same turn, and one write syscall for all of them instead of one each (socket
   * writes were the largest item of the service's CPU profile). Costs no timer wait: setImmediate runs right after
   * the poll phase that produced them.
   */
  private write(bytes: Buffer): void {
    this.unwritten.push(bytes);
    this.unwrittenBytes += bytes.length;
    if (this.unwritten.length === 1) setImmediate(this.flush);
  }

  private readonly flush = (): void => {
    const batch = this.unwritten;
    this.unwritten = [];
    this.unwrittenBytes = 0;
    if (this.closedWith || batch.length === 0) return;
    this.socket.write(batch.length === 1 ? batch[0] : Buffer.concat(batch));
  };

  /** Polite close: DISCONNECT with a receipt (spec 1.2 §DISCONNECT), then the socket, whatever happens. */
  async close(): Promise<void> {
    if (this.closedWith) return;
    const bye = this.send(frame('DISCONNECT'), { receipt: true });
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, DISCONNECT_TIMEOUT_MS).unref());
    await Promise.race([bye.catch(() => undefined), timeout]);
    this.destroy(new ServiceError('broker_unavailable', `connection to ${this.address.label} closed by us`));
  }

  /** Closes now, rejecting everything pending with `reason`. Idempotent. */
  destroy(reason: ServiceError): void {
    if (this.closedWith) return;
    this.closedWith = reason;
    for (const timer of this.timers) clearInterval(timer);
    this.socket.destroy();
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(reason);
    for (const listener of this.closeListeners.splice(0)) listener(reason);
  }

  private error(why: string): ServiceError {
    return new ServiceError('broker_unavailable', `broker ${this.address.label}: ${why}`);
  }

  private handleFrame(received: Frame): void {
    switch (received.command) {
      case 'MESSAGE':
        this.onMessage(received);
        return;
      case 'RECEIPT': {
        const id = header(received, 'receipt-id') ?? '';
        const waiting = this.pending.get(id);
        this.pending.delete(id);
        waiting?.resolve();
        return;
      }
      case 'ERROR': {
        const message = header(received, 'message') ?? 'ERROR frame';
        const cancelled = header(received, 'subscription');
        if (cancelled !== undefined) {
          this.onCancel(cancelled);
          return;
        }
        const detail = received.body.toString('utf8', 0, Math.min(received.body.length, 300)).trim();
        this.destroy(
          new ServiceError(
            'broker_unavailable',
            `broker ${this.address.label}: ERROR: ${message}${detail ? ` (${detail})` : ''}`,
            { detail: { brokerMessage: message } },
          ),
        );
        return;
      }
      default:
        this.destroy(this.error(`unexpected ${received.command} frame`));
    }
  }

  /** Spec 1.2 §Heart-beating, from the client side: CONNECTED's `sx,sy` against our offer. */
  private startHeartbeats(serverHeader: string | undefined, ourMs: number): void {
    let agreed: { sendEveryMs: number; expectEveryMs: number };
    try {
      agreed = negotiateHeartbeat(serverHeader, ourMs, ourMs);
    } catch {
      agreed = { sendEveryMs: 0, expectEveryMs: 0 };
    }
    if (agreed.sendEveryMs > 0) {
      const timer = setInterval(() => {
        if (!this.closedWith) this.write(HEARTBEAT_FRAME);
      }, agreed.sendEveryMs);
      timer.unref();
      this.timers.push(timer);
    }
    if (agreed.expectEveryMs > 0) {
      const limit = agreed.expectEveryMs * HEARTBEAT_GRACE_FACTOR;
      const timer = setInterval(
        () => {
          const silentMs = Date.now() - this.lastHeardAt;
          if (silentMs > limit)
            this.destroy(this.error(`no heart-beat for ${silentMs} ms (agreed ${agreed.expectEveryMs} ms)`));
        },
        Math.max(50, Math.floor(agreed.expectEveryMs / 2)),
      );
      timer.unref();
      this.timers.push(timer);
    }
  }
}
