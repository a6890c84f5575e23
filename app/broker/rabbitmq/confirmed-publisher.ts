/**
 * One confirm channel for publishes that must be known to have reached a queue: `mandatory`
 * messages that RabbitMQ could not route come back (basic.return, always before their basic.ack),
 * so send() tells routed from returned. Client queues (client-queues.ts) and raw destinations
 * (raw-destinations.ts) each keep one: a channel error on one (an exchange deleted under a raw
 * publish) fails only the publishes in flight on it.
 */
import { AMQPChannelError } from 'rabbitmq-client';
import type { Connection, Envelope, Publisher, ReturnedMessage } from 'rabbitmq-client';

import { ServiceError } from '../../errors';
import { withTimeout } from '../../timeout';
import { MESSAGE_ID_HEADER } from './wire';

/** How long a publish or declaration may wait for the AMQP connection before it is refused. */
export const AMQP_WAIT_MS = 5_000;

export class ConfirmedPublisher {
  private publisher: Publisher | undefined;
  /** Message ids whose last publish came back unrouted (filled by basic.return, read after the ack). */
  private readonly returned = new Set<string>();

  constructor(private readonly connection: Connection) {}

  /**
   * Publishes and resolves once RabbitMQ confirmed it: 'routed', or 'returned' for a mandatory
   * message no queue took. The envelope's headers must carry MESSAGE_ID_HEADER = `id`.
   */
  async send(envelope: Envelope, body: Buffer, id: string): Promise<'routed' | 'returned'> {
    this.assertReady();
    this.returned.delete(id);
    try {
      await withAmqpTimeout(this.channel().send(envelope, body), 'publish');
    } catch (err: unknown) {
      throw refused('the message', err);
    }
    // rabbitmq-client emits basic.return from a setImmediate queued before the ack resolved
    // this publish: one more turn and it has been heard.
    await new Promise((resolve) => setImmediate(resolve));
    return this.returned.delete(id) ? 'returned' : 'routed';
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

  private channel(): Publisher {
    if (this.publisher) return this.publisher;
    const publisher = this.connection.createPublisher({ confirm: true, maxAttempts: 1 });
    // The publisher re-emits its channel's basic.return (its onReturn option is not wired up).
    publisher.on('basic.return', (returned: ReturnedMessage) => {
      const id: unknown = returned.headers?.[MESSAGE_ID_HEADER];
      if (typeof id === 'string') this.returned.add(id);
    });
    this.publisher = publisher;
    return publisher;
  }
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
