/**
 * One confirm channel for publishes that must be known to have reached a queue: `mandatory`
 * messages that RabbitMQ could not route come back (basic.return, always before their basic.ack),
 * so send() tells routed from returned. User pushes (amqp-delivery.ts), client queues
 * (client-queues.ts) and raw destinations (raw-destinations.ts) each keep one: a channel error on
 * one (an exchange deleted under a raw publish) fails only the publishes in flight on it.
 *
 * Publishes are written together. rabbitmq-client writes each publish to the socket on its own, and
 * on loopback each write is a system call that wakes RabbitMQ: the write, not the encoding, was the
 * largest single cost of a REST push in the service's profile. So send() queues the publish and the
 * check phase of the same event-loop turn writes everything queued, with the AMQP socket corked
 * around it: the pushes that arrived on every socket read in one turn (many HTTP requests, many
 * STOMP SENDs, a batch's items) go out in a few writes. Each is still confirmed on its own, and
 * resolves only once RabbitMQ confirmed it. The cork lasts only while that one callback runs: the
 * connection reads as not ready while its socket is corked, and nothing else runs in between.
 */
import { Socket } from 'node:net';
import { AMQPChannelError } from 'rabbitmq-client';
import type { Connection, Envelope, Publisher, PublisherProps, ReturnedMessage } from 'rabbitmq-client';

import { ServiceError } from '../../errors';
import { withTimeout } from '../../timeout';
import { MESSAGE_ID_HEADER } from './wire';

/** How long a publish or declaration may wait for the AMQP connection before it is refused. */
export const AMQP_WAIT_MS = 5_000;

export type Verdict = 'routed' | 'returned';

export interface ConfirmedPublisherOptions {
  /** Declared on the channel before its first publish (rabbitmq-client's publisher setup). */
  exchanges?: PublisherProps['exchanges'];
  /** How long a publish waits for its confirm before it fails with timedOut(). */
  timeoutMs?: number;
  timedOut?: () => Error;
  /**
   * Which publish a basic.return is of: the `key` its send() was given. Default: the
   * MESSAGE_ID_HEADER header (the message's id, one publish at a time per id).
   */
  returnKey?: (returned: ReturnedMessage) => string | undefined;
  /** What a publish that failed rejects with. Default: refused('the message', err). */
  refusal?: (err: unknown) => Error;
}

interface Queued {
  envelope: Envelope;
  body: Buffer;
  key: string;
  resolve(verdict: Verdict): void;
  reject(err: unknown): void;
}

const headerKey = (returned: ReturnedMessage): string | undefined => {
  const id: unknown = returned.headers?.[MESSAGE_ID_HEADER];
  return typeof id === 'string' ? id : undefined;
};

export class ConfirmedPublisher {
  private publisher: Publisher | undefined;
  /** Keys of publishes in flight that came back unrouted (filled by basic.return, read after the ack). */
  private readonly returned = new Set<string>();
  private queued: Queued[] = [];
  private readonly verdicts = new AfterReturns();
  private readonly timeoutMs: number;
  private readonly timedOut: () => Error;
  private readonly refusal: (err: unknown) => Error;

  constructor(
    private readonly connection: Connection,
    private readonly options: ConfirmedPublisherOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? AMQP_WAIT_MS;
    this.timedOut =
      options.timedOut ??
      (() =>
        new ServiceError('broker_unavailable', `no AMQP publish confirmation within ${this.timeoutMs} ms`));
    this.refusal = options.refusal ?? ((err: unknown) => refused('the message', err));
  }

  /**
   * Publishes and resolves once RabbitMQ confirmed it: 'routed', or 'returned' for a mandatory
   * message no queue took. `key` names this publish in a basic.return (see returnKey); unique
   * among the publishes in flight.
   */
  send(envelope: Envelope, body: Buffer, key: string): Promise<Verdict> {
    return new Promise<Verdict>((resolve, reject) => {
      this.assertReady();
      this.queued.push({ envelope, body, key, resolve, reject });
      if (this.queued.length === 1) setImmediate(this.flush);
    });
  }

  async close(): Promise<void> {
    const publisher = this.publisher;
    this.publisher = undefined;
    await publisher?.close().catch(() => undefined);
  }

  assertReady(): void {
    if (!this.connection.ready) {
      throw new ServiceError('broker_unavailable', 'the AMQP connection to the broker is not up');
    }
  }

  /** Writes everything queued in this turn, the socket corked around it; one timer for them all. */
  private readonly flush = (): void => {
    const batch = this.queued;
    this.queued = [];
    if (!this.connection.ready) {
      const down = new ServiceError('broker_unavailable', 'the AMQP connection to the broker is not up');
      for (const item of batch) item.reject(this.refusal(down));
      return;
    }
    let open = batch.length;
    const timer = setTimeout(() => {
      for (const item of batch) item.reject(this.refusal(this.timedOut()));
    }, this.timeoutMs);
    const settled = (): void => {
      if (--open === 0) clearTimeout(timer);
    };
    const channel = this.channel();
    const socket = socketOf(this.connection);
    socket?.cork();
    try {
      for (const item of batch) {
        // Under the socket's high-water mark, or rabbitmq-client stops and waits for a drain,
        // writing each message after it on its own.
        if (
          socket &&
          socket.writableLength + item.body.length + FRAME_OVERHEAD >= socket.writableHighWaterMark
        ) {
          socket.uncork();
          socket.cork();
        }
        this.returned.delete(item.key);
        channel.send(item.envelope, item.body).then(
          () =>
            this.verdicts.after(() => {
              settled();
              item.resolve(this.returned.delete(item.key) ? 'returned' : 'routed');
            }),
          (err: unknown) => {
            settled();
            this.returned.delete(item.key);
            item.reject(this.refusal(err));
          },
        );
      }
    } finally {
      socket?.uncork();
    }
  };

  private channel(): Publisher {
    if (this.publisher) return this.publisher;
    const publisher = this.connection.createPublisher({
      confirm: true,
      maxAttempts: 1,
      ...(this.options.exchanges ? { exchanges: this.options.exchanges } : {}),
    });
    const returnKey = this.options.returnKey ?? headerKey;
    // The publisher re-emits its channel's basic.return (its onReturn option is not wired up).
    publisher.on('basic.return', (returned: ReturnedMessage) => {
      const key = returnKey(returned);
      if (key !== undefined) this.returned.add(key);
    });
    this.publisher = publisher;
    return publisher;
  }
}

/** Room left under the high-water mark for a message's method and header frames. */
const FRAME_OVERHEAD = 1_024;

/**
 * rabbitmq-client's socket, which its API does not expose; undefined if that ever changes (the
 * publishes are then written one by one, as rabbitmq-client does on its own).
 */
function socketOf(connection: Connection): Socket | undefined {
  const socket: unknown = (connection as unknown as { _socket?: unknown })._socket;
  return socket instanceof Socket && socket.writable ? socket : undefined;
}

/**
 * When a confirmed publish may be told routed. rabbitmq-client emits basic.return from a
 * setImmediate it queues as it reads the return, which RabbitMQ sends before that publish's
 * basic.ack; so a verdict is read in a setImmediate queued after the ack was read. One serves every
 * confirm read until then: it is queued from a nextTick, which runs once the microtasks that read
 * the frames that came in are done, so every return read before those acks is queued ahead of it.
 */
class AfterReturns {
  private waiting: (() => void)[] = [];

  after(fn: () => void): void {
    this.waiting.push(fn);
    if (this.waiting.length === 1) process.nextTick(this.schedule);
  }

  private readonly schedule = (): void => {
    const batch = this.waiting;
    this.waiting = [];
    setImmediate(() => {
      for (const fn of batch) fn();
    });
  };
}

/** AMQP channel errors that are RabbitMQ refusing the request, not the connection failing. */
const REFUSALS = new Set(['PRECONDITION_FAILED', 'NOT_FOUND', 'ACCESS_REFUSED', 'RESOURCE_LOCKED']);

/**
 * What a client is told when RabbitMQ refuses: a channel error (the queue exists with other
 * arguments, access refused ...) is that request's fault and reaches only its client, by its AMQP
 * code alone: RabbitMQ's text names internal queues. Anything else means the broker is away.
 */
export function refused(what: string, err: unknown): ServiceError {
  if (err instanceof ServiceError) return err;
  if (err instanceof AMQPChannelError && REFUSALS.has(err.code)) {
    const hint =
      err.code === 'PRECONDITION_FAILED' ? ': the queue exists on the broker with other settings' : '';
    return new ServiceError('bad_destination', `the broker refused ${what} (${err.code})${hint}`, {
      cause: err,
    });
  }
  const why = err instanceof AMQPChannelError ? err.code : 'no answer';
  return new ServiceError('broker_unavailable', `the broker did not take ${what} (${why})`, { cause: err });
}

/** An AMQP request that gets no answer within AMQP_WAIT_MS: the broker is taken to be away. */
export function withAmqpTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  return withTimeout(
    promise,
    AMQP_WAIT_MS,
    what,
    () => new ServiceError('broker_unavailable', `no AMQP ${what} confirmation within ${AMQP_WAIT_MS} ms`),
  );
}
